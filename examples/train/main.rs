//! Trains a network on a data file of the user's (CSV, NPY, safetensors or MNIST
//! digits): a multilayer perceptron (`--hidden`) or any chain of layers, convolutions
//! included (`--model`, with `--image C,H,W` for rows that are images, or the shape
//! that an MNIST, CIFAR or rank-3 IDX file gives): a seeded train/validation/test
//! split, inputs standardized with the training rows' statistics, classification
//! (accuracy, per-class accuracy, confusion matrix) or regression (MSE, R²), with
//! checkpoints to resume a run that stopped.
//!
//! `cargo run --release --example train -- --help` lists the flags;
//! `cargo run --release --example train -- --data datasets/digits/digits.csv.gz` trains
//! on the handwritten digits shipped in the repository. Exit codes: 0 on success, 2 for
//! a bad command line (with the usage), 1 for a failure at run time (one line).

mod args;
#[path = "../shared/cli.rs"]
mod cli;
#[path = "../shared/curve.rs"]
mod curve;
#[path = "../shared/images.rs"]
mod images;
mod plot;
#[path = "../shared/progress.rs"]
mod progress;
mod report;

use std::process::ExitCode;
use std::time::Instant;

use args::{ActivationChoice, Args, LossChoice, USAGE};
use minidl::backend::{DeviceTensor, Reduction};
use minidl::checkpoint::{self, TrainingState};
use minidl::data::{self, Dataset, LoadOptions, Split, Standardizer};
use minidl::metrics::{self, Confusion};
use minidl::nn::{
    build_model, takes_images, CrossEntropyLoss, Linear, Loss, Module, MseLoss, ReLU, RowShape,
    Sequential, Sigmoid, Tanh,
};
use minidl::train::{fit, outputs, predict, FitConfig, Fusion};
use minidl::{Backend, Cpu, Error, Ops};
use progress::{EpochLine, Progress};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;
use report::{Part, Summary};

/// Reads the file and splits it; with `--test-data`, the test part is that file's rows
/// (its rows in `Split::rows` are that file's), which must have the training data's
/// width and targets, and no class the training data lacks (where both name their
/// classes, as image folders do, a class is matched by its name).
fn read_and_split(args: &Args) -> Result<Split, String> {
    let options = LoadOptions {
        header: args.header,
        target: args.target.clone(),
    };
    let all = data::load(&args.data, &options).map_err(|e| e.to_string())?;
    let mut split = data::split(&all, args.split, args.seed).map_err(|e| e.to_string())?;
    let Some(path) = &args.test_data else {
        return Ok(split);
    };
    let test = data::load(path, &options).map_err(|e| e.to_string())?;
    let named = |detail: String| format!("--test-data {}: {detail}", path.display());
    if test.features() != all.features() {
        return Err(named(format!(
            "{} values per row, but --data has {}",
            test.features(),
            all.features()
        )));
    }
    let names = all.class_names().filter(|_| test.class_names().is_some());
    let test = match (all.is_regression(), names) {
        (true, _) if test.targets().shape() != [test.len(), all.targets().shape()[1]] => {
            return Err(named(format!(
                "{} targets per row, but --data has {}",
                test.targets().shape()[1],
                all.targets().shape()[1]
            )))
        }
        (true, _) => test,
        // Classes by name (image folders): the training folder's numbering.
        (false, Some(names)) => test
            .with_classes_named(names)
            .map_err(|e| named(e.to_string()))?,
        (false, None) if test.classes() > all.classes() => {
            return Err(named(format!(
                "class {} is not among the {} classes of --data",
                test.classes() - 1,
                all.classes()
            )))
        }
        // The training data's class count, so that the reports cover every class.
        (false, None) => test
            .with_classes(all.classes())
            .map_err(|e| e.to_string())?,
    };
    if let (Some(a), Some(b)) = (all.image_shape(), test.image_shape()) {
        if a != b {
            return Err(named(format!(
                "images of {} but --data has images of {}",
                cli::shape_words(b),
                cli::shape_words(a)
            )));
        }
    }
    split.rows[2] = (0..test.len()).collect();
    split.test = Some(test);
    Ok(split)
}

/// The image shape of each row: `--image`, else the data's own (MNIST, CIFAR, a
/// rank-3 IDX file) when `--model` takes images, else none.
fn row_image(args: &Args, data: &Dataset) -> Option<(usize, usize, usize)> {
    let model_takes_images = args.model.as_deref().is_some_and(takes_images);
    args.image
        .or(data.image_shape().filter(|_| model_takes_images))
}

