//! The training loop (prediction and error counting are in `predict`). A fit uploads
//! the data once; each step works on views of it, records its ops without waiting,
//! writes its loss to a device slot and allocates nothing on the host; the host reads
//! the losses back once per epoch. A model that is a narrow MLP trains on the fully
//! fused path instead (the backend's [`MlpTrainer`](crate::backend::MlpTrainer), one op
//! per epoch) where it pays for the run's length, or as [`FitConfig::fused`] says.

mod fused;
mod predict;
mod runs;

pub use fused::mlp_spec;
pub use predict::{count_errors, outputs, predict};
pub use runs::{fit_runs, run_many, FitRun};

use predict::check_classes;

use std::ops::Range;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::backend::{Backend, DeviceTensor, GradMode, MlpEpoch, Ops};
use crate::data::{batches, Dataset};
use crate::error::{Error, Result};
use crate::nn::{Loss, Module, Parameter};
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
/// [`Error::Diverged`] naming the epoch and step, and the model (and the optimizer's
/// state) are those after the last step whose loss was finite: each epoch starts from a
/// device copy of them and replays the finite steps.
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
    let ranges: Vec<_> = batches(data.len(), config.batch_size)?.collect();
    config.schedule.validate()?;
    let base_lr = optimizer.lr();
    if let Some((_, outputs)) = model.widths() {
        check_classes("fit", loss.kind().map(|(kind, _)| kind), outputs, data)?;
    }
    let targets_host = loss.targets(data)?;
    let inputs = backend.upload(data.inputs())?;
    let targets = backend.upload(&targets_host)?;
    let losses = backend.alloc(ranges.len(), 1)?;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    if config.start_epoch > config.epochs {
        return Err(Error::InvalidArgument(format!(
            "fit: start epoch {} is past the last epoch {}",
            config.start_epoch, config.epochs
        )));
    }
    if config.shuffle {
        for _ in 0..config.start_epoch {
            order.shuffle(&mut rng);
        }
    }
    let mut reports = Vec::with_capacity(config.epochs - config.start_epoch);
    optimizer.prepare(backend, &model.parameters())?;
    let packed = fused::Packed::plan(
        backend,
        model,
        loss,
        optimizer,
        config.batch_size,
        (
            config.fused,
            config.epochs.saturating_sub(config.start_epoch) * ranges.len(),
        ),
        None,
    )?;
    if let Some(packed) = &packed {
        packed.pack(backend, model)?;
    }
    let timer = config.gpu_timing.then(|| backend.timer()).flatten();
    // What a step changes, and a copy of it from the start of the epoch.
    let trained: Vec<DeviceTensor<B>> = match &packed {
        Some(packed) => vec![packed.params.clone()],
        None => {
            let params = model.parameters();
            let state = optimizer.state();
            params
                .iter()
                .map(|p| p.value)
                .chain(state)
                .cloned()
                .collect()
        }
    };
    let snapshot = trained
        .iter()
        .map(|t| backend.alloc(t.rows(), t.cols()))
        .collect::<Result<Vec<_>>>()?;
    let mut steps = Steps {
        backend,
        packed: packed.as_ref(),
        inputs: &inputs,
        targets: &targets,
        losses: &losses,
        ranges: &ranges,
        lr: base_lr,
    };
    // The fused path trains the packed copy; the model gets it back after each epoch
    // and at the end, also after an error.
    let mut run = |model: &mut M| -> Result<()> {
        // The parameters as handles of their own, so that a step need not ask the model
        // (which builds their names); taken again after the hook, which may change it.
        let mut owned = OwnedParameters::of(model);
        for epoch in config.start_epoch + 1..=config.epochs {
            let params = owned.parameters();
            let lr = config.schedule.lr(base_lr, epoch - 1, config.epochs);
            optimizer.set_lr(lr)?;
            steps.lr = lr;
            let start = Instant::now();
            if config.shuffle {
                order.shuffle(&mut rng);
                backend.write(&inputs, &data.inputs().gather_rows(&order)?)?;
                backend.write(&targets, &targets_host.gather_rows(&order)?)?;
            }
            for (t, s) in trained.iter().zip(&snapshot) {
                backend.copy(t, s)?;
            }
            if let Some(timer) = timer {
                timer.timer_start()?;
            }
            steps.run(model, loss, optimizer, &params, ranges.len())?;
            if let Some(timer) = timer {
                timer.timer_stop()?;
            }
            let step_losses = backend.download(&losses)?;
            if let Some(bad) = step_losses.data().iter().position(|l| !l.is_finite()) {
                let kept_steps =
                    steps.roll_back(model, loss, optimizer, &params, &trained, &snapshot, bad)?;
                return Err(Error::Diverged {
                    epoch,
                    step: bad + 1,
                    loss: step_losses.data()[bad],
                    kept_steps,
                });
            }
            let epoch_loss = step_losses.data().iter().map(|&l| l as f64).sum();
            let millis = start.elapsed().as_secs_f64() * 1e3;
            let report = EpochReport {
                epoch,
                loss: epoch_loss,
                millis,
                fused: packed.is_some(),
                gpu_millis: match timer {
                    Some(timer) => timer.timer_read()?,
                    None => None,
                },
                lr,
            };
            reports.push(report);
            if let Some(packed) = &packed {
                packed.unpack(backend, model)?;
            }
            let control = on_epoch(&report, model);
            drop(params);
            // The hook may have changed the model: the packed copy follows it, also
            // when the hook stops the training or fails.
            if let Some(packed) = &packed {
                packed.pack(backend, model)?;
            }
            if control?.into() == Control::Stop {
                return Ok(());
            }
            owned = OwnedParameters::of(model);
        }
        Ok(())
    };
    let result = run(model);
    if let Some(packed) = &packed {
        packed.unpack(backend, model)?;
    }
    optimizer.set_lr(base_lr)?;
    result.map(|()| reports)
}

