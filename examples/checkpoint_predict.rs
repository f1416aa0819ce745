//! Runs a saved seed network on points read from a safetensors file and writes its
//! outputs to another: the checkpoint API used from a program, and the minidl half of
//! `bench/pytorch_checkpoint.py`, which checks that minidl and PyTorch read each
//! other's checkpoints and compute the same outputs.
//!
//! `cargo run --release --example checkpoint_predict -- CHECKPOINT INPUTS OUTPUTS
//! [--logits] [--model LAYERS [--image C,H,W]] [--backend cpu|gpu]`: INPUTS holds an
//! F32 tensor `"inputs"` of `n` rows (`[n, 2]` for the seed network; any shape whose
//! first dimension is `n` is read as `n` flat rows); OUTPUTS gets the tensor
//! `"outputs"`, `[n, out]`. `--logits` builds the seed network without its final Tanh
//! (as `disc_gpu --loss ce` trains it); `--model` builds the network of a layer list
//! instead, as `train --model` does (on rows of `C·H·W` values with `--image`).
//!
//! With `--adam LR`, the loaded network first trains on INPUTS' rows against its tensor
//! `"targets"` (`[n, out]`, or any shape whose first dimension is `n`): MSE (mean),
//! PyTorch's Adam at rate `LR`, one pass over the rows in order in batches of
//! `--batch-size` (default 64); OUTPUTS then holds the outputs of the trained network
//! and its parameters under their state-dict names. That is the minidl half of
//! `bench/pytorch_steps.py`, which checks that the same steps from the same weights on
//! the same batches end where PyTorch's do.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use minidl::backend::Reduction;
use minidl::checkpoint;
use minidl::data::Dataset;
use minidl::nn::{build_model, parse_model, LayerSpec, Module, MseLoss, RowShape};
use minidl::optim::Adam;
use minidl::train::{fit, FitConfig, Fusion};
use minidl::Ops;
use minidl::{seed, Backend, Cpu, Gpu, Tensor};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

const USAGE: &str = "usage: checkpoint_predict CHECKPOINT INPUTS OUTPUTS [--logits] \
                     [--model LAYERS [--image C,H,W]] [--adam LR [--batch-size B]] \
                     [--backend cpu|gpu]";

/// Training before the prediction (`--adam`).
#[derive(Clone, Copy)]
struct Steps {
    lr: f32,
    batch_size: usize,
}

/// The network to load: the seed network (with or without its Tanh) or a layer list.
struct Network {
    logits: bool,
    model: Option<Vec<LayerSpec>>,
    image: Option<(usize, usize, usize)>,
    steps: Option<Steps>,
}

/// `t` as a matrix of flat rows: its first dimension by the product of the others.
fn as_rows(t: &Tensor) -> minidl::Result<Tensor> {
    let rows = t.shape().first().copied().unwrap_or(0);
    let width = t.shape().iter().skip(1).product::<usize>();
    Tensor::new(&[rows, width], t.data().to_vec())
}

