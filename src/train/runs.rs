//! Many independent training runs: [`fit_runs`] trains them together where they share
//! a fused form (one op per epoch for all of them), else one after another;
//! [`run_many`] runs any closure per run on several threads.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::fused::Packed;
use super::predict::check_classes;
use super::{fit, Control, EpochReport, FitConfig, Fusion, Steps};
use crate::backend::{Backend, DeviceTensor, MlpEpoch, Ops};
use crate::data::{batches, Dataset};
use crate::error::{Error, Result};
use crate::nn::{Loss, Module};
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// One training of [`fit_runs`]: what [`fit`] takes.
pub struct FitRun<'a, M: ?Sized, L: ?Sized, O: ?Sized> {
    /// The model, trained in place.
    pub model: &'a mut M,
    /// Its loss.
    pub loss: &'a mut L,
    /// Its optimizer.
    pub optimizer: &'a mut O,
    /// Its training set.
    pub data: &'a Dataset,
    /// How it trains.
    pub config: FitConfig,
}

/// Trains each of `runs` as [`fit`] trains it alone and returns each one's result, in
/// order: its reports, or the error that ended it (its model and optimizer then hold
/// what `fit` leaves them). `on_epoch(r, report, model)` is `fit`'s hook for run `r`; a
/// run that its hook stops, that fails or whose loss diverges ends there, and the
/// others go on. The outer error is a failure that ends every run (of the backend, or
/// of memory); each model then holds its last finished epoch's parameters.
///
/// The runs train together where each would train on the fused path (with
/// [`Fusion::Auto`], where the steps of all of them together pay for its build) and
/// they share its form: the same network, loss, batch size and update rule, the same
/// number of points and the same epochs ([`FitConfig`] alike but for `seed`, `shuffle` and
/// `schedule`; the initial weights, the data, the learning rates and their schedules
/// may differ). Each epoch is then one [`MlpTrainer::mlp_epoch_runs`] for each group
/// of consecutive runs that train at the same rate that epoch (one for all of them
/// where they share the schedule): on the GPU one workgroup per run of one dispatch,
/// on the CPU backend the runs on its threads. Elsewhere the runs train one after
/// another through [`fit`]. Either way each run's result is the one `fit` gives it: on
/// the CPU backend bit for bit. When they train together, each report's `millis` and
/// `gpu_millis` are those of the epoch of all of them.
///
/// ```
/// use minidl::data::disc_train_test;
/// use minidl::nn::MseLoss;
/// use minidl::optim::Sgd;
/// use minidl::train::{count_errors, fit_runs, FitConfig, FitRun};
/// use minidl::{seed, Cpu, Reduction};
/// use rand::rngs::ChaCha8Rng;
/// use rand::SeedableRng;
///
/// # fn main() -> minidl::Result<()> {
/// // The seed network from three seeds, trained together for 5 epochs.
/// let cpu = Cpu::new();
/// let seeds = [0u64, 1, 2];
/// let mut data = Vec::new();
/// let mut models = Vec::new();
/// for &s in &seeds {
///     data.push(disc_train_test(s)?);
///     models.push(seed::network(&cpu, &mut ChaCha8Rng::seed_from_u64(s + 1))?);
/// }
/// let mut losses: Vec<_> = seeds.iter().map(|_| MseLoss::new(Reduction::Sum)).collect();
/// let mut sgds = seeds.iter().map(|_| Sgd::new(0.01)).collect::<Result<Vec<_>, _>>()?;
/// let config = FitConfig { epochs: 5, ..FitConfig::default() };
/// let mut runs: Vec<_> = models
///     .iter_mut()
///     .zip(&mut losses)
///     .zip(&mut sgds)
///     .zip(&data)
///     .map(|(((model, loss), optimizer), (train, _))| FitRun {
///         model,
///         loss,
///         optimizer,
///         data: train,
///         config: config.clone(),
///     })
///     .collect();
/// let results = fit_runs(&cpu, &mut runs, |_, _, _| Ok(()))?;
/// drop(runs);
/// for ((result, model), (_, test)) in results.into_iter().zip(&mut models).zip(&data) {
///     let reports = result?;
///     assert!(reports.iter().all(|r| r.fused));
///     println!("{} test errors", count_errors(&cpu, model, test)?);
/// }
/// # Ok(())
/// # }
/// ```
///
/// [`MlpTrainer::mlp_epoch_runs`]: crate::backend::MlpTrainer::mlp_epoch_runs
pub fn fit_runs<B, M, L, O, R>(
    backend: &B,
    runs: &mut [FitRun<'_, M, L, O>],
    mut on_epoch: impl FnMut(usize, &EpochReport, &mut M) -> Result<R>,
) -> Result<Vec<Result<Vec<EpochReport>>>>
where
    R: Into<Control>,
    B: Backend,
    M: Module<B> + ?Sized,
    L: Loss<B> + ?Sized,
    O: Optimizer<B> + ?Sized,
{
    if let Some(together) = Together::plan(backend, runs)? {
        return together.train(runs, on_epoch);
    }
    Ok(runs
        .iter_mut()
        .enumerate()
        .map(|(i, run)| {
            fit(
                backend,
                run.model,
                run.loss,
                run.optimizer,
                run.data,
                &run.config,
                |report, model| on_epoch(i, report, model),
            )
        })
        .collect())
}

/// Runs that train together: each one's packed form a row of one tensor, its data a
/// share of one pair of tensors, its losses a share of one column.
struct Together<'a, B: Backend> {
    backend: &'a B,
    packed: Vec<Packed<'a, B>>,
    /// The runs' packed tensors, one row each, and a copy from the start of the epoch.
    params: DeviceTensor<B>,
    snapshot: DeviceTensor<B>,
    inputs: DeviceTensor<B>,
    targets: DeviceTensor<B>,
    /// The host's targets of each run, in the data's order (shuffled per epoch).
    targets_host: Vec<Tensor>,
    losses: DeviceTensor<B>,
    ranges: Vec<Range<usize>>,
    /// Points of each run.
    points: usize,
    /// The shared configuration (run 0's).
    config: FitConfig,
}