/// The three parts of `split` with their inputs through `scaler`.
fn scale(split: &mut Split, scaler: &Standardizer) -> minidl::Result<()> {
    let scaled = |d: &Dataset| d.with_inputs(scaler.transform(d.inputs())?);
    split.train = scaled(&split.train)?;
    split.validation = split.validation.as_ref().map(scaled).transpose()?;
    split.test = split.test.as_ref().map(scaled).transpose()?;
    Ok(())
}

/// The network: `inputs`, the hidden widths with the activation after each, `outputs`;
/// initialised as PyTorch's `nn.Linear` from a stream seeded with `seed + 1`.
fn model<B: Backend>(
    backend: &B,
    args: &Args,
    image: Option<(usize, usize, usize)>,
    inputs: usize,
    outputs: usize,
) -> Result<Sequential<B>, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    if let Some(layers) = &args.model {
        let shape = match image {
            Some((channels, height, width)) => RowShape::Image {
                channels,
                height,
                width,
            },
            None => RowShape::Flat(inputs),
        };
        if shape.width() != inputs {
            return Err(format!(
                "--image {}: {} values per row, but the data has {inputs}",
                shape,
                shape.width()
            ));
        }
        let (model, out) =
            build_model(backend, layers, shape, &mut rng).map_err(|e| e.to_string())?;
        if out != RowShape::Flat(outputs) {
            return Err(format!(
                "--model ends with {out}, but the data has {outputs} {}: end with linear({outputs})",
                if args.loss == LossChoice::Mse { "targets" } else { "classes" }
            ));
        }
        return Ok(model);
    }
    if let Some((c, h, w)) = image {
        if c * h * w != inputs {
            return Err(format!(
                "--image {c},{h},{w}: {} values per row, but the data has {inputs}",
                c * h * w
            ));
        }
    }
    let widths: Vec<usize> = std::iter::once(inputs)
        .chain(args.hidden.iter().copied())
        .chain(std::iter::once(outputs))
        .collect();
    let mut layers: Vec<Box<dyn Module<B>>> = Vec::new();
    for (i, pair) in widths.windows(2).enumerate() {
        let linear = Linear::new(backend, pair[0], pair[1], &mut rng).map_err(|e| e.to_string())?;
        layers.push(Box::new(linear));
        if i + 2 < widths.len() {
            layers.push(match args.activation {
                ActivationChoice::Relu => Box::new(ReLU::new()),
                ActivationChoice::Tanh => Box::new(Tanh::new()),
                ActivationChoice::Sigmoid => Box::new(Sigmoid::new()),
            });
        }
    }
    Sequential::new(layers).map_err(|e| e.to_string())
}

/// The metrics of the model on one part of the data.
fn evaluate<B: Backend>(
    backend: &B,
    model: &mut Sequential<B>,
    data: &Dataset,
) -> minidl::Result<Part> {
    if data.is_regression() {
        let predicted = outputs(backend, model, data.inputs())?;
        return Ok(Part::Regression {
            mse: metrics::mean_squared_error(&predicted, data.targets())?,
            r2: metrics::r2_score(&predicted, data.targets())?,
        });
    }
    let predicted = predict(backend, model, data.inputs())?;
    let classes = data
        .classes()
        .max(predicted.iter().max().map_or(0, |&m| m + 1));
    Ok(Part::Classes(Confusion::new(
        data.labels(),
        &predicted,
        classes,
    )?))
}

