//! Trains the seed network on the disc task, on the GPU (or the CPU reference), and
//! reports the loss per epoch and the final train and test errors.
//!
//! `cargo run --release --example disc_gpu -- --help` lists the flags.

use std::process::ExitCode;
use std::time::Instant;

use minidl::data::{disc_train_test, DISC_POINTS};
use minidl::nn::MseLoss;
use minidl::optim::Sgd;
use minidl::train::{count_errors, fit, FitConfig};
use minidl::{seed, Backend, Cpu, Error, Gpu};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

const USAGE: &str =
    "usage: disc_gpu [--backend auto|gpu|cpu] [--adapter NAME] [--epochs N] [--lr X]
                [--batch-size N] [--seed N] [--shuffle] [--no-fused] [--json]
                [--list-adapters]

  --backend B      auto (default: the GPU if an adapter exists, else the CPU), gpu, cpu
  --adapter NAME   the first GPU adapter whose name contains NAME (also MINIDL_ADAPTER)
  --epochs N       passes over the 1000 training points (default 300)
  --lr X           SGD learning rate (default 0.01)
  --batch-size N   points per mini-batch (default 10)
  --seed N         seed of the data (N) and of the initial weights (N + 1) (default 12)
  --shuffle        shuffle the training points every epoch (default: in order)
  --no-fused       train step by step, even where the fully fused trainer could run
  --json           end with one JSON line of results
  --list-adapters  print the usable GPU adapters and exit";

#[derive(Debug, Clone, Copy, PartialEq)]
enum BackendChoice {
    Auto,
    Gpu,
    Cpu,
}

#[derive(Debug)]
struct Args {
    backend: BackendChoice,
    adapter: Option<String>,
    epochs: usize,
    lr: f32,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    fused: bool,
    json: bool,
    list_adapters: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        backend: BackendChoice::Auto,
        adapter: None,
        epochs: seed::EPOCHS,
        lr: seed::LR,
        batch_size: seed::BATCH_SIZE,
        seed: seed::SEED,
        shuffle: false,
        fused: true,
        json: false,
        list_adapters: false,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        fn number<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a valid value"))
        }
        match flag.as_str() {
            "--backend" => {
                parsed.backend = match value("--backend")?.as_str() {
                    "auto" => BackendChoice::Auto,
                    "gpu" => BackendChoice::Gpu,
                    "cpu" => BackendChoice::Cpu,
                    other => {
                        return Err(format!(
                            "--backend: expected auto, gpu or cpu, got {other:?}"
                        ))
                    }
                }
            }
            "--adapter" => parsed.adapter = Some(value("--adapter")?),
            "--epochs" => parsed.epochs = number("--epochs", value("--epochs")?)?,
            "--lr" => {
                parsed.lr = number("--lr", value("--lr")?)?;
                if !(parsed.lr.is_finite() && parsed.lr > 0.0) {
                    return Err(format!(
                        "--lr: must be a positive number, got {}",
                        parsed.lr
                    ));
                }
            }
            "--batch-size" => {
                parsed.batch_size = number("--batch-size", value("--batch-size")?)?;
                if parsed.batch_size == 0 {
                    return Err("--batch-size: must be at least 1".into());
                }
            }
            "--seed" => parsed.seed = number("--seed", value("--seed")?)?,
            "--shuffle" => parsed.shuffle = true,
            "--no-fused" => parsed.fused = false,
            "--json" => parsed.json = true,
            "--list-adapters" => parsed.list_adapters = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

/// What a run measured, printed as the final JSON line.
struct Summary {
    backend: &'static str,
    adapter: String,
    train_errors: usize,
    test_errors: usize,
    final_loss: f64,
    epoch_ms_median: f64,
    /// NaN (null in the JSON) where the device has no timestamps.
    epoch_gpu_ms_median: f64,
    fused: bool,
}

fn train<B: Backend>(backend: &B, kind: &'static str, args: &Args) -> Result<Summary, Error> {
    let (train_set, test_set) = disc_train_test(args.seed)?;
    let mut init = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let mut model = seed::network(backend, &mut init)?;
    let mut loss = MseLoss::new(seed::REDUCTION);
    let sgd = Sgd::new(args.lr)?;
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: args.shuffle,
        seed: args.seed,
        fused: args.fused,
        gpu_timing: true,
    };
    let reports = fit(
        backend,
        &mut model,
        &mut loss,
        &sgd,
        &train_set,
        &config,
        |r| {
            let gpu = r
                .gpu_millis
                .map_or(String::new(), |g| format!("  (device {g:8.2} ms)"));
            println!(
                "epoch {:4}/{}  loss {:10.4}  {:8.2} ms{gpu}",
                r.epoch, args.epochs, r.loss, r.millis
            );
        },
    )?;
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        match times.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => times[n / 2],
            n => (times[n / 2 - 1] + times[n / 2]) / 2.0,
        }
    };
    let gpu_times: Vec<f64> = reports.iter().filter_map(|r| r.gpu_millis).collect();
    Ok(Summary {
        backend: kind,
        adapter: backend.name(),
        train_errors: count_errors(backend, &mut model, &train_set)?,
        test_errors: count_errors(backend, &mut model, &test_set)?,
        final_loss: reports.last().map_or(f64::NAN, |r| r.loss),
        epoch_ms_median: median(reports.iter().map(|r| r.millis).collect()),
        epoch_gpu_ms_median: median(gpu_times),
        fused: reports.first().is_some_and(|r| r.fused),
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let start = Instant::now();
    if args.list_adapters {
        let adapters = Gpu::adapters();
        if adapters.is_empty() {
            println!("no GPU adapter found");
        }
        for a in adapters {
            println!("{a}");
        }
        return Ok(());
    }
    let gpu = match args.backend {
        BackendChoice::Cpu => None,
        BackendChoice::Gpu => Some(Gpu::with_adapter(args.adapter.as_deref())?),
        BackendChoice::Auto => match Gpu::with_adapter(args.adapter.as_deref()) {
            Ok(gpu) => Some(gpu),
            Err(e @ Error::NoAdapter(_)) => {
                eprintln!("note: {e}; running on the CPU reference backend");
                None
            }
            Err(e) => return Err(e),
        },
    };
    let summary = match &gpu {
        Some(gpu) => {
            println!("backend gpu: {}", gpu.adapter());
            train(gpu, "gpu", args)?
        }
        None => {
            println!("backend cpu");
            train(&Cpu, "cpu", args)?
        }
    };
    println!(
        "train errors {}/{}  test errors {}/{}",
        summary.train_errors, DISC_POINTS, summary.test_errors, DISC_POINTS
    );
    if args.json {
        println!(
            "{{\"backend\":{},\"adapter\":{},\"epochs\":{},\"lr\":{},\"batch_size\":{},\"seed\":{},\"train_errors\":{},\"test_errors\":{},\"test_points\":{},\"final_loss\":{},\"epoch_ms_median\":{},\"epoch_gpu_ms_median\":{},\"fused\":{},\"total_s\":{}}}",
            json_string(summary.backend),
            json_string(&summary.adapter),
            args.epochs,
            args.lr,
            args.batch_size,
            args.seed,
            summary.train_errors,
            summary.test_errors,
            DISC_POINTS,
            json_number(summary.final_loss),
            json_number(summary.epoch_ms_median),
            json_number(summary.epoch_gpu_ms_median),
            summary.fused,
            json_number(start.elapsed().as_secs_f64()),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,minidl=info"))
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("disc_gpu: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("disc_gpu: {e}");
            ExitCode::from(1)
        }
    }
}