/// One pass of MSE and Adam over `inputs` and `targets` in order (see the file's doc).
fn train_steps<B: Backend, M: Module<B>>(
    b: &B,
    model: &mut M,
    inputs: &Tensor,
    targets: Tensor,
    steps: Steps,
) -> Result<(), String> {
    let err = |e: minidl::Error| e.to_string();
    let pairs =
        Dataset::regression(inputs.clone(), as_rows(&targets).map_err(err)?).map_err(err)?;
    let config = FitConfig {
        epochs: 1,
        batch_size: steps.batch_size,
        shuffle: false,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    let mut loss = MseLoss::new(Reduction::Mean);
    let mut optimizer = Adam::<B>::new(steps.lr).map_err(err)?;
    fit(
        b,
        model,
        &mut loss,
        &mut optimizer,
        &pairs,
        &config,
        |_, _| Ok(()),
    )
    .map_err(err)?;
    Ok(())
}

fn predict<B: Backend>(b: &B, files: &[String], net: &Network) -> Result<(), String> {
    let err = |e: minidl::Error| e.to_string();
    let path = Path::new(&files[1]);
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tensors = checkpoint::parse(&bytes, path).map_err(err)?;
    let inputs = tensors
        .remove("inputs")
        .ok_or_else(|| format!("{}: no tensor \"inputs\"", path.display()))?;
    let inputs = as_rows(&inputs).map_err(err)?;
    let width = inputs.shape()[1];
    let mut init = ChaCha8Rng::seed_from_u64(0);
    let mut model = match (&net.model, net.logits) {
        (Some(layers), _) => {
            let shape = match net.image {
                Some((channels, height, width)) => RowShape::Image {
                    channels,
                    height,
                    width,
                },
                None => RowShape::Flat(width),
            };
            build_model(b, layers, shape, &mut init).map_err(err)?.0
        }
        (None, true) => seed::logit_network(b, &mut init).map_err(err)?,
        (None, false) => seed::network(b, &mut init).map_err(err)?,
    };
    // A plain checkpoint, or one of `train --save` (whose scaler is not applied: the
    // inputs are taken as the network sees them).
    checkpoint::load_training(b, &model, None, &files[0]).map_err(err)?;
    let mut written = BTreeMap::new();
    if let Some(steps) = net.steps {
        let targets = tensors
            .remove("targets")
            .ok_or_else(|| format!("{}: --adam needs a tensor \"targets\"", path.display()))?;
        train_steps(b, &mut model, &inputs, targets, steps)?;
        for p in model.parameters() {
            let values = b.download(p.value).map_err(err)?;
            let values = Tensor::new(&p.shape, values.data().to_vec()).map_err(err)?;
            written.insert(p.name.clone(), values);
        }
    }
    let x = b.upload(&inputs).map_err(err)?;
    let y = model.forward(b, &x).map_err(err)?.clone();
    written.insert("outputs".to_string(), b.download(&y).map_err(err)?);
    let bytes = checkpoint::serialize(&written).map_err(err)?;
    std::fs::write(&files[2], bytes).map_err(|e| format!("{}: {e}", files[2]))
}

fn main() -> ExitCode {
    let mut files = Vec::new();
    let mut gpu = false;
    let mut net = Network {
        logits: false,
        model: None,
        image: None,
        steps: None,
    };
    let (mut adam_lr, mut batch_size) = (None, 64);
    let mut args = std::env::args().skip(1);
    let bad = |what: String| {
        eprintln!("checkpoint_predict: {what}\n{USAGE}");
        ExitCode::from(2)
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--logits" => net.logits = true,
            "--model" => match args.next().map(|v| parse_model(&v)) {
                Some(Ok(layers)) => net.model = Some(layers),
                Some(Err(e)) => return bad(format!("--model: {e}")),
                None => return bad("--model needs a layer list".into()),
            },
            "--image" => {
                let sizes: Option<Vec<usize>> = args
                    .next()
                    .map(|v| v.split(',').map(|p| p.trim().parse().ok()).collect())
                    .and_then(|s: Option<Vec<usize>>| s);
                match sizes.as_deref() {
                    Some(&[c, h, w]) if c > 0 && h > 0 && w > 0 => net.image = Some((c, h, w)),
                    _ => return bad("--image needs C,H,W, each at least 1".into()),
                }
            }
            "--adam" => match args.next().map(|v| v.parse::<f32>()) {
                Some(Ok(lr)) if lr.is_finite() && lr > 0.0 => adam_lr = Some(lr),
                _ => return bad("--adam needs a positive learning rate".into()),
            },
            "--batch-size" => match args.next().map(|v| v.parse::<usize>()) {
                Some(Ok(n)) if n > 0 => batch_size = n,
                _ => return bad("--batch-size needs a whole number of at least 1".into()),
            },
            "--backend" => match args.next().as_deref() {
                Some("cpu") => gpu = false,
                Some("gpu") => gpu = true,
                _ => {
                    eprintln!("checkpoint_predict: --backend needs cpu or gpu\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            f if !f.starts_with("--") => files.push(a),
            other => {
                eprintln!("checkpoint_predict: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    net.steps = adam_lr.map(|lr| Steps { lr, batch_size });
    if files.len() != 3 {
        eprintln!("checkpoint_predict: expected 3 files\n{USAGE}");
        return ExitCode::from(2);
    }
    let result = if gpu {
        Gpu::new()
            .map_err(|e| e.to_string())
            .and_then(|g| predict(&g, &files, &net))
    } else {
        predict(&Cpu::new(), &files, &net)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checkpoint_predict: {e}");
            ExitCode::from(1)
        }
    }
}
