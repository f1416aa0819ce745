//! A soak run: trains the seed network for many steps (100 000 by default) and checks
//! that the process's resident memory stays flat. It prints one JSON line: the
//! resident set after the first epoch, at the end and at its largest, the growth in
//! percent, and on the GPU how many buffers, uniform blocks and bind groups were
//! created after the first epoch. Exits 1 when the end is more than 5 % above the
//! first epoch.
//!
//! `cargo run --release --example soak -- [--steps N] [--backend gpu|cpu]
//! [--no-fused] [--optimizer sgd|adam] [--evaluate]` (`--evaluate` also counts the
//! test errors after every epoch). Resident memory is read from `/proc/self/status`
//! (Linux).

use std::process::ExitCode;
use std::time::Instant;

use minidl::backend::gpu::GpuStats;
use minidl::data::disc_train_test;
use minidl::nn::MseLoss;
use minidl::optim::{Adam, Optimizer, Sgd};
use minidl::train::{count_errors, fit, FitConfig};
use minidl::{seed, Backend, Cpu, Gpu};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

const USAGE: &str =
    "usage: soak [--steps N] [--backend gpu|cpu] [--no-fused] [--optimizer sgd|adam] [--evaluate]";

/// The resident set size in KiB, from `/proc/self/status`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Options {
    steps: usize,
    gpu: bool,
    fused: bool,
    adam: bool,
    evaluate: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        steps: 100_000,
        gpu: true,
        fused: true,
        adam: false,
        evaluate: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--steps" => {
                o.steps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--steps needs a positive whole number")?
            }
            "--backend" => match args.next().as_deref() {
                Some("gpu") => o.gpu = true,
                Some("cpu") => o.gpu = false,
                _ => return Err("--backend needs gpu or cpu".into()),
            },
            "--optimizer" => match args.next().as_deref() {
                Some("sgd") => o.adam = false,
                Some("adam") => o.adam = true,
                _ => return Err("--optimizer needs sgd or adam".into()),
            },
            "--no-fused" => o.fused = false,
            "--evaluate" => o.evaluate = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// What the run measured.
struct Soak {
    epochs: usize,
    fused: bool,
    rss_first: Option<u64>,
    rss_end: Option<u64>,
    rss_max: Option<u64>,
    seconds: f64,
}

fn soak<B: Backend>(b: &B, o: &Options, mut after_epoch: impl FnMut()) -> Result<Soak, String> {
    let (train, test) = disc_train_test(seed::SEED).map_err(|e| e.to_string())?;
    let steps_per_epoch = train.len().div_ceil(seed::BATCH_SIZE);
    let epochs = o.steps.div_ceil(steps_per_epoch);
    let mut model = seed::network(b, &mut ChaCha8Rng::seed_from_u64(seed::SEED + 1))
        .map_err(|e| e.to_string())?;
    let mut loss = MseLoss::new(seed::REDUCTION);
    let mut optimizer: Box<dyn Optimizer<B>> = if o.adam {
        Box::new(Adam::new(0.001).map_err(|e| e.to_string())?)
    } else {
        Box::new(Sgd::new(seed::LR).map_err(|e| e.to_string())?)
    };
    let config = FitConfig {
        epochs,
        fused: o.fused.into(),
        ..FitConfig::default()
    };
    let (mut rss_first, mut rss_max) = (None, None::<u64>);
    let start = Instant::now();
    let reports = fit(
        b,
        &mut model,
        &mut loss,
        optimizer.as_mut(),
        &train,
        &config,
        |r, model| {
            if o.evaluate {
                count_errors(b, model, &test)?;
            }
            let rss = rss_kib();
            if r.epoch == 1 {
                rss_first = rss;
                after_epoch();
            }
            rss_max = rss_max.max(rss);
            Ok(())
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(Soak {
        epochs,
        fused: reports.first().is_some_and(|r| r.fused),
        rss_first,
        rss_end: rss_kib(),
        rss_max,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn json(v: Option<u64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (adapter, result, created) = if o.gpu {
        let gpu = match Gpu::new() {
            Ok(gpu) => gpu,
            Err(e) => {
                eprintln!("soak: {e}");
                return ExitCode::from(1);
            }
        };
        let mut first = GpuStats::default();
        let result = soak(&gpu, &o, || first = gpu.stats());
        let end = gpu.stats();
        let created = format!(
            "{{\"buffers\":{},\"uniforms\":{},\"bind_groups\":{}}}",
            end.buffers - first.buffers,
            end.uniforms - first.uniforms,
            end.bind_groups - first.bind_groups
        );
        (gpu.adapter().name.clone(), result, created)
    } else {
        (
            Cpu::new().name(),
            soak(&Cpu::new(), &o, || {}),
            "null".into(),
        )
    };
    let s = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(1);
        }
    };
    let growth = match (s.rss_first, s.rss_end) {
        (Some(a), Some(b)) => Some(100.0 * (b as f64 - a as f64) / a as f64),
        _ => None,
    };
    println!(
        "{{\"adapter\":{:?},\"steps\":{},\"epochs\":{},\"fused\":{},\"optimizer\":{:?},\"evaluate\":{},\"rss_kib_after_first_epoch\":{},\"rss_kib_end\":{},\"rss_kib_max\":{},\"growth_percent\":{},\"created_after_first_epoch\":{},\"seconds\":{:.1}}}",
        adapter,
        s.epochs * 100,
        s.epochs,
        s.fused,
        if o.adam { "adam" } else { "sgd" },
        o.evaluate,
        json(s.rss_first),
        json(s.rss_end),
        json(s.rss_max),
        growth.map_or("null".into(), |g| format!("{g:.2}")),
        created,
        s.seconds
    );
    if growth.is_some_and(|g| g > 5.0) {
        eprintln!("soak: resident memory grew by more than 5 %");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
