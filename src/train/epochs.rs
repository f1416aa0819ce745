//! The one epoch loop of [`fit`](super::fit) and [`fit_runs`](super::fit_runs): a
//! [`Group`] of runs that train epoch by epoch together. Each epoch replays each run's
//! shuffle, trains from a copy of what its steps change (one fused op for every group
//! of runs at the same rate, or a run alone step by step), rolls a run whose loss
//! diverged back to its last finite step, and hands each run's hook its model (the
//! packed copy unpacked around it). `fit` is `fit_runs` with one run; `fit_runs`
//! trains its runs as one group where they share a fused form, else each as a group of
//! its own.

use std::ops::Range;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::fused::{Form, Packed};
use super::predict::check_classes;
use super::{Control, EpochReport, FitConfig, FitRun, Fusion};
use crate::backend::{Backend, DeviceTensor, DeviceTimer, GradMode, MlpRecipe, Ops};
use crate::data::batches;
use crate::error::{Error, Result};
use crate::nn::{Loss, Module, Parameter};
use crate::optim::Optimizer;
use crate::tensor::Tensor;

/// What `fit` checks of a run before it trains, in its order, with the optimizer's
/// state prepared: the run's mini-batches and its targets as its loss takes them.
pub(super) struct Checked {
    ranges: Vec<Range<usize>>,
    targets: Tensor,
}

impl Checked {
    /// `run` checked, or the error `fit` gives it.
    pub fn of<B, M, L, O>(backend: &B, run: &mut FitRun<'_, M, L, O>) -> Result<Self>
    where
        B: Backend,
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (config, data) = (&run.config, run.data);
        let ranges = batches(data.len(), config.batch_size)?.collect();
        config.schedule.validate()?;
        if let Some((_, outputs)) = run.model.widths() {
            check_classes("fit", run.loss.kind().map(|(kind, _)| kind), outputs, data)?;
        }
        let targets = run.loss.targets(data)?;
        // What the upload of the data asks of its shape.
        data.inputs().matrix_dims()?;
        targets.matrix_dims()?;
        if config.start_epoch > config.epochs {
            return Err(Error::InvalidArgument(format!(
                "fit: start epoch {} is past the last epoch {}",
                config.start_epoch, config.epochs
            )));
        }
        run.optimizer.prepare(backend, &run.model.parameters())?;
        Ok(Checked { ranges, targets })
    }

    /// The run's mini-batch steps from its start epoch to its last.
    fn steps(&self, config: &FitConfig) -> usize {
        config.epochs.saturating_sub(config.start_epoch) * self.ranges.len()
    }
}

/// How a group's epochs train.
enum Path<'a, B: Backend> {
    /// Step by step: one run, the ops of each mini-batch recorded in turn.
    Steps,
    /// Fused: each run's packed form, a row of `params`, and one op per epoch for each
    /// group of consecutive runs at the same rate.
    Fused {
        packed: Vec<Packed<'a, B>>,
        params: DeviceTensor<B>,
    },
}

/// Runs that train epoch by epoch together: each one's data a share of one pair of
/// tensors, its losses a share of one column.
pub(super) struct Group<'a, B: Backend> {
    backend: &'a B,
    path: Path<'a, B>,
    /// What a step changes (the packed rows, or the run's parameters and its
    /// optimizer's state), and a copy of it from the start of the epoch.
    trained: Vec<DeviceTensor<B>>,
    snapshot: Vec<DeviceTensor<B>>,
    inputs: DeviceTensor<B>,
    targets: DeviceTensor<B>,
    /// The host's targets of each run, in the data's order.
    targets_host: Vec<Tensor>,
    losses: DeviceTensor<B>,
    ranges: Vec<Range<usize>>,
    /// Points of each run.
    points: usize,
    /// The shared configuration (run 0's).
    config: FitConfig,
}

/// How one run of a [`Group`] stands.
struct RunState<B: Backend> {
    base_lr: f32,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    /// On the step-by-step path, the model's parameters as handles of their own, so
    /// that a step need not ask the model (which builds their names); taken again
    /// after the hook, which may change it.
    owned: Option<OwnedParameters<B>>,
    reports: Vec<EpochReport>,
    /// Its result, once it has ended.
    ended: Option<Result<()>>,
}

