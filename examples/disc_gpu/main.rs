//! Trains the seed network on the disc task, on the GPU (or the CPU backend), and
//! reports the loss and test error per epoch and the final train and test errors; it
//! can save and load the network (safetensors, PyTorch names) and plot the run.
//!
//! `cargo run --release --example disc_gpu -- --help` lists the flags. Exit codes: 0
//! on success, 2 for a bad command line (with the usage), 1 for a failure at run time
//! (with one line saying what failed).

mod args;
#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/curve.rs"]
mod curve;
mod plot;
#[path = "../shared/progress.rs"]
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use args::{Args, LossChoice, USAGE};
use cli::{json_number, json_string, median};
use minidl::data::{disc_train_test, Dataset, DISC_POINTS, DISC_RADIUS};
use minidl::nn::{CrossEntropyLoss, Loss, MseLoss, Sequential};
use minidl::optim::Optimizer;
use minidl::optim::{LrSchedule, Schedule};
use minidl::train::{
    count_errors, fit, fit_runs, predict, run_many, EpochReport, FitConfig, FitRun, Fusion,
};
use minidl::{checkpoint, seed, Backend, Cpu, Error, Gpu, Tensor};
use progress::{EpochLine, Progress};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

/// Cells along each side of the decision-boundary picture.
const GRID: usize = 200;

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
    /// Loss and test error per epoch, where they were measured (else empty).
    curve: Vec<curve::CurvePoint>,
}

/// The network the loss calls for: the seed network, without its final Tanh for a
/// cross-entropy loss.
fn model<B: Backend>(backend: &B, args: &Args) -> Result<Sequential<B>, Error> {
    let mut init = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    match args.loss {
        LossChoice::Mse => seed::network(backend, &mut init),
        LossChoice::CrossEntropy => seed::logit_network(backend, &mut init),
    }
}

fn loss<B: Backend>(args: &Args) -> Box<dyn Loss<B>> {
    match args.loss {
        LossChoice::Mse => Box::new(MseLoss::new(seed::REDUCTION)),
        LossChoice::CrossEntropy => Box::new(CrossEntropyLoss::new(seed::REDUCTION)),
    }
}

/// What one run trains: its data, network, loss, optimizer and configuration.
struct Parts<B: Backend> {
    train_set: Dataset,
    test_set: Dataset,
    model: Sequential<B>,
    loss: Box<dyn Loss<B>>,
    optimizer: Box<dyn Optimizer<B>>,
    config: FitConfig,
}

/// The parts of the run `args` describe (data from its seed, weights from the seed +
/// 1, loaded from `--load` where given).
fn parts<B: Backend>(backend: &B, args: &Args) -> Result<Parts<B>, String> {
    let (train_set, test_set) = disc_train_test(args.seed).map_err(|e| e.to_string())?;
    let model = model(backend, args).map_err(|e| e.to_string())?;
    if let Some(path) = &args.load {
        checkpoint::load(backend, &model, path).map_err(|e| e.to_string())?;
    }
    let optimizer = args
        .optimizer_flags()
        .build::<B>()
        .map_err(|e| e.to_string())?;
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: args.shuffle,
        seed: args.seed,
        fused: if args.fused {
            Fusion::Auto
        } else {
            Fusion::Never
        },
        gpu_timing: true,
        schedule: args.schedule,
        start_epoch: 0,
    };
    Ok(Parts {
        train_set,
        test_set,
        model,
        loss: loss::<B>(args),
        optimizer,
        config,
    })
}

/// A point of the training curve after an epoch: its loss and, where `evaluate`, the
/// test error of the model after it.
fn curve_point<B: Backend>(
    backend: &B,
    report: &EpochReport,
    model: &mut Sequential<B>,
    test_set: &Dataset,
    evaluate: bool,
) -> minidl::Result<curve::CurvePoint> {
    let error_percent = match evaluate {
        true => 100.0 * count_errors(backend, model, test_set)? as f64 / test_set.len() as f64,
        false => f64::NAN,
    };
    Ok(curve::CurvePoint {
        epoch: report.epoch,
        loss: report.loss,
        error_percent,
    })
}