/// How one run of [`Together`] stands.
struct RunState {
    base_lr: f32,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    reports: Vec<EpochReport>,
    /// Its result, once it has ended.
    ended: Option<Result<()>>,
}

impl<'a, B: Backend> Together<'a, B> {
    /// The runs' shared fused form, or `None` where they do not have one (or where
    /// `fit` would refuse one of them: it then gives the error).
    fn plan<M, L, O>(backend: &'a B, runs: &mut [FitRun<'_, M, L, O>]) -> Result<Option<Self>>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let Some(first) = runs.first() else {
            return Ok(None);
        };
        let config = first.config.clone();
        let points = first.data.len();
        let alike = |c: &FitConfig| FitConfig {
            seed: 0,
            shuffle: false,
            schedule: config.schedule,
            ..c.clone()
        };
        let Ok(ranges) = batches(points, config.batch_size) else {
            return Ok(None);
        };
        let ranges: Vec<_> = ranges.collect();
        let refused = |run: &FitRun<'_, M, L, O>| -> bool {
            let classes = match run.model.widths() {
                Some((_, outputs)) => check_classes(
                    "fit",
                    run.loss.kind().map(|(kind, _)| kind),
                    outputs,
                    run.data,
                )
                .is_err(),
                None => false,
            };
            run.config.fused == Fusion::Never
                || alike(&run.config) != alike(&config)
                || run.config.schedule.validate().is_err()
                || run.data.len() != points
                || run.config.start_epoch > run.config.epochs
                || classes
        };
        if runs.iter().any(refused) {
            return Ok(None);
        }
        let mut targets_host = Vec::new();
        for run in runs.iter() {
            match run.loss.targets(run.data) {
                Ok(t) => targets_host.push(t),
                Err(_) => return Ok(None),
            }
        }
        // An optimizer that refuses its model (made for another one) fails that run
        // alone, in `fit`.
        for run in runs.iter_mut() {
            if run
                .optimizer
                .prepare(backend, &run.model.parameters())
                .is_err()
            {
                return Ok(None);
            }
        }
        let first = &runs[0];
        // Asked once for every run's steps together: one build serves them all.
        let steps = config.epochs.saturating_sub(config.start_epoch) * ranges.len() * runs.len();
        let Some(probe) = Packed::plan(
            backend,
            &*first.model,
            &*first.loss,
            &*first.optimizer,
            config.batch_size,
            (config.fused, steps),
            None,
        )?
        else {
            return Ok(None);
        };
        let (spec, hyper) = (probe.spec.clone(), probe.hyper);
        let (count, width) = (runs.len(), probe.params.cols());
        drop(probe);
        let params = backend.alloc(count, width)?;
        let mut packed = Vec::with_capacity(count);
        for (r, run) in runs.iter().enumerate() {
            let row = params.slice_rows(r, 1)?;
            let Some(p) = Packed::plan(
                backend,
                &*run.model,
                &*run.loss,
                &*run.optimizer,
                config.batch_size,
                (Fusion::Always, steps),
                Some(row),
            )?
            else {
                return Ok(None);
            };
            if p.spec != spec || without_lr(&p.hyper) != without_lr(&hyper) {
                return Ok(None);
            }
            packed.push(p);
        }
        let (inputs_width, targets_width) = (spec.inputs(), hyper.target_width(&spec));
        let widths_fit = runs.iter().zip(&targets_host).all(|(run, t)| {
            run.data.inputs().matrix_dims().ok() == Some((points, inputs_width))
                && t.matrix_dims().ok() == Some((points, targets_width))
        });
        if !widths_fit {
            return Ok(None);
        }
        let inputs = backend.alloc(count * points, inputs_width)?;
        let targets = backend.alloc(count * points, targets_width)?;
        for (r, (run, t)) in runs.iter().zip(&targets_host).enumerate() {
            backend.write(
                &inputs.slice_rows(r * points, points)?,
                run.data.inputs().data(),
            )?;
            backend.write(&targets.slice_rows(r * points, points)?, t.data())?;
        }
        Ok(Some(Together {
            backend,
            snapshot: backend.alloc(count, width)?,
            losses: backend.alloc(count * ranges.len(), 1)?,
            packed,
            params,
            inputs,
            targets,
            targets_host,
            ranges,
            points,
            config,
        }))
    }
}

