//! Training: [`fit`], its configuration and its reports; [`fit_runs`] (many runs at
//! once) is in `runs`, the one epoch loop both train through in `epochs`, prediction
//! and error counting in `predict`. A fit uploads the data once; each step works on
//! views of it, records its ops without waiting, writes its loss to a device slot and
//! allocates nothing on the host; the host reads the losses back once per epoch. A model that is a narrow MLP trains on the fully
//! fused path instead (the backend's [`MlpTrainer`](crate::backend::MlpTrainer), one op
//! per epoch) where it pays for the run's length, or as [`FitConfig::fused`] says.

mod epochs;
mod fused;
mod predict;
mod runs;

pub use fused::mlp_spec;
pub use predict::{count_errors, outputs, predict};
pub use runs::{fit_runs, run_many, FitRun};

use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::{Loss, Module};
use crate::optim::{Optimizer, Schedule};

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
    /// Whether a qualifying model (see [`mlp_spec`]) trains with one fused op per epoch
    /// where the backend's [`MlpTrainer`](crate::backend::MlpTrainer) takes it: where
    /// it pays for the run's length ([`Fusion::Auto`], the default), always, or never
    /// (`true` and `false` convert to the last two).
    pub fused: Fusion,
    /// Time each epoch on the device too, where the backend can
    /// ([`EpochReport::gpu_millis`]); costs one more short wait per epoch.
    pub gpu_timing: bool,
    /// The learning rate of each epoch, from the optimizer's rate at the start of the
    /// fit ([`Schedule`]); the constant rate by default.
    pub schedule: Schedule,
    /// Epochs already trained, for a run resumed from a checkpoint: `fit` trains epochs
    /// `start_epoch + 1 ..= epochs`, each at the schedule's rate for it, and first
    /// replays the shuffles of the epochs before, so that the shuffling stream and the
    /// order of the points continue as in a run that was never interrupted. 0 (the
    /// default) trains from the first epoch.
    pub start_epoch: usize,
}

impl Default for FitConfig {
    /// The seed workload: 300 epochs of mini-batches of 10, in order, fused where it
    /// pays.
    fn default() -> Self {
        FitConfig {
            epochs: 300,
            batch_size: 10,
            shuffle: false,
            seed: 0,
            fused: Fusion::Auto,
            gpu_timing: false,
            schedule: Schedule::constant(),
            start_epoch: 0,
        }
    }
}

/// Which path [`fit`] trains a model on that has a fused form (see [`mlp_spec`]): the
/// fused path, one op per epoch, builds its kernel first (on a GPU, a generated shader
/// compiled in tenths of a second), which a short run may not win back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fusion {
    /// Fused where it pays: the backend's trainer is asked with the run's number of
    /// steps ([`MlpTrainer::pays`](crate::backend::MlpTrainer::pays); on the GPU, from
    /// 150 steps, or at once where the kernel is built already), step by step
    /// otherwise.
    #[default]
    Auto,
    /// Fused wherever the model, loss and optimizer have a fused form the backend
    /// takes, however short the run.
    Always,
    /// Step by step always.
    Never,
}

impl From<bool> for Fusion {
    /// `true`: [`Fusion::Always`]; `false`: [`Fusion::Never`].
    fn from(fused: bool) -> Self {
        if fused {
            Fusion::Always
        } else {
            Fusion::Never
        }
    }
}

/// What `fit`'s epoch hook asks for: go on with the next epoch, or stop here. A hook
/// that returns `Ok(())` goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Train the next epoch.
    #[default]
    Continue,
    /// End the training after this epoch; `fit` returns the reports so far.
    Stop,
}

impl From<()> for Control {
    fn from(_: ()) -> Self {
        Control::Continue
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
    /// The learning rate the epoch trained with ([`FitConfig::schedule`]).
    pub lr: f32,
}

/// Trains `model` on `data` with `loss` and `optimizer` and returns every epoch's
/// report. After each epoch `on_epoch` gets the report and the model, holding that
/// epoch's parameters (to evaluate it, save it, change it, ...). It returns `Ok(())`
/// or `Ok(Control::Continue)` to go on, `Ok(Control::Stop)` to end the training there
/// (`fit` then returns the reports so far), or an error, which `fit` returns. Whatever
/// the hook did to the model is kept, on both paths, also when it stops or fails.
///
/// Each epoch trains at [`FitConfig::schedule`]'s rate for it, computed from the
/// optimizer's learning rate when `fit` starts; the optimizer gets that rate back at
/// the end.
///
/// When the loss of a mini-batch is NaN or infinite, training stops with
/// [`Error::Diverged`](crate::Error::Diverged) naming the epoch and step, and the model (and the optimizer's
/// state) are those after the last step whose loss was finite: each epoch starts from a
/// device copy of them and replays the finite steps.
///
/// `fit` is [`fit_runs`] with one run: both train through the same epoch loop.
pub fn fit<B, M, L, O, R>(
    backend: &B,
    model: &mut M,
    loss: &mut L,
    optimizer: &mut O,
    data: &Dataset,
    config: &FitConfig,
    mut on_epoch: impl FnMut(&EpochReport, &mut M) -> Result<R>,
) -> Result<Vec<EpochReport>>
where
    R: Into<Control>,
    B: Backend,
    M: Module<B> + ?Sized,
    L: Loss<B> + ?Sized,
    O: Optimizer<B> + ?Sized,
{
    let mut run = [FitRun {
        model,
        loss,
        optimizer,
        data,
        config: config.clone(),
    }];
    fit_runs(backend, &mut run, |_, report, model| {
        on_epoch(report, model)
    })?
    .pop()
    .expect("one result per run")
}