/// The summary of a finished run.
fn summary<B: Backend>(
    backend: &B,
    kind: &'static str,
    parts: &mut Parts<B>,
    reports: &[EpochReport],
    curve: Vec<curve::CurvePoint>,
) -> Result<Summary, String> {
    let gpu_times: Vec<f64> = reports.iter().filter_map(|r| r.gpu_millis).collect();
    let mut errors =
        |data: &Dataset| count_errors(backend, &mut parts.model, data).map_err(|e| e.to_string());
    Ok(Summary {
        backend: kind,
        adapter: backend.name(),
        train_errors: errors(&parts.train_set)?,
        test_errors: errors(&parts.test_set)?,
        final_loss: reports.last().map_or(f64::NAN, |r| r.loss),
        epoch_ms_median: median(reports.iter().map(|r| r.millis).collect()),
        epoch_gpu_ms_median: median(gpu_times),
        fused: reports.first().is_some_and(|r| r.fused),
        curve,
    })
}

/// Trains one run as `args` say, printing its progress.
fn train<B: Backend>(
    backend: &B,
    kind: &'static str,
    args: &Args,
    progress: &Progress,
) -> Result<Summary, String> {
    let mut parts = parts(backend, args)?;
    let evaluate = !args.json || args.plot.is_some();
    let mut curve = Vec::new();
    let test_set = &parts.test_set;
    let fitted = fit(
        backend,
        &mut parts.model,
        parts.loss.as_mut(),
        parts.optimizer.as_mut(),
        &parts.train_set,
        &parts.config,
        |r, model| {
            let point = curve_point(backend, r, model, test_set, evaluate)?;
            progress.epoch(&EpochLine {
                epoch: r.epoch,
                loss: r.loss,
                millis: r.millis,
                gpu_millis: r.gpu_millis,
                error: evaluate.then_some(("test error", point.error_percent)),
            });
            curve.push(point);
            Ok(())
        },
    );
    progress.finish();
    let model = &mut parts.model;
    let reports = match fitted {
        Ok(reports) => reports,
        // The model holds the last finite step's parameters: keep them if asked to.
        Err(e @ Error::Diverged { .. }) => {
            return Err(match &args.save {
                Some(path) => match checkpoint::save(backend, model, path) {
                    Ok(()) => format!("{e}; saved them to {}", path.display()),
                    Err(save) => format!("{e}; saving them failed too: {save}"),
                },
                None => e.to_string(),
            })
        }
        Err(e) => return Err(e.to_string()),
    };
    if let Some(path) = &args.save {
        checkpoint::save(backend, model, path).map_err(|e| e.to_string())?;
        progress.say(&format!("saved the network to {}", path.display()));
    }
    if let Some(dir) = &args.plot {
        draw(backend, model, dir, &curve, &parts.test_set, args).map_err(|e| e.to_string())?;
        progress.say(&format!(
            "wrote {} and {}",
            dir.join(CURVE_PNG).display(),
            dir.join(BOUNDARY_PNG).display()
        ));
    }
    let curve = match evaluate {
        true => curve,
        false => Vec::new(),
    };
    summary(backend, kind, &mut parts, &reports, curve)
}

/// The training curve's file name under `--plot DIR`.
const CURVE_PNG: &str = "training_curve.png";
/// The decision boundary's file name under `--plot DIR`.
const BOUNDARY_PNG: &str = "decision_boundary.png";

/// The distribution of test errors over runs, under `--plot DIR` with `--runs R`.
const DISTRIBUTION_PNG: &str = "test_errors.png";

/// The flag value of a schedule.
fn schedule_name(kind: LrSchedule) -> &'static str {
    match kind {
        LrSchedule::Constant => "constant",
        LrSchedule::Cosine { .. } => "cosine",
        LrSchedule::Step { .. } => "step",
    }
}

