//! Trains the Noise2Noise denoiser of EE-559's 2022 mini-project on the shipped MNIST
//! digits, or on any images file that gives its shape (IDX, CIFAR; `--image` for a
//! table): two strided convolutions down, two nearest upsamplings and convolutions
//! up, a Sigmoid; each step pairs two independently noised copies of its images
//! (Gaussian noise, fresh every step, not clipped) under MSE and Adam; then reports
//! the PSNR of the denoised test digits against the clean ones, beside the noisy
//! input's.
//!
//! `cargo run --release --example denoise -- --help` lists the flags. Exit codes: 0 on
//! success, 2 for a bad command line (with the usage), 1 for a failure at run time.

mod args;
#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/curve.rs"]
mod curve;
#[path = "../shared/images.rs"]
mod images;
#[path = "../shared/progress.rs"]
mod progress;

use std::process::ExitCode;

use args::{Args, USAGE};
use minidl::backend::Reduction;
use minidl::checkpoint;
use minidl::data::{self, Dataset, LoadOptions, SplitFractions};
use minidl::nn::{build_model, parse_model, Module, MseLoss, RowShape, Sequential};
use minidl::optim::Adam;
use minidl::train::{fit, outputs, FitConfig, Fusion};
use minidl::{Backend, Cpu, Ops, Tensor};
use progress::{EpochLine, Progress};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The 2022 project's network for images of `channels` channels, in the words of
/// `train --model` (the first convolution takes the channels from the data).
fn denoiser(channels: usize) -> String {
    format!(
        "conv(32,3,stride=2,padding=1),relu,conv(32,3,stride=2,padding=1),relu,upsample(2),\
         conv(32,3,padding=1),relu,upsample(2),conv({channels},3,padding=1),sigmoid"
    )
}

/// An image shape, (channels, height, width).
type Shape = (usize, usize, usize);

/// Test digits drawn by `--plot`.
const SHOWN: usize = 10;

/// What one run gives.
struct RunResult {
    seed: u64,
    psnr_db: f64,
    noisy_psnr_db: f64,
    final_loss: f64,
    step_ms: Vec<f64>,
}

/// `values + σ·z` for standard normal `z` drawn from `rng` (Box–Muller, in pairs).
fn noisy(values: &Tensor, sigma: f32, rng: &mut ChaCha8Rng) -> minidl::Result<Tensor> {
    let mut data = values.data().to_vec();
    for pair in data.chunks_mut(2) {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        let z = [r * angle.cos(), r * angle.sin()];
        for (v, z) in pair.iter_mut().zip(z) {
            *v += sigma * z as f32;
        }
    }
    Tensor::new(values.shape(), data)
}

/// `−10·log₁₀` of the mean squared difference (the peak is 1).
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let n = a.data().len().max(1) as f64;
    let mse: f64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / n;
    -10.0 * mse.log10()
}

/// The images of `--data`, read once for all runs, and their shape: the data's own or
/// `--image`.
fn images(args: &Args) -> Result<(Dataset, Shape), String> {
    let mut all = data::load(&args.data, &LoadOptions::default()).map_err(|e| e.to_string())?;
    if let Some(shape) = args.image {
        all = all
            .with_image_shape(shape)
            .map_err(|e| format!("--image {}: {e}", cli::shape_words(shape)))?;
    }
    let shape = all.image_shape().ok_or_else(|| {
        format!(
            "{}: its rows are not images of a known shape: give --image C,H,W",
            args.data.display()
        )
    })?;
    Ok((all, shape))
}

/// The clean training and test images of `seed`'s split of `all`, divided by
/// `--scale-by`.
fn digits(
    all: &Dataset,
    args: &Args,
    seed: u64,
    write_split: bool,
) -> Result<(Tensor, Tensor), String> {
    let err = |e: minidl::Error| e.to_string();
    let fractions = SplitFractions {
        train: 0.8,
        validation: 0.0,
    };
    let split = data::split(all, fractions, seed).map_err(err)?;
    if let (true, Some(path)) = (write_split, &args.split_out) {
        cli::write_split(path, &split.rows)?;
    }
    let mut train = split.train;
    let mut test = split
        .test
        .ok_or("the split left no test digits: the data set is too small")?;
    if let Some(n) = args.digits {
        // The split's order is a random permutation: its first rows are a random subset.
        let take = |d: &Dataset, k: usize| d.select(&(0..k.min(d.len())).collect::<Vec<_>>());
        let train_rows = n * 4 / 5;
        train = take(&train, train_rows).map_err(err)?;
        test = take(&test, n - train_rows).map_err(err)?;
    }
    let scaled = |d: &Dataset| {
        let data = d
            .inputs()
            .data()
            .iter()
            .map(|v| v / args.scale_by)
            .collect();
        Tensor::new(d.inputs().shape(), data).map_err(err)
    };
    Ok((scaled(&train)?, scaled(&test)?))
}