/// A model's parameters as handles that share its storage, with their names and
/// shapes: taken once, so that every step can hand the optimizer the same list.
struct OwnedParameters<B: Backend> {
    list: Vec<OwnedParameter<B>>,
}

/// One [`Parameter`] holding handles instead of borrows.
struct OwnedParameter<B: Backend> {
    name: String,
    shape: Vec<usize>,
    value: DeviceTensor<B>,
    grad: DeviceTensor<B>,
}

impl<B: Backend> OwnedParameters<B> {
    fn of<M: Module<B> + ?Sized>(model: &M) -> Self {
        OwnedParameters {
            list: model
                .parameters()
                .into_iter()
                .map(|p| OwnedParameter {
                    value: p.value.clone(),
                    grad: p.grad.clone(),
                    name: p.name,
                    shape: p.shape,
                })
                .collect(),
        }
    }

    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        self.list
            .iter()
            .map(|p| Parameter {
                name: p.name.clone(),
                shape: p.shape.clone(),
                value: &p.value,
                grad: &p.grad,
            })
            .collect()
    }
}

/// The steps of an epoch, on the fused or the step-by-step path.
struct Steps<'a, B: Backend> {
    backend: &'a B,
    packed: Option<&'a fused::Packed<'a, B>>,
    inputs: &'a DeviceTensor<B>,
    targets: &'a DeviceTensor<B>,
    losses: &'a DeviceTensor<B>,
    ranges: &'a [Range<usize>],
    /// The epoch's learning rate, which the fused epoch takes as a parameter.
    lr: f32,
}

impl<B: Backend> Steps<'_, B> {
    /// Records the first `count` mini-batches of the epoch, each one's loss into its
    /// row of `losses`; `params` are the model's.
    fn run<M, L, O>(
        &mut self,
        model: &mut M,
        loss: &mut L,
        optimizer: &mut O,
        params: &[Parameter<'_, B>],
        count: usize,
    ) -> Result<()>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let backend = self.backend;
        if count == 0 {
            return Ok(());
        }
        if let Some(packed) = self.packed {
            let rows = self.ranges[count - 1].end;
            return packed.trainer.mlp_epoch(
                &packed.spec,
                &packed.params,
                &self.inputs.slice_rows(0, rows)?,
                &self.targets.slice_rows(0, rows)?,
                &MlpEpoch {
                    rule: packed.hyper.rule.with_lr(self.lr),
                    ..packed.hyper
                },
                &self.losses.slice_rows(0, count)?,
            );
        }
        // One backward per step: where the model can, it writes its gradients over the
        // last step's instead of adding to them after a clear (fewer commands). The
        // model accumulates again once the steps are recorded, also after an error.
        let overwrite = model.set_grad_mode(GradMode::Overwrite);
        // Nothing reads the network's input gradient: spare the first layer its product.
        model.set_input_grad(false);
        let mut steps = || -> Result<()> {
            for (i, range) in self.ranges[..count].iter().enumerate() {
                let x = self.inputs.slice_rows(range.start, range.len())?;
                let t = self.targets.slice_rows(range.start, range.len())?;
                if !overwrite {
                    model.zero_grad(backend)?;
                }
                let pred = model.forward(backend, &x)?.clone();
                loss.forward(backend, &pred, &t, &self.losses.slice_rows(i, 1)?)?;
                let grad = loss.backward(backend, &pred, &t)?.clone();
                model.backward(backend, &grad)?;
                optimizer.step(backend, params)?;
            }
            Ok(())
        };
        let result = steps();
        model.set_grad_mode(GradMode::Accumulate);
        model.set_input_grad(true);
        result
    }

    /// After step `bad` (0-based) of an epoch gave a non-finite loss: restores the
    /// start of the epoch from `snapshot` and replays the steps before `bad`, fewer
    /// where their updates left a non-finite value in `trained`. Returns how many
    /// steps the kept state has taken.
    #[allow(clippy::too_many_arguments)]
    fn roll_back<M, L, O>(
        &mut self,
        model: &mut M,
        loss: &mut L,
        optimizer: &mut O,
        params: &[Parameter<'_, B>],
        trained: &[DeviceTensor<B>],
        snapshot: &[DeviceTensor<B>],
        bad: usize,
    ) -> Result<usize>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let backend = self.backend;
        let mut kept = bad;
        loop {
            for (t, s) in trained.iter().zip(snapshot) {
                backend.copy(s, t)?;
            }
            self.run(model, loss, optimizer, params, kept)?;
            let mut finite = true;
            for t in trained {
                finite &= backend.download(t)?.data().iter().all(|v| v.is_finite());
            }
            if finite || kept == 0 {
                return Ok(kept);
            }
            kept -= 1;
        }
    }
}