impl<'a, B: Backend> Group<'a, B> {
    /// `run` alone: fused where `fit` would train it so ([`FitConfig::fused`], for its
    /// steps), else step by step.
    pub fn alone<M, L, O>(
        backend: &'a B,
        run: &FitRun<'_, M, L, O>,
        checked: &Checked,
    ) -> Result<Self>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let config = &run.config;
        let path = match Self::form(backend, run, config.fused, checked.steps(config))? {
            Some(form) => {
                let params = backend.alloc(1, form.packed_len())?;
                match Packed::new(form, &*run.optimizer, params.clone())? {
                    Some(packed) => Path::Fused {
                        packed: vec![packed],
                        params,
                    },
                    None => Path::Steps,
                }
            }
            None => Path::Steps,
        };
        Self::new(backend, std::slice::from_ref(run), &[checked], path)
    }

    /// `runs` (at least two, each checked) as one group where they share a fused form:
    /// each would train on the fused path (with [`Fusion::Auto`], where the steps of
    /// all of them together pay for its build), with the same network, loss, batch
    /// size and update rule, the same number of points and the same epochs
    /// ([`FitConfig`] alike but for `seed`, `shuffle` and `schedule`). `None` where
    /// they do not.
    pub fn together<M, L, O>(
        backend: &'a B,
        runs: &[FitRun<'_, M, L, O>],
        checked: &[&Checked],
    ) -> Result<Option<Self>>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let config = &runs[0].config;
        let points = runs[0].data.len();
        let alike = |c: &FitConfig| FitConfig {
            seed: 0,
            shuffle: false,
            schedule: config.schedule,
            ..c.clone()
        };
        if runs
            .iter()
            .any(|run| alike(&run.config) != alike(config) || run.data.len() != points)
        {
            return Ok(None);
        }
        // Asked once for every run's steps together: one build serves them all.
        let steps = checked[0].steps(config) * runs.len();
        let mut forms = Vec::with_capacity(runs.len());
        for (r, run) in runs.iter().enumerate() {
            let fusion = if r == 0 { config.fused } else { Fusion::Always };
            match Self::form(backend, run, fusion, steps)? {
                Some(form) if forms.first().is_none_or(|first| form.alike(first)) => {
                    forms.push(form)
                }
                _ => return Ok(None),
            }
        }
        let (spec, hyper) = (&forms[0].spec, &forms[0].hyper);
        let (inputs_width, targets_width) = (spec.inputs(), hyper.target_width(spec));
        let widths_fit = runs.iter().zip(checked).all(|(run, c)| {
            run.data.inputs().matrix_dims().ok() == Some((points, inputs_width))
                && c.targets.matrix_dims().ok() == Some((points, targets_width))
        });
        if !widths_fit {
            return Ok(None);
        }
        let params = backend.alloc(runs.len(), forms[0].packed_len())?;
        let mut packed = Vec::with_capacity(runs.len());
        for (r, (run, form)) in runs.iter().zip(forms).enumerate() {
            match Packed::new(form, &*run.optimizer, params.slice_rows(r, 1)?)? {
                Some(p) => packed.push(p),
                None => return Ok(None),
            }
        }
        let path = Path::Fused { packed, params };
        Ok(Some(Self::new(backend, runs, checked, path)?))
    }

    /// The fused form of `run` as `fusion` asks for `steps` steps ([`Form::of`]).
    fn form<M, L, O>(
        backend: &'a B,
        run: &FitRun<'_, M, L, O>,
        fusion: Fusion,
        steps: usize,
    ) -> Result<Option<Form<'a, B>>>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (model, loss, optimizer) = (&*run.model, &*run.loss, &*run.optimizer);
        let batch_size = run.config.batch_size;
        Form::of(backend, model, loss, optimizer, batch_size, (fusion, steps))
    }

    /// The group of `runs` (alike in points and batches) on `path`, their data on the
    /// device.
    fn new<M, L, O>(
        backend: &'a B,
        runs: &[FitRun<'_, M, L, O>],
        checked: &[&Checked],
        path: Path<'a, B>,
    ) -> Result<Self>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (count, points) = (runs.len(), runs[0].data.len());
        let ranges = checked[0].ranges.clone();
        let targets_host: Vec<Tensor> = checked.iter().map(|c| c.targets.clone()).collect();
        let (_, inputs_width) = runs[0].data.inputs().matrix_dims()?;
        let (_, targets_width) = targets_host[0].matrix_dims()?;
        let inputs = backend.alloc(count * points, inputs_width)?;
        let targets = backend.alloc(count * points, targets_width)?;
        for (r, (run, t)) in runs.iter().zip(&targets_host).enumerate() {
            backend.write(
                &inputs.slice_rows(r * points, points)?,
                run.data.inputs().data(),
            )?;
            backend.write(&targets.slice_rows(r * points, points)?, t.data())?;
        }
        let losses = backend.alloc(count * ranges.len(), 1)?;
        let trained: Vec<DeviceTensor<B>> = match &path {
            Path::Fused { params, .. } => vec![params.clone()],
            Path::Steps => {
                let run = &runs[0];
                let params = run.model.parameters();
                let state = run.optimizer.state();
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
        Ok(Group {
            backend,
            path,
            trained,
            snapshot,
            inputs,
            targets,
            targets_host,
            losses,
            ranges,
            points,
            config: runs[0].config.clone(),
        })
    }

    /// Trains the runs as `fit` trains each and returns each one's result, in order:
    /// its reports, or the error that ended it. `on_epoch(r, report, model)` is run
    /// `r`'s hook; a run that its hook stops, that fails or whose loss diverges ends
    /// there, and the others go on. The outer error is a failure that ends every run.
    /// Each model then holds its packed copy, where its training stopped (as on the
    /// step-by-step path); each optimizer gets back its rate from the start.
    pub fn train<M, L, O, R>(
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
        let mut states: Vec<RunState<B>> = runs
            .iter()
            .map(|run| {
                let mut state = RunState {
                    base_lr: run.optimizer.lr(),
                    rng: ChaCha8Rng::seed_from_u64(run.config.seed),
                    order: (0..self.points).collect(),
                    owned: None,
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
        let packed = self.packed();
        for (run, packed) in runs.iter().zip(packed) {
            packed.pack(self.backend, &*run.model)?;
        }
        let timer = config.gpu_timing.then(|| self.backend.timer()).flatten();
        if packed.is_empty() {
            for (run, state) in runs.iter().zip(&mut states) {
                state.owned = Some(OwnedParameters::of(&*run.model));
            }
        }
        let mut result = Ok(());
        for epoch in config.start_epoch + 1..=config.epochs {
            result = self.epoch(runs, &mut states, epoch, timer, &mut on_epoch);
            if result.is_err() || states.iter().all(|s| s.ended.is_some()) {
                break;
            }
        }
        // After an error that ended every run, the packed copy of a run that was still
        // training may be ahead of its model; elsewhere it is the model (each epoch
        // ends with the model packed).
        if result.is_err() {
            for ((run, packed), state) in runs.iter().zip(packed).zip(&states) {
                if state.ended.is_none() {
                    packed.unpack(self.backend, &*run.model)?;
                }
            }
        }
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

    /// The runs' packed forms (none on the step-by-step path).
    fn packed(&self) -> &[Packed<'a, B>] {
        match &self.path {
            Path::Fused { packed, .. } => packed,
            Path::Steps => &[],
        }
    }

    /// One epoch of every run that has not ended.
    fn epoch<M, L, O, R>(
        &self,
        runs: &mut [FitRun<'_, M, L, O>],
        states: &mut [RunState<B>],
        epoch: usize,
        timer: Option<&dyn DeviceTimer>,
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
        for (t, s) in self.trained.iter().zip(&self.snapshot) {
            backend.copy(t, s)?;
        }
        if let Some(timer) = timer {
            timer.timer_start()?;
        }
        match &self.path {
            Path::Steps => self.replay(0, &mut runs[0], &states[0], lrs[0], steps)?,
            Path::Fused { packed, params } => {
                // One op for each group of consecutive runs that go on at the same rate.
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
                    let hyper = &packed[first].hyper;
                    packed[first].trainer.mlp_epoch_runs(
                        &packed[first].spec,
                        count,
                        &params.slice_rows(first, count)?,
                        &self.inputs.slice_rows(first * points, count * points)?,
                        &self.targets.slice_rows(first * points, count * points)?,
                        &MlpRecipe {
                            rule: hyper.rule.with_lr(lrs[first]),
                            ..*hyper
                        },
                        &self.losses.slice_rows(first * steps, count * steps)?,
                    )?;
                    first = end;
                }
            }
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
        let packed = self.packed();
        for (r, (run, state)) in runs.iter_mut().zip(states.iter_mut()).enumerate() {
            if state.ended.is_some() {
                continue;
            }
            let step_losses = &all_losses.data()[r * steps..(r + 1) * steps];
            if let Some(bad) = step_losses.iter().position(|l| !l.is_finite()) {
                let kept_steps = self.roll_back(r, run, state, lrs[r], bad)?;
                if let Some(packed) = packed.get(r) {
                    packed.unpack(backend, &*run.model)?;
                }
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
                fused: !packed.is_empty(),
                gpu_millis,
                lr: lrs[r],
            };
            state.reports.push(report);
            if let Some(packed) = packed.get(r) {
                packed.unpack(backend, &*run.model)?;
            }
            let control = on_epoch(r, &report, &mut *run.model);
            // The hook may have changed the model: the packed copy follows it, also
            // when the hook stops the training or fails.
            if let Some(packed) = packed.get(r) {
                packed.pack(backend, &*run.model)?;
            }
            match control.map(Into::into) {
                Ok(Control::Continue) => {
                    if state.owned.is_some() {
                        state.owned = Some(OwnedParameters::of(&*run.model));
                    }
                }
                Ok(Control::Stop) => state.ended = Some(Ok(())),
                Err(e) => state.ended = Some(Err(e)),
            }
        }
        Ok(())
    }

    /// Records the first `count` mini-batches of run `r`'s epoch at rate `lr` on its
    /// share of the tensors, each one's loss into its row of the run's losses.
    fn replay<M, L, O>(
        &self,
        r: usize,
        run: &mut FitRun<'_, M, L, O>,
        state: &RunState<B>,
        lr: f32,
        count: usize,
    ) -> Result<()>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (backend, points, steps) = (self.backend, self.points, self.ranges.len());
        if count == 0 {
            return Ok(());
        }
        let inputs = self.inputs.slice_rows(r * points, points)?;
        let targets = self.targets.slice_rows(r * points, points)?;
        let losses = self.losses.slice_rows(r * steps, steps)?;
        if let Some(packed) = self.packed().get(r) {
            let rows = self.ranges[count - 1].end;
            return packed.trainer.mlp_epoch(
                &packed.spec,
                &packed.params,
                &inputs.slice_rows(0, rows)?,
                &targets.slice_rows(0, rows)?,
                &MlpRecipe {
                    rule: packed.hyper.rule.with_lr(lr),
                    ..packed.hyper
                },
                &losses.slice_rows(0, count)?,
            );
        }
        let params = match &state.owned {
            Some(owned) => owned.parameters(),
            None => Vec::new(),
        };
        let (model, loss, optimizer) = (&mut *run.model, &mut *run.loss, &mut *run.optimizer);
        // One backward per step: where the model can, it writes its gradients over the
        // last step's instead of adding to them after a clear (fewer commands). The
        // model accumulates again once the steps are recorded, also after an error.
        let overwrite = model.set_grad_mode(GradMode::Overwrite);
        // Nothing reads the network's input gradient: spare the first layer its product.
        model.set_input_grad(false);
        let mut steps = || -> Result<()> {
            for (i, range) in self.ranges[..count].iter().enumerate() {
                let x = inputs.slice_rows(range.start, range.len())?;
                let t = targets.slice_rows(range.start, range.len())?;
                if !overwrite {
                    model.zero_grad(backend)?;
                }
                let pred = model.forward(backend, &x)?.clone();
                loss.forward(backend, &pred, &t, &losses.slice_rows(i, 1)?)?;
                let grad = loss.backward(backend, &pred, &t)?.clone();
                model.backward(backend, &grad)?;
                optimizer.step(backend, &params)?;
            }
            Ok(())
        };
        let result = steps();
        model.set_grad_mode(GradMode::Accumulate);
        model.set_input_grad(true);
        result
    }

    /// After step `bad` (0-based) of run `r`'s epoch gave a non-finite loss: restores
    /// the start of the epoch from the snapshot and replays the steps before `bad`,
    /// fewer where their updates left a non-finite value in what they change. Returns
    /// how many steps the kept state has taken.
    fn roll_back<M, L, O>(
        &self,
        r: usize,
        run: &mut FitRun<'_, M, L, O>,
        state: &RunState<B>,
        lr: f32,
        bad: usize,
    ) -> Result<usize>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let backend = self.backend;
        // The run's share of what a step changes and of its copy.
        let (trained, snapshot) = match &self.path {
            Path::Fused { packed, .. } => (
                vec![packed[r].params.clone()],
                vec![self.snapshot[0].slice_rows(r, 1)?],
            ),
            Path::Steps => (self.trained.clone(), self.snapshot.clone()),
        };
        let mut kept = bad;
        loop {
            for (t, s) in trained.iter().zip(&snapshot) {
                backend.copy(s, t)?;
            }
            self.replay(r, run, state, lr, kept)?;
            let mut finite = true;
            for t in &trained {
                finite &= backend.download(t)?.data().iter().all(|v| v.is_finite());
            }
            if finite || kept == 0 {
                return Ok(kept);
            }
            kept -= 1;
        }
    }
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