/// Sets the last layer's bias so that the untrained network outputs each channel's
/// mean pixel of the training images (through the Sigmoid: the bias is that mean's
/// logit) instead of 0.5. Without it, every early step pushes all outputs down at once, and in about
/// half the seeds Adam's first steps drive every ReLU of the last hidden layer dead: the
/// output then stays constant (the collapse of the 2022 project's recipe).
fn set_prior_bias<B: Backend>(
    backend: &B,
    model: &Sequential<B>,
    train: &Tensor,
    channels: usize,
) -> Result<(), String> {
    let plane = train.shape()[1] / channels;
    let mut sums = vec![0.0f64; channels];
    for image in train.data().chunks_exact(channels * plane) {
        for (c, values) in image.chunks_exact(plane).enumerate() {
            sums[c] += values.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    let count = (train.shape()[0] * plane).max(1) as f64;
    let logits: Vec<f32> = sums
        .iter()
        .map(|s| {
            let mean = (s / count).clamp(1e-3, 1.0 - 1e-3);
            (mean / (1.0 - mean)).ln() as f32
        })
        .collect();
    let params = model.parameters();
    let bias = params
        .last()
        .filter(|p| p.name.ends_with("bias") && p.value.len() == channels)
        .ok_or("the denoiser's last parameter is not its output bias")?;
    backend
        .write(bias.value, &logits)
        .map_err(|e| e.to_string())
}

/// Trains one run and measures it; draws the pictures of the first run.
fn run_one<B: Backend>(
    backend: &B,
    args: &Args,
    (all, shape): (&Dataset, Shape),
    seed: u64,
    first: bool,
    progress: &Progress,
) -> Result<RunResult, String> {
    let err = |e: minidl::Error| e.to_string();
    let (train, test) = digits(all, args, seed, first)?;
    let (channels, height, width) = shape;
    let layers = parse_model(&denoiser(channels)).map_err(|e| e.to_string())?;
    let image = RowShape::Image {
        channels,
        height,
        width,
    };
    let mut init = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    let (mut model, out) = build_model(backend, &layers, image, &mut init)
        .map_err(|e| format!("images of {}: {e}", cli::shape_words(shape)))?;
    if out != image {
        return Err(format!(
            "images of {}: the denoiser gives back {out}; its two stride-2 convolutions and two ×2 upsamplings need a height and width that 4 divides",
            cli::shape_words(shape)
        ));
    }
    if args.prior_bias {
        set_prior_bias(backend, &model, &train, channels)?;
    }
    let mut loss = MseLoss::new(Reduction::Mean);
    let mut optimizer = Adam::<B>::new(args.lr).map_err(err)?;
    let mut train_noise = ChaCha8Rng::seed_from_u64(seed.wrapping_add(3));
    let noisy_test =
        noisy(&test, args.sigma, &mut ChaCha8Rng::seed_from_u64(seed + 4)).map_err(err)?;
    let steps = train.shape()[0].div_ceil(args.batch_size);
    let mut step_ms = Vec::new();
    let mut curve = Vec::new();
    let mut final_loss = f64::NAN;
    for epoch in 0..args.epochs {
        // Each digit is visited once an epoch, so fresh noise per epoch is fresh noise
        // per step.
        let inputs = noisy(&train, args.sigma, &mut train_noise).map_err(err)?;
        let targets = noisy(&train, args.sigma, &mut train_noise).map_err(err)?;
        let pairs = Dataset::regression(inputs, targets).map_err(err)?;
        let config = FitConfig {
            epochs: epoch + 1,
            start_epoch: epoch,
            batch_size: args.batch_size,
            shuffle: true,
            seed: seed.wrapping_add(2),
            fused: Fusion::Never,
            gpu_timing: false,
            schedule: Default::default(),
        };
        let reports = fit(
            backend,
            &mut model,
            &mut loss,
            &mut optimizer,
            &pairs,
            &config,
            |_, _| Ok(()),
        )
        .map_err(err)?;
        let Some(report) = reports.last() else {
            continue;
        };
        step_ms.push(report.millis / steps as f64);
        final_loss = report.loss;
        let test_psnr = match args.plot.is_some() && first {
            true => psnr(
                &outputs(backend, &mut model, &noisy_test).map_err(err)?,
                &test,
            ),
            false => f64::NAN,
        };
        progress.epoch(&EpochLine {
            epoch: report.epoch,
            loss: report.loss,
            millis: report.millis,
            gpu_millis: None,
            error: None,
        });
        curve.push(curve::CurvePoint {
            epoch: report.epoch,
            loss: report.loss,
            error_percent: test_psnr,
        });
    }
    let denoised = outputs(backend, &mut model, &noisy_test).map_err(err)?;
    if first {
        if let Some(path) = &args.save {
            checkpoint::save(backend, &model, path).map_err(err)?;
        }
        if let Some(dir) = &args.plot {
            draw(
                dir,
                args,
                seed,
                shape,
                [&noisy_test, &denoised, &test],
                &curve,
            )?;
        }
    }
    Ok(RunResult {
        seed,
        psnr_db: psnr(&denoised, &test),
        noisy_psnr_db: psnr(&noisy_test, &test),
        final_loss,
        step_ms,
    })
}

/// Writes `DIR/denoised.png` and `DIR/training_curve.png`.
fn draw(
    dir: &std::path::Path,
    args: &Args,
    seed: u64,
    (channels, height, width): Shape,
    [noisy, denoised, clean]: [&Tensor; 3],
    curve: &[curve::CurvePoint],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let pixels = channels * height * width;
    let first = |t: &Tensor| -> Vec<Vec<f32>> {
        t.data()
            .chunks_exact(pixels)
            .take(SHOWN)
            .map(|c| c.to_vec())
            .collect()
    };
    let sets = [
        (format!("noisy {:.1} dB", psnr(noisy, clean)), first(noisy)),
        (
            format!("denoised {:.1} dB", psnr(denoised, clean)),
            first(denoised),
        ),
        ("clean".to_string(), first(clean)),
    ];
    let rows: Vec<images::ImageRow> = sets
        .iter()
        .map(|(label, imgs)| images::ImageRow {
            label: label.clone(),
            images: imgs.iter().map(|v| v.as_slice()).collect(),
            range: Some((0.0, 1.0)),
        })
        .collect();
    let title = format!(
        "test images, σ {}, seed {seed}, {} epochs (noisy values clamped to [0, 1] for display)",
        args.sigma, args.epochs
    );
    let shape = (channels, height, width);
    images::draw_image_rows(&dir.join("denoised.png"), &title, shape, &rows)?;
    if !curve.is_empty() {
        let title = format!(
            "denoiser: MSE, Adam lr {}, σ {}, seed {seed}",
            args.lr, args.sigma
        );
        curve::training_curve(
            &dir.join("training_curve.png"),
            &title,
            "test PSNR (dB)",
            curve,
        )?;
    }
    Ok(())
}

/// All runs on `backend`, then the report.
fn train_all<B: Backend>(backend: &B, kind: &str, args: &Args) -> Result<(), String> {
    let progress = Progress::new(args.epochs, args.json);
    let (all, shape) = images(args)?;
    let mut results = Vec::new();
    for r in 0..args.runs {
        let seed = args.seed.wrapping_add(r as u64);
        let result = run_one(backend, args, (&all, shape), seed, r == 0, &progress)?;
        progress.finish();
        progress.say(&format!(
            "seed {seed}: PSNR {:.2} dB (noisy input {:.2} dB), final loss {:.5}",
            result.psnr_db, result.noisy_psnr_db, result.final_loss
        ));
        results.push(result);
    }
    let median = |f: &dyn Fn(&RunResult) -> f64| cli::median(results.iter().map(f).collect());
    let psnr_db = median(&|r| r.psnr_db);
    let noisy_psnr_db = median(&|r| r.noisy_psnr_db);
    let step_ms = cli::median(results.iter().flat_map(|r| r.step_ms.clone()).collect());
    let (lo, hi) = results
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(r.psnr_db), hi.max(r.psnr_db))
        });
    // A run whose output is worse than its noisy input has collapsed.
    let collapsed = results
        .iter()
        .filter(|r| r.psnr_db < r.noisy_psnr_db)
        .count();
    // The CPU backend's threads (as `Cpu::new` reads them); null on the GPU.
    let threads = match kind {
        "cpu" => Cpu::new().threads().to_string(),
        _ => "null".to_string(),
    };
    if args.json {
        let runs: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{{\"seed\":{},\"psnr_db\":{},\"noisy_psnr_db\":{},\"final_loss\":{}}}",
                    r.seed,
                    cli::json_number(r.psnr_db),
                    cli::json_number(r.noisy_psnr_db),
                    cli::json_number(r.final_loss)
                )
            })
            .collect();
        println!(
            "{{\"backend\":{},\"adapter\":{},\"threads\":{},\"image\":[{},{},{}],\"epochs\":{},\"sigma\":{},\"lr\":{},\
             \"batch_size\":{},\"seed\":{},\"psnr_db\":{},\"psnr_db_min\":{},\"psnr_db_max\":{},\
             \"noisy_psnr_db\":{},\"step_ms_median\":{},\"collapsed\":{},\"runs\":[{}]}}",
            cli::json_string(kind),
            cli::json_string(&backend.name()),
            threads,
            shape.0,
            shape.1,
            shape.2,
            args.epochs,
            cli::json_number(args.sigma as f64),
            cli::json_number(args.lr as f64),
            args.batch_size,
            args.seed,
            cli::json_number(psnr_db),
            cli::json_number(lo),
            cli::json_number(hi),
            cli::json_number(noisy_psnr_db),
            cli::json_number(step_ms),
            collapsed,
            runs.join(",")
        );
    } else {
        eprintln!(
            "{kind} ({}): median PSNR {psnr_db:.2} dB over {} run(s) (range {lo:.2}–{hi:.2}), \
             noisy input {noisy_psnr_db:.2} dB, {collapsed} collapsed; median step {step_ms:.2} ms",
            backend.name(),
            results.len()
        );
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    match cli::choose_gpu(args.backend, args.adapter.as_deref())? {
        Some(gpu) => train_all(&gpu, "gpu", args),
        None => train_all(&Cpu::new(), "cpu", args),
    }
}

fn main() -> ExitCode {
    cli::main("denoise", USAGE, args::parse, run)
}