fn train<B: Backend>(
    backend: &B,
    kind: &'static str,
    args: &Args,
    progress: &Progress,
) -> Result<Summary, String> {
    let err = |e: Error| e.to_string();
    let mut split = read_and_split(args)?;
    if let Some(path) = &args.split_out {
        cli::write_split(path, &split.rows)?;
    }
    let outputs = match split.train.is_regression() {
        true => split.train.targets().shape()[1],
        false => split.train.classes(),
    };
    let image = row_image(args, &split.train);
    if let (None, Some(shape)) = (args.image, image) {
        progress.say(&format!(
            "each row is an image of {} (the data's own shape)",
            cli::shape_words(shape)
        ));
    }
    let mut model = model(backend, args, image, split.train.features(), outputs)?;
    let mut loss: Box<dyn Loss<B>> = match args.loss {
        LossChoice::CrossEntropy => Box::new(CrossEntropyLoss::new(Reduction::Mean)),
        LossChoice::Mse => Box::new(MseLoss::new(Reduction::Mean)),
    };
    let mut optimizer = args.optimizer.build::<B>().map_err(err)?;
    optimizer
        .prepare(backend, &model.parameters())
        .map_err(err)?;
    // Handles on the optimizer's state, which the epoch hook saves while `fit` holds
    // the optimizer.
    let state: Vec<DeviceTensor<B>> = optimizer.state().into_iter().cloned().collect();
    let state_refs: Vec<&DeviceTensor<B>> = state.iter().collect();
    let mut start_epoch = 0;
    let mut saved_scaler = None;
    if let Some(path) = &args.resume {
        let saved =
            checkpoint::load_training(backend, &model, Some(&state_refs), path).map_err(err)?;
        if saved.epoch > args.epochs {
            return Err(format!(
                "{} holds epoch {}, past --epochs {}",
                path.display(),
                saved.epoch,
                args.epochs
            ));
        }
        start_epoch = saved.epoch;
        saved_scaler = saved.scaler;
        progress.say(&format!(
            "resumed {} after epoch {start_epoch}",
            path.display()
        ));
    }
    // The scaler fitted to the training rows, or a resumed run's, so that its inputs
    // are scaled as before.
    let scaler = match (args.scale, saved_scaler) {
        (false, _) => None,
        (true, Some(s)) => Some(s),
        (true, None) if args.scale_by.is_some() => {
            let features = split.train.features();
            let by = args.scale_by.unwrap_or(1.0);
            Some(Standardizer::new(vec![0.0; features], vec![by; features]).map_err(err)?)
        }
        (true, None) if image.is_some() => {
            Some(Standardizer::fit_global(split.train.inputs()).map_err(err)?)
        }
        (true, None) => Some(Standardizer::fit(split.train.inputs()).map_err(err)?),
    };
    if let Some(scaler) = &scaler {
        scale(&mut split, scaler).map_err(err)?;
    }
    let train_set = &split.train;
    let config = FitConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: true,
        seed: args.seed.wrapping_add(2),
        fused: Fusion::Auto,
        gpu_timing: false,
        schedule: args.schedule,
        start_epoch,
    };
    let mut curve = Vec::new();
    let fitted = fit(
        backend,
        &mut model,
        loss.as_mut(),
        optimizer.as_mut(),
        train_set,
        &config,
        |r, model| {
            let error = match (&split.validation, args.json && args.plot.is_none()) {
                (Some(v), false) => evaluate(backend, model, v)?.error_percent(),
                _ => None,
            };
            progress.epoch(&EpochLine {
                epoch: r.epoch,
                loss: r.loss,
                millis: r.millis,
                gpu_millis: r.gpu_millis,
                error,
            });
            curve.push(curve::CurvePoint {
                epoch: r.epoch,
                loss: r.loss,
                error_percent: error.map_or(f64::NAN, |(_, e)| e),
            });
            if args.checkpoint_every > 0 && r.epoch % args.checkpoint_every == 0 {
                let state = TrainingState {
                    epoch: r.epoch,
                    scaler: scaler.clone(),
                };
                checkpoint::save_training(backend, model, &state_refs, &state, &args.checkpoint)?;
            }
            Ok(())
        },
    );
    progress.finish();
    let reports = fitted.map_err(err)?;
    if let Some(path) = &args.save {
        let state = TrainingState {
            epoch: args.epochs,
            scaler: scaler.clone(),
        };
        checkpoint::save_training(backend, &model, &[], &state, path).map_err(err)?;
        progress.say(&format!("saved the network to {}", path.display()));
    }
    let mut part = |d: &Option<Dataset>| {
        d.as_ref()
            .map(|d| evaluate(backend, &mut model, d))
            .transpose()
            .map_err(err)
    };
    let validation = part(&split.validation)?;
    let test = part(&split.test)?;
    let train = evaluate(backend, &mut model, train_set).map_err(err)?;
    let summary = Summary {
        backend: kind,
        adapter: backend.name(),
        rows: [
            split.rows[0].len(),
            split.rows[1].len(),
            split.rows[2].len(),
        ],
        image,
        class_names: split.train.class_names().map(<[String]>::to_vec),
        train,
        validation,
        test,
        final_loss: reports.last().map_or(f64::NAN, |r| r.loss),
        epoch_ms_median: cli::median(reports.iter().map(|r| r.millis).collect()),
        fused: reports.first().is_some_and(|r| r.fused),
    };
    if let Some(dir) = &args.plot {
        plot::draw(dir, args, &curve, &summary)?;
        // A convolutional first layer: its filters, `[out, in, kh, kw]`.
        let first = model.parameters().into_iter().next();
        if let Some(p) = first.filter(|p| p.shape.len() == 4) {
            let weights = backend.download(p.value).map_err(err)?;
            plot::filters(dir, &p.shape, weights.data())?;
        }
        progress.say(&format!("wrote the pictures into {}", dir.display()));
    }
    Ok(summary)
}

fn run(args: &Args) -> Result<(), String> {
    let start = Instant::now();
    let gpu = cli::choose_gpu(args.backend, args.adapter.as_deref())?;
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
    match args.json {
        true => println!("{}", summary.json(args, start.elapsed().as_secs_f64())),
        false => progress.say(&summary.text()),
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main("train", USAGE, args::parse, run)
}