/// `epoch` with a learning rate of 0: what runs that train together share.
fn without_lr(epoch: &MlpEpoch) -> MlpEpoch {
    MlpEpoch {
        rule: epoch.rule.with_lr(0.0),
        ..*epoch
    }
}

impl<B: Backend> Together<'_, B> {
    /// Trains the runs as [`fit_runs`] says.
    fn train<M, L, O, R>(
        self,
        runs: &mut [FitRun<'_, M, L, O>],
        mut on_epoch: impl FnMut(usize, &EpochReport, &mut M) -> Result<R>,
    ) -> Result<Vec<Result<Vec<EpochReport>>>>
    where
        R: Into<Control>,
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let config = &self.config;
        let mut states: Vec<RunState> = runs
            .iter()
            .map(|run| {
                let mut state = RunState {
                    base_lr: run.optimizer.lr(),
                    rng: ChaCha8Rng::seed_from_u64(run.config.seed),
                    order: (0..self.points).collect(),
                    reports: Vec::with_capacity(config.epochs - config.start_epoch),
                    ended: None,
                };
                if run.config.shuffle {
                    for _ in 0..config.start_epoch {
                        state.order.shuffle(&mut state.rng);
                    }
                }
                state
            })
            .collect();
        for (run, packed) in runs.iter().zip(&self.packed) {
            packed.pack(self.backend, &*run.model)?;
        }
        let mut result = Ok(());
        for epoch in config.start_epoch + 1..=config.epochs {
            result = self.epoch(runs, &mut states, epoch, &mut on_epoch);
            if result.is_err() || states.iter().all(|s| s.ended.is_some()) {
                break;
            }
        }
        // Each model and optimizer already holds its run's last finished epoch (each
        // epoch ends with them, as its hook left them); each optimizer gets back its
        // initial rate, as from `fit`.
        for (run, state) in runs.iter_mut().zip(&states) {
            run.optimizer.set_lr(state.base_lr)?;
        }
        result?;
        Ok(states
            .into_iter()
            .map(|s| match s.ended {
                Some(Err(e)) => Err(e),
                _ => Ok(s.reports),
            })
            .collect())
    }

    /// One epoch of every run that has not ended.
    fn epoch<M, L, O, R>(
        &self,
        runs: &mut [FitRun<'_, M, L, O>],
        states: &mut [RunState],
        epoch: usize,
        on_epoch: &mut impl FnMut(usize, &EpochReport, &mut M) -> Result<R>,
    ) -> Result<()>
    where
        R: Into<Control>,
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (backend, config, points) = (self.backend, &self.config, self.points);
        let steps = self.ranges.len();
        let start = Instant::now();
        let mut lrs = Vec::with_capacity(runs.len());
        for (r, (run, state)) in runs.iter_mut().zip(states.iter_mut()).enumerate() {
            let lr = run
                .config
                .schedule
                .lr(state.base_lr, epoch - 1, config.epochs);
            lrs.push(lr);
            if state.ended.is_some() {
                continue;
            }
            run.optimizer.set_lr(lr)?;
            if run.config.shuffle {
                state.order.shuffle(&mut state.rng);
                let at = r * points;
                let inputs = run.data.inputs().gather_rows(&state.order)?;
                let targets = self.targets_host[r].gather_rows(&state.order)?;
                backend.write(&self.inputs.slice_rows(at, points)?, &inputs)?;
                backend.write(&self.targets.slice_rows(at, points)?, &targets)?;
            }
        }
        backend.copy(&self.params, &self.snapshot)?;
        let timer = config.gpu_timing.then(|| backend.timer()).flatten();
        if let Some(timer) = timer {
            timer.timer_start()?;
        }
        // One op for each group of consecutive runs that go on at the same rate.
        let trainer = self.packed[0].trainer;
        let mut first = 0;
        while first < runs.len() {
            let same = |r: usize| states[r].ended.is_none() && lrs[r] == lrs[first];
            if !same(first) {
                first += 1;
                continue;
            }
            let end = (first..runs.len())
                .find(|&r| !same(r))
                .unwrap_or(runs.len());
            let count = end - first;
            let hyper = &self.packed[first].hyper;
            trainer.mlp_epoch_runs(
                &self.packed[first].spec,
                count,
                &self.params.slice_rows(first, count)?,
                &self.inputs.slice_rows(first * points, count * points)?,
                &self.targets.slice_rows(first * points, count * points)?,
                &MlpEpoch {
                    rule: hyper.rule.with_lr(lrs[first]),
                    ..*hyper
                },
                &self.losses.slice_rows(first * steps, count * steps)?,
            )?;
            first = end;
        }
        if let Some(timer) = timer {
            timer.timer_stop()?;
        }
        let all_losses = backend.download(&self.losses)?;
        let millis = start.elapsed().as_secs_f64() * 1e3;
        let gpu_millis = match timer {
            Some(timer) => timer.timer_read()?,
            None => None,
        };
        for (r, (run, state)) in runs.iter_mut().zip(states.iter_mut()).enumerate() {
            if state.ended.is_some() {
                continue;
            }
            let packed = &self.packed[r];
            let step_losses = &all_losses.data()[r * steps..(r + 1) * steps];
            if let Some(bad) = step_losses.iter().position(|l| !l.is_finite()) {
                // As `fit` alone: back to the last finite step, replayed on this run's
                // share of the tensors.
                let mut alone = Steps {
                    backend,
                    packed: Some(packed),
                    inputs: &self.inputs.slice_rows(r * points, points)?,
                    targets: &self.targets.slice_rows(r * points, points)?,
                    losses: &self.losses.slice_rows(r * steps, steps)?,
                    ranges: &self.ranges,
                    lr: lrs[r],
                };
                let kept_steps = alone.roll_back(
                    &mut *run.model,
                    &mut *run.loss,
                    &mut *run.optimizer,
                    &[],
                    std::slice::from_ref(&packed.params),
                    &[self.snapshot.slice_rows(r, 1)?],
                    bad,
                )?;
                packed.unpack(backend, &*run.model)?;
                state.ended = Some(Err(Error::Diverged {
                    epoch,
                    step: bad + 1,
                    loss: step_losses[bad],
                    kept_steps,
                }));
                continue;
            }
            let report = EpochReport {
                epoch,
                loss: step_losses.iter().map(|&l| l as f64).sum(),
                millis,
                fused: true,
                gpu_millis,
                lr: lrs[r],
            };
            state.reports.push(report);
            packed.unpack(backend, &*run.model)?;
            let control = on_epoch(r, &report, &mut *run.model);
            // The hook may have changed the model: the packed copy follows it.
            packed.pack(backend, &*run.model)?;
            match control.map(Into::into) {
                Ok(Control::Continue) => {}
                Ok(Control::Stop) => state.ended = Some(Ok(())),
                Err(e) => state.ended = Some(Err(e)),
            }
        }
        Ok(())
    }
}

/// Runs `run(0)`, …, `run(count − 1)` on up to `threads` threads (each taking the next
/// index not yet taken) and returns their results in index order, or the error of the
/// lowest index that failed. With `threads` = 1 they run in turn on the calling thread.
/// Each run must depend on its index alone, so that its result is the same as when it
/// runs by itself: on the CPU backend, bit for bit.
pub fn run_many<T: Send>(
    count: usize,
    threads: usize,
    run: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if threads == 0 {
        return Err(Error::InvalidArgument(
            "run_many needs at least 1 thread".into(),
        ));
    }
    let threads = threads.min(count.max(1));
    if threads == 1 {
        return (0..count).map(run).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let result = run(i);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::InvalidArgument("a run did not finish".into()))))
        .collect()
}