/// The recipe of `args` in words, for the pictures' titles and legends.
fn recipe(args: &Args) -> String {
    let schedule = schedule_name(args.schedule.kind);
    let warmup = match args.schedule.warmup {
        0 => String::new(),
        n => format!(" after {n} epochs of warm-up"),
    };
    format!(
        "{} loss, {}, lr {} ({schedule}{warmup})",
        args.loss.flag(),
        args.optimizer.flag(),
        args.lr
    )
}

/// Writes the pictures of several runs of each recipe into `dir` (created if needed):
/// the test errors of every run, recipe beside recipe, and each recipe's training
/// curves as medians with min–max bands (`training_curve.png` for the first,
/// `training_curve_<schedule>.png` for the others). Returns the files written.
fn draw_runs(
    dir: &Path,
    recipes: &[Args],
    results: &[Vec<Summary>],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let Some((first, first_runs)) = recipes.first().zip(results.first()) else {
        return Ok(Vec::new());
    };
    let runs = first_runs.len();
    let backend = first_runs
        .first()
        .map_or(String::new(), |s| s.adapter.clone());
    let distribution = dir.join(DISTRIBUTION_PNG);
    plot::run_distribution(
        &distribution,
        &format!(
            "disc task, {runs} runs of {} epochs on {backend}",
            first.epochs
        ),
        &recipes
            .iter()
            .zip(results)
            .map(|(args, summaries)| plot::Recipe {
                name: recipe(args),
                runs: summaries
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (args.seed + i as u64, s.test_errors))
                    .collect(),
            })
            .collect::<Vec<_>>(),
        DISC_POINTS,
    )?;
    let mut written = vec![distribution];
    for (i, (args, summaries)) in recipes.iter().zip(results).enumerate() {
        let path = match i {
            0 => dir.join(CURVE_PNG),
            _ => dir.join(format!(
                "training_curve_{}.png",
                schedule_name(args.schedule.kind)
            )),
        };
        let curves: Vec<Vec<curve::CurvePoint>> =
            summaries.iter().map(|s| s.curve.clone()).collect();
        plot::training_curve_of_runs(
            &path,
            &format!("disc task, {runs} runs: {}", recipe(args)),
            "test error (%)",
            &curves,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the two pictures into `dir` (created if needed).
fn draw<B: Backend>(
    backend: &B,
    model: &mut Sequential<B>,
    dir: &Path,
    curve: &[curve::CurvePoint],
    test_set: &Dataset,
    args: &Args,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let setup = format!(
        "seed {}, {} epochs, {} loss, {}, lr {}",
        args.seed,
        args.epochs,
        args.loss.flag(),
        args.optimizer.flag(),
        args.lr
    );
    if !curve.is_empty() {
        curve::training_curve(
            &dir.join(CURVE_PNG),
            &format!("disc task: {setup}"),
            "test error (%)",
            curve,
        )?;
    }
    let cells: Vec<f32> = (0..GRID * GRID)
        .flat_map(|i| {
            let (r, c) = (i / GRID, i % GRID);
            [
                (c as f32 + 0.5) / GRID as f32,
                (r as f32 + 0.5) / GRID as f32,
            ]
        })
        .collect();
    let grid = Tensor::new(&[GRID * GRID, 2], cells).map_err(|e| e.to_string())?;
    let grid_classes = predict(backend, model, &grid).map_err(|e| e.to_string())?;
    let predicted = predict(backend, model, test_set.inputs()).map_err(|e| e.to_string())?;
    let points: Vec<plot::TestPoint> = test_set
        .inputs()
        .data()
        .chunks(2)
        .zip(test_set.labels())
        .zip(&predicted)
        .map(|((xy, &label), &p)| plot::TestPoint {
            x: xy[0],
            y: xy[1],
            label,
            correct: p == label,
        })
        .collect();
    plot::decision_boundary(
        &dir.join(BOUNDARY_PNG),
        &format!(
            "decision boundary: {}, {}, seed {}",
            args.loss.flag(),
            args.optimizer.flag(),
            args.seed
        ),
        GRID,
        &grid_classes,
        DISC_RADIUS,
        &points,
    )
}

fn run(args: &Args) -> Result<(), String> {
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
    let gpu = cli::choose_gpu(args.backend, args.adapter.as_deref())?;
    if args.runs > 1 {
        return many_runs(args, gpu.as_ref());
    }
    let progress = Progress::new(args.epochs, args.json);
    let summary = match &gpu {
        Some(gpu) => {
            progress.say(&format!("backend gpu: {}", gpu.adapter()));
            train(gpu, "gpu", args, &progress)?
        }
        None => {
            progress.say("backend cpu");
            train(&Cpu::new(), "cpu", args, &progress)?
        }
    };
    progress.say(&format!(
        "train errors {}/{}  test errors {}/{}",
        summary.train_errors, DISC_POINTS, summary.test_errors, DISC_POINTS
    ));
    if args.json {
        println!(
            "{{\"backend\":{},\"adapter\":{},\"epochs\":{},\"lr\":{},\"batch_size\":{},\"seed\":{},\"loss\":{},\"optimizer\":{},\"train_errors\":{},\"test_errors\":{},\"test_points\":{},\"final_loss\":{},\"epoch_ms_median\":{},\"epoch_gpu_ms_median\":{},\"fused\":{},\"total_s\":{}}}",
            json_string(summary.backend),
            json_string(&summary.adapter),
            args.epochs,
            args.lr,
            args.batch_size,
            args.seed,
            json_string(args.loss.flag()),
            json_string(args.optimizer.flag()),
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

/// `--runs R`: seeds `args.seed` … `args.seed + R − 1`, each trained as a run of its
/// own would be (data from the seed, weights from the seed + 1), all together through
/// `fit_runs` (see [`runs_on`]). Prints
/// each run and the distribution of the test errors, for each schedule of a list
/// (`--lr-schedule A,B`); `--plot DIR` draws the distributions side by side and each
/// schedule's training curves (median and min–max band).
fn many_runs(args: &Args, gpu: Option<&Gpu>) -> Result<(), String> {
    let recipes: Vec<Args> = std::iter::once(args.clone())
        .chain(args.compare.iter().map(|&kind| Args {
            schedule: Schedule {
                kind,
                ..args.schedule
            },
            compare: Vec::new(),
            ..args.clone()
        }))
        .collect();
    let mut results = Vec::new();
    for recipe in &recipes {
        let start = Instant::now();
        let summaries = runs_of(recipe, gpu)?;
        report_runs(recipe, &summaries, start, recipes.len() > 1);
        results.push(summaries);
    }
    if let Some(dir) = &args.plot {
        let written = draw_runs(dir, &recipes, &results)?;
        if !args.json {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            println!("wrote {}", names.join(", "));
        }
    }
    Ok(())
}

/// The `args.runs` runs of one recipe, in seed order.
fn runs_of(args: &Args, gpu: Option<&Gpu>) -> Result<Vec<Summary>, String> {
    if !args.json {
        let on = gpu.map_or("the CPU".to_string(), |g| g.adapter().to_string());
        println!("{} runs of {} on {on}", args.runs, recipe(args));
    }
    match gpu {
        Some(gpu) => runs_on(gpu, "gpu", args),
        // Step by step the runs do not train together (`fit_runs` would take them in
        // turn, each step's small ops on one thread): each takes a thread of its own.
        None if !args.fused => {
            let one = |i: usize| -> minidl::Result<Summary> {
                let run = Args {
                    seed: args.seed + i as u64,
                    runs: 1,
                    ..args.clone()
                };
                runs_on(&Cpu::with_threads(1)?, "cpu", &run)
                    .map(|mut summaries| summaries.remove(0))
                    .map_err(Error::InvalidArgument)
            };
            run_many(args.runs, Cpu::new().threads(), one).map_err(|e| match e {
                Error::InvalidArgument(why) => why,
                e => e.to_string(),
            })
        }
        None => runs_on(&Cpu::new(), "cpu", args),
    }
}

/// The runs of [`runs_of`] on `backend`, trained together by `fit_runs` (one fused
/// op per epoch for all of them: on the GPU one workgroup each, on the CPU on its
/// threads); the test errors after every epoch only where the curves are drawn.
fn runs_on<B: Backend>(
    backend: &B,
    kind: &'static str,
    args: &Args,
) -> Result<Vec<Summary>, String> {
    let seeds: Vec<u64> = (0..args.runs as u64).map(|i| args.seed + i).collect();
    let mut all = seeds
        .iter()
        .map(|&seed| {
            parts(
                backend,
                &Args {
                    seed,
                    ..args.clone()
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let evaluate = args.plot.is_some();
    let mut curves: Vec<Vec<curve::CurvePoint>> = vec![Vec::new(); all.len()];
    let mut test_sets: Vec<&Dataset> = Vec::new();
    let mut runs = Vec::new();
    for p in all.iter_mut() {
        test_sets.push(&p.test_set);
        runs.push(FitRun {
            model: &mut p.model,
            loss: p.loss.as_mut(),
            optimizer: p.optimizer.as_mut(),
            data: &p.train_set,
            config: p.config.clone(),
        });
    }
    let results = fit_runs(backend, &mut runs, |r, report, model| {
        let point = curve_point(backend, report, model, test_sets[r], evaluate)?;
        curves[r].push(point);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    drop(runs);
    let mut summaries = Vec::new();
    for (((p, result), curve), seed) in all.iter_mut().zip(results).zip(curves).zip(&seeds) {
        let reports = result.map_err(|e| format!("the run of seed {seed}: {e}"))?;
        let curve = match evaluate {
            true => curve,
            false => Vec::new(),
        };
        summaries.push(summary(backend, kind, p, &reports, curve)?);
    }
    Ok(summaries)
}

/// Prints the runs of one recipe and their distribution: a JSON line with `--json`
/// (one per recipe where several are compared), else a line per run and a summary.
fn report_runs(args: &Args, summaries: &[Summary], start: Instant, compared: bool) {
    let errors: Vec<usize> = summaries.iter().map(|s| s.test_errors).collect();
    let median = median(errors.iter().map(|&e| e as f64).collect());
    let mean = errors.iter().sum::<usize>() as f64 / errors.len() as f64;
    let min = errors.iter().copied().min().unwrap_or(0);
    let max = errors.iter().copied().max().unwrap_or(0);
    if args.json {
        let runs: Vec<String> = summaries
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{{\"seed\":{},\"test_errors\":{},\"train_errors\":{},\"final_loss\":{}}}",
                    args.seed + i as u64,
                    s.test_errors,
                    s.train_errors,
                    json_number(s.final_loss)
                )
            })
            .collect();
        let first = &summaries[0];
        println!(
            "{{\"backend\":{},\"adapter\":{},\"epochs\":{},\"lr\":{},\"lr_schedule\":{},\"batch_size\":{},\"seed\":{},\"loss\":{},\"optimizer\":{},\"test_points\":{},\"fused\":{},\"runs\":[{}],\"test_errors_median\":{},\"test_errors_mean\":{},\"test_errors_min\":{},\"test_errors_max\":{},\"total_s\":{}}}",
            json_string(first.backend),
            json_string(&first.adapter),
            args.epochs,
            args.lr,
            json_string(schedule_name(args.schedule.kind)),
            args.batch_size,
            args.seed,
            json_string(args.loss.flag()),
            json_string(args.optimizer.flag()),
            DISC_POINTS,
            first.fused,
            runs.join(","),
            json_number(median),
            json_number(mean),
            min,
            max,
            json_number(start.elapsed().as_secs_f64()),
        );
        return;
    }
    for (i, s) in summaries.iter().enumerate() {
        println!(
            "seed {}: test errors {}/{}, train errors {}/{}, final loss {:.3}",
            args.seed + i as u64,
            s.test_errors,
            DISC_POINTS,
            s.train_errors,
            DISC_POINTS,
            s.final_loss
        );
    }
    let which = match compared {
        true => format!(" with the {} schedule", schedule_name(args.schedule.kind)),
        false => String::new(),
    };
    println!(
        "test errors over {} runs{which}: median {median}, mean {mean:.1}, min {min}, max {max}",
        args.runs
    );
}

fn main() -> ExitCode {
    cli::main("disc_gpu", USAGE, args::parse, run)
}
