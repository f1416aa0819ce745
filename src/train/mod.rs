//! The training loop and error counting. A fit uploads the data once; each step works
//! on views of it, records its ops without waiting, and writes its loss to a device
//! slot; the host reads the losses back once per epoch. A model that is a narrow MLP
//! trains on the fully fused path instead ([`Backend::mlp_epoch`], one op per epoch),
//! unless [`FitConfig::fused`] is off.

mod fused;

pub use fused::mlp_spec;

use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::backend::{Backend, MlpEpoch};
use crate::data::{batches, Dataset};
use crate::error::{Error, Result};
use crate::nn::{Module, MseLoss};
use crate::optim::Sgd;
use crate::tensor::Tensor;

/// How [`fit`] runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FitConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Points per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Shuffle the points before each epoch; in order (as the seed) when `false`.
    pub shuffle: bool,
    /// Seed of the shuffling stream.
    pub seed: u64,
    /// Train a qualifying model (see [`mlp_spec`]) with one fused op per epoch when the
    /// backend can ([`Backend::mlp_fits`]); `false` always takes the step-by-step path.
    pub fused: bool,
    /// Time each epoch on the device too, where the backend can
    /// ([`EpochReport::gpu_millis`]); costs one more short wait per epoch.
    pub gpu_timing: bool,
}

impl Default for FitConfig {
    /// The seed workload: 300 epochs of mini-batches of 10, in order, fused where
    /// possible.
    fn default() -> Self {
        FitConfig {
            epochs: 300,
            batch_size: 10,
            shuffle: false,
            seed: 0,
            fused: true,
            gpu_timing: false,
        }
    }
}

/// What one epoch of [`fit`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// The sum of the mini-batch losses of the epoch (summed in `f64` on the host).
    pub loss: f64,
    /// Wall-clock time of the epoch, the final read-back of the losses included (the
    /// device timer's read-back not), in milliseconds.
    pub millis: f64,
    /// Whether the epoch ran on the fully fused path.
    pub fused: bool,
    /// Device time of the epoch's work in milliseconds (timestamp queries), when
    /// [`FitConfig::gpu_timing`] is on and the backend has a device timer.
    pub gpu_millis: Option<f64>,
}

/// Trains `model` on `data` with `loss` and `optimizer`, calling `on_epoch` after each
/// epoch, and returns every epoch's report.
pub fn fit<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    loss: &mut MseLoss<B>,
    optimizer: &Sgd,
    data: &Dataset,
    config: &FitConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    let ranges: Vec<_> = batches(data.len(), config.batch_size)?.collect();
    let inputs = backend.upload(data.inputs())?;
    let targets = backend.upload(data.targets())?;
    let losses = backend.alloc(ranges.len(), 1)?;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut reports = Vec::with_capacity(config.epochs);
    let packed = if config.fused {
        fused::Packed::plan(backend, model, config.batch_size)?
    } else {
        None
    };
    if let Some(packed) = &packed {
        packed.pack(backend, model)?;
    }
    let hyper = MlpEpoch {
        batch_size: config.batch_size,
        lr: optimizer.lr(),
        reduction: loss.reduction(),
    };
    // The fused path trains the packed copy and unpacks it into the model once, at
    // the end (the model is not reachable while `fit` holds it), also after an error.
    let mut run = || -> Result<()> {
        for epoch in 1..=config.epochs {
            let start = Instant::now();
            if config.shuffle {
                order.shuffle(&mut rng);
                backend.write(&inputs, &gather_rows(data.inputs(), &order))?;
                backend.write(&targets, &gather_rows(data.targets(), &order))?;
            }
            if config.gpu_timing {
                backend.timer_start()?;
            }
            if let Some(packed) = &packed {
                backend.mlp_epoch(
                    &packed.spec,
                    &packed.params,
                    &inputs,
                    &targets,
                    &hyper,
                    &losses,
                )?;
            }
            for (i, range) in ranges.iter().enumerate().filter(|_| packed.is_none()) {
                let x = inputs.slice_rows(range.start, range.len())?;
                let t = targets.slice_rows(range.start, range.len())?;
                model.zero_grad(backend)?;
                let pred = model.forward(backend, &x)?.clone();
                loss.forward(backend, &pred, &t, &losses.slice_rows(i, 1)?)?;
                let grad = loss.backward(backend, &pred, &t)?.clone();
                model.backward(backend, &grad)?;
                optimizer.step(backend, model)?;
            }
            if config.gpu_timing {
                backend.timer_stop()?;
            }
            let epoch_loss = backend
                .download(&losses)?
                .data()
                .iter()
                .map(|&l| l as f64)
                .sum();
            let millis = start.elapsed().as_secs_f64() * 1e3;
            let report = EpochReport {
                epoch,
                loss: epoch_loss,
                millis,
                fused: packed.is_some(),
                gpu_millis: if config.gpu_timing {
                    backend.timer_read()?
                } else {
                    None
                },
            };
            on_epoch(&report);
            reports.push(report);
        }
        Ok(())
    };
    let result = run();
    if let Some(packed) = &packed {
        packed.unpack(backend, model)?;
    }
    result.map(|()| reports)
}

fn gather_rows(t: &Tensor, order: &[usize]) -> Vec<f32> {
    let cols = t.shape()[1];
    order
        .iter()
        .flat_map(|&r| &t.data()[r * cols..(r + 1) * cols])
        .copied()
        .collect()
}

/// The predicted class of each row of `inputs`: the arg-max of the model's outputs
/// (the first one on ties, as `torch.argmax`).
pub fn predict<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    inputs: &Tensor,
) -> Result<Vec<usize>> {
    let x = backend.upload(inputs)?;
    let out = backend.download(model.forward(backend, &x)?)?;
    let classes = out.shape()[1];
    if classes == 0 {
        return Err(Error::InvalidArgument("the model has no outputs".into()));
    }
    Ok(out
        .data()
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect())
}

/// How many points of `data` the model classifies wrongly.
pub fn count_errors<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    data: &Dataset,
) -> Result<usize> {
    let predicted = predict(backend, model, data.inputs())?;
    Ok(predicted
        .iter()
        .zip(data.labels())
        .filter(|(p, l)| p != l)
        .count())
}
