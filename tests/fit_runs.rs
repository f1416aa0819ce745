//! `fit_runs`: many runs trained together (one op per epoch for all of them on the
//! fused path) give each run what `fit` gives it alone: bit for bit on the CPU
//! backends, within the fused tests' tolerance on the GPU. Runs differ in their data,
//! initial weights, shuffling, learning rates and schedules; one that diverges or that
//! its hook stops ends alone; runs that do not share a fused form train in turn.

mod common;

use common::{assert_close_to_largest, gpu, labelled_points, rng};
use minidl::backend::{MlpRecipe, MlpSpec, MlpTrainer, UpdateRule};
use minidl::data::Dataset;
use minidl::nn::{CrossEntropyLoss, Linear, Loss, Module, MseLoss, Sequential, Tanh};
use minidl::optim::{Adam, LrSchedule, MomentumStep, Optimizer, Schedule, Sgd};
use minidl::train::{fit, fit_runs, Control, FitConfig, FitRun};
use minidl::{Backend, Cpu, Error, Ops, Reduction, Reference};

/// As in `tests/fused.rs`: parameters (and optimizer state) after training agree
/// within this fraction of the largest value.
const EPOCH_RTOL: f64 = 1e-4;

/// A loss and an update rule.
#[derive(Debug, Clone, Copy)]
enum Recipe {
    /// MSE (sum) with plain SGD, the seed's.
    MseSgd,
    /// MSE (mean) with momentum 0.9.
    MseMomentum,
    /// Cross-entropy (mean) with Adam.
    CrossEntropyAdam,
}

impl Recipe {
    fn loss<B: Backend>(self) -> Box<dyn Loss<B>> {
        match self {
            Recipe::MseSgd => Box::new(MseLoss::new(Reduction::Sum)),
            Recipe::MseMomentum => Box::new(MseLoss::new(Reduction::Mean)),
            Recipe::CrossEntropyAdam => Box::new(CrossEntropyLoss::new(Reduction::Mean)),
        }
    }

    /// The optimizer at base rate `lr`.
    fn optimizer<B: Backend>(self, lr: f32) -> Box<dyn Optimizer<B>> {
        match self {
            Recipe::MseSgd => Box::new(Sgd::new(lr).unwrap()),
            Recipe::MseMomentum => Box::new(
                Sgd::with(MomentumStep {
                    lr,
                    momentum: 0.9,
                    weight_decay: 0.0,
                    nesterov: false,
                })
                .unwrap(),
            ),
            Recipe::CrossEntropyAdam => Box::new(Adam::new(lr).unwrap()),
        }
    }
}

/// A network of `widths`, Tanh between the layers and nothing after the last (so that
/// too high a rate diverges).
fn network<B: Backend>(b: &B, widths: &[usize], seed: u64) -> Sequential<B> {
    let mut r = rng(seed);
    let mut layers: Vec<Box<dyn Module<B>>> = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        layers.push(Box::new(Linear::new(b, w[0], w[1], &mut r).unwrap()));
        if i + 2 < widths.len() {
            layers.push(Box::new(Tanh::new()));
        }
    }
    Sequential::new(layers).unwrap()
}

/// Random points in the unit cube with random labels of the output width's classes.
fn data(widths: &[usize], rows: usize, seed: u64) -> Dataset {
    labelled_points(widths[0], *widths.last().unwrap(), rows, seed)
}

/// One run of a test: its widths, seed, base rate, schedule and shuffling.
#[derive(Debug, Clone)]
struct Plan {
    widths: Vec<usize>,
    seed: u64,
    lr: f32,
    schedule: Schedule,
    shuffle: bool,
    fused: bool,
}

impl Plan {
    fn new(widths: &[usize], seed: u64, lr: f32, kind: LrSchedule, shuffle: bool) -> Self {
        Plan {
            widths: widths.to_vec(),
            seed,
            lr,
            schedule: Schedule { kind, warmup: 0 },
            shuffle,
            fused: true,
        }
    }

    fn config(&self) -> FitConfig {
        FitConfig {
            epochs: 4,
            batch_size: 8,
            shuffle: self.shuffle,
            seed: self.seed,
            fused: self.fused.into(),
            schedule: self.schedule,
            ..FitConfig::default()
        }
    }
}

/// What a run leaves: its reports (epoch, loss and rate) or its error, the epochs its
/// hook saw, its parameters and its optimizer's state and rate.
#[derive(Debug)]
struct Outcome {
    result: Result<Vec<(usize, f64, f32, bool)>, String>,
    hooked: Vec<usize>,
    params: Vec<f32>,
    state: Vec<f32>,
    lr: f32,
}

/// The hook of every test: run `r` stops after epoch `stop[r]` where given.
fn control(stop: &[Option<usize>], r: usize, epoch: usize) -> minidl::Result<Control> {
    match stop.get(r).copied().flatten() {
        Some(e) if e == epoch => Ok(Control::Stop),
        _ => Ok(Control::Continue),
    }
}

/// Models, losses, optimizers and data of `plans`.
#[allow(clippy::type_complexity)]
fn parts<B: Backend>(
    b: &B,
    recipe: Recipe,
    plans: &[Plan],
) -> (
    Vec<Sequential<B>>,
    Vec<Box<dyn Loss<B>>>,
    Vec<Box<dyn Optimizer<B>>>,
    Vec<Dataset>,
) {
    (
        plans
            .iter()
            .map(|p| network(b, &p.widths, p.seed + 1))
            .collect(),
        plans.iter().map(|_| recipe.loss::<B>()).collect(),
        plans.iter().map(|p| recipe.optimizer::<B>(p.lr)).collect(),
        plans.iter().map(|p| data(&p.widths, 45, p.seed)).collect(),
    )
}

fn outcome<B: Backend>(
    b: &B,
    model: &Sequential<B>,
    optimizer: &dyn Optimizer<B>,
    result: minidl::Result<Vec<minidl::train::EpochReport>>,
    hooked: Vec<usize>,
) -> Outcome {
    let download = |t: &minidl::DeviceTensor<B>| b.download(t).unwrap().data().to_vec();
    Outcome {
        result: result
            .map(|r| r.iter().map(|r| (r.epoch, r.loss, r.lr, r.fused)).collect())
            .map_err(|e| e.to_string()),
        hooked,
        params: model
            .parameters()
            .iter()
            .flat_map(|p| download(p.value))
            .collect(),
        state: optimizer.state().into_iter().flat_map(download).collect(),
        lr: optimizer.lr(),
    }
}

/// Each run of `plans` trained by `fit` alone.
fn alone<B: Backend>(
    b: &B,
    recipe: Recipe,
    plans: &[Plan],
    stop: &[Option<usize>],
) -> Vec<Outcome> {
    let (mut models, mut losses, mut optimizers, data) = parts(b, recipe, plans);
    (0..plans.len())
        .map(|r| {
            let mut hooked = Vec::new();
            let result = fit(
                b,
                &mut models[r],
                &mut *losses[r],
                &mut *optimizers[r],
                &data[r],
                &plans[r].config(),
                |report, _| {
                    hooked.push(report.epoch);
                    control(stop, r, report.epoch)
                },
            );
            outcome(b, &models[r], &*optimizers[r], result, hooked)
        })
        .collect()
}

/// The runs of `plans` trained together by `fit_runs`.
fn together<B: Backend>(
    b: &B,
    recipe: Recipe,
    plans: &[Plan],
    stop: &[Option<usize>],
) -> Vec<Outcome> {
    together_after(b, recipe, plans, stop, |_| {})
}

/// [`together`], with `before` given the optimizers first.
fn together_after<B: Backend>(
    b: &B,
    recipe: Recipe,
    plans: &[Plan],
    stop: &[Option<usize>],
    before: impl FnOnce(&mut [Box<dyn Optimizer<B>>]),
) -> Vec<Outcome> {
    let (mut models, mut losses, mut optimizers, data) = parts(b, recipe, plans);
    before(&mut optimizers);
    let mut hooked = vec![Vec::new(); plans.len()];
    let results = {
        let mut runs: Vec<_> = models
            .iter_mut()
            .zip(losses.iter_mut())
            .zip(optimizers.iter_mut())
            .zip(&data)
            .zip(plans)
            .map(|((((model, loss), optimizer), data), plan)| FitRun {
                model,
                loss: &mut **loss,
                optimizer: &mut **optimizer,
                data,
                config: plan.config(),
            })
            .collect();
        fit_runs(b, &mut runs, |r, report, _| {
            hooked[r].push(report.epoch);
            control(stop, r, report.epoch)
        })
        .unwrap()
    };
    results
        .into_iter()
        .zip(hooked)
        .enumerate()
        .map(|(r, (result, hooked))| outcome(b, &models[r], &*optimizers[r], result, hooked))
        .collect()
}

/// Asserts each run's outcome together equals its outcome alone: bit for bit, or
/// within `rtol` of the largest value for the parameters, the state and the losses.
fn assert_same(what: &str, got: &[Outcome], want: &[Outcome], rtol: Option<f64>) {
    assert_eq!(got.len(), want.len(), "{what}: runs");
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        let what = format!("{what}, run {r}");
        assert_eq!(g.hooked, w.hooked, "{what}: epochs the hook saw");
        assert_eq!(
            g.lr.to_bits(),
            w.lr.to_bits(),
            "{what}: the optimizer's rate after"
        );
        match rtol {
            None => {
                assert_eq!(g.result, w.result, "{what}: reports");
                assert_eq!(g.params, w.params, "{what}: parameters");
                assert_eq!(g.state, w.state, "{what}: optimizer state");
            }
            Some(rtol) => {
                match (&g.result, &w.result) {
                    (Ok(g), Ok(w)) => {
                        let meta = |r: &[(usize, f64, f32, bool)]| -> Vec<_> {
                            r.iter().map(|&(e, _, lr, f)| (e, lr, f)).collect()
                        };
                        assert_eq!(meta(g), meta(w), "{what}: epochs, rates, paths");
                        let loss = |r: &[(usize, f64, f32, bool)]| -> Vec<f32> {
                            r.iter().map(|&(_, l, _, _)| l as f32).collect()
                        };
                        assert_close_to_largest(&what, &loss(g), &loss(w), rtol);
                    }
                    (g, w) => assert_eq!(g, w, "{what}: results"),
                }
                assert_close_to_largest(&what, &g.params, &w.params, rtol);
                assert_close_to_largest(&what, &g.state, &w.state, rtol);
            }
        }
        if let Ok(reports) = &g.result {
            assert!(reports.iter().all(|r| r.3), "{what}: on the fused path");
        }
    }
}

/// Four runs of one form that differ in data, weights, base rate, schedule and
/// shuffling.
fn four_runs(widths: &[usize]) -> Vec<Plan> {
    let cosine = LrSchedule::Cosine { eta_min: 0.0 };
    let step = LrSchedule::Step {
        step_size: 2,
        gamma: 0.5,
    };
    vec![
        Plan::new(widths, 10, 0.05, cosine, true),
        Plan::new(widths, 20, 0.05, cosine, true),
        Plan::new(widths, 30, 0.02, LrSchedule::Constant, false),
        Plan::new(widths, 40, 0.05, step, true),
    ]
}

const RECIPES: [Recipe; 3] = [
    Recipe::MseSgd,
    Recipe::MseMomentum,
    Recipe::CrossEntropyAdam,
];

#[test]
fn runs_together_on_the_cpu_equal_each_run_alone_bit_for_bit() {
    let cpu = Cpu::with_threads(2).unwrap();
    for recipe in RECIPES {
        let plans = four_runs(&[3, 12, 3]);
        let what = format!("{recipe:?} on the CPU");
        assert_same(
            &what,
            &together(&cpu, recipe, &plans, &[]),
            &alone(&cpu, recipe, &plans, &[]),
            None,
        );
        let what = format!("{recipe:?} on the reference");
        let want = alone(&Reference, recipe, &plans, &[]);
        assert_same(
            &what,
            &together(&Reference, recipe, &plans, &[]),
            &want,
            None,
        );
    }
}

#[test]
fn runs_together_on_the_gpu_agree_with_each_run_alone() {
    let Some(gpu) = gpu() else { return };
    // One network without state (a subgroup's layout where the adapter has one), one
    // with Adam's.
    for (recipe, widths) in [
        (Recipe::MseSgd, [2, 16, 2]),
        (Recipe::CrossEntropyAdam, [3, 12, 3]),
    ] {
        let plans = four_runs(&widths);
        let what = format!("{recipe:?} on {}", gpu.adapter());
        let want = alone(&gpu, recipe, &plans, &[]);
        assert_same(
            &what,
            &together(&gpu, recipe, &plans, &[]),
            &want,
            Some(EPOCH_RTOL),
        );
    }
}

/// Runs 1 (a rate that diverges) and 2 (stopped by its hook after epoch 2) end early;
/// runs 0 and 3 go on to the last epoch.
fn runs_that_end_early(b: &impl Backend, rtol: Option<f64>) {
    let mut plans = four_runs(&[2, 16, 2]);
    plans[1].lr = 1e4;
    let stop = [None, None, Some(2), None];
    let want = alone(b, Recipe::MseSgd, &plans, &stop);
    assert!(
        want[1]
            .result
            .as_ref()
            .is_err_and(|e| e.contains("diverged")),
        "the test's premise: run 1 diverges alone, got {:?}",
        want[1].result
    );
    assert_eq!(want[2].hooked, [1, 2], "the test's premise: run 2 stops");
    let got = together(b, Recipe::MseSgd, &plans, &stop);
    assert_same(
        &format!("runs ending early on {}", b.name()),
        &got,
        &want,
        rtol,
    );
}

#[test]
fn a_run_that_diverges_or_stops_ends_alone_on_the_cpu() {
    runs_that_end_early(&Cpu::with_threads(2).unwrap(), None);
}

#[test]
fn a_run_that_diverges_or_stops_ends_alone_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    runs_that_end_early(&gpu, Some(EPOCH_RTOL));
}

#[test]
fn runs_without_a_shared_fused_form_train_in_turn_as_alone() {
    let cpu = Cpu::with_threads(2).unwrap();
    // No runs.
    type CpuRun<'a> = FitRun<'a, Sequential<Cpu>, dyn Loss<Cpu>, dyn Optimizer<Cpu>>;
    let mut none: Vec<CpuRun<'_>> = Vec::new();
    assert!(fit_runs(&cpu, &mut none, |_, _, _| Ok(()))
        .unwrap()
        .is_empty());
    // Different networks.
    let mut plans = four_runs(&[3, 12, 3]);
    plans[2] = Plan {
        widths: vec![3, 8, 8, 3],
        ..plans[2].clone()
    };
    let want = alone(&cpu, Recipe::MseMomentum, &plans, &[]);
    assert_same(
        "different networks",
        &together(&cpu, Recipe::MseMomentum, &plans, &[]),
        &want,
        None,
    );
    // The step-by-step path.
    let plans: Vec<Plan> = four_runs(&[3, 12, 3])
        .into_iter()
        .map(|p| Plan { fused: false, ..p })
        .collect();
    let got = together(&cpu, Recipe::CrossEntropyAdam, &plans, &[]);
    let want = alone(&cpu, Recipe::CrossEntropyAdam, &plans, &[]);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            g.result.as_ref().unwrap().iter().all(|r| !r.3),
            "step by step"
        );
        assert_eq!(g.result, w.result, "step by step: reports");
        assert_eq!(g.params, w.params, "step by step: parameters");
        assert_eq!(g.state, w.state, "step by step: state");
    }
}

/// `mlp_epoch_runs` refuses what it cannot split into runs.
fn mlp_epoch_runs_checks_its_arguments<B: Backend + MlpTrainer<B>>(b: &B) {
    let spec = MlpSpec::new(vec![minidl::backend::MlpLayer {
        inputs: 2,
        outputs: 3,
        act: minidl::Act::Identity,
    }])
    .unwrap();
    let epoch = MlpRecipe::sgd_mse(4, 0.1, Reduction::Sum);
    let len = UpdateRule::Sgd { lr: 0.1 }.packed_len(&spec);
    let params = b.alloc(2, len).unwrap();
    let inputs = b.alloc(10, 2).unwrap();
    let targets = b.alloc(10, 3).unwrap();
    // Two runs of 5 points, each in batches of 4 and 1.
    let losses = b.alloc(4, 1).unwrap();
    let call = |runs,
                p: &minidl::DeviceTensor<B>,
                x: &minidl::DeviceTensor<B>,
                l: &minidl::DeviceTensor<B>| {
        b.mlp_epoch_runs(
            &spec,
            runs,
            p,
            x,
            &targets.slice_rows(0, x.rows()).unwrap(),
            &epoch,
            l,
        )
    };
    let what = b.name();
    call(2, &params, &inputs, &losses).unwrap_or_else(|e| panic!("{what}: valid runs: {e}"));
    let err = call(0, &params, &inputs, &losses).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "{what}: no runs: {err}"
    );
    let err = call(3, &b.alloc(3, len).unwrap(), &inputs, &losses).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument(_)),
        "{what}: 10 rows for 3 runs: {err}"
    );
    let err = call(2, &params, &inputs, &b.alloc(5, 1).unwrap()).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }),
        "{what}: losses of 5 rows: {err}"
    );
    let err = call(2, &params.slice_rows(0, 1).unwrap(), &inputs, &losses).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. }),
        "{what}: parameters of one run: {err}"
    );
}

#[test]
fn mlp_epoch_runs_checks_its_arguments_on_every_backend() {
    mlp_epoch_runs_checks_its_arguments(&Cpu::with_threads(2).unwrap());
    mlp_epoch_runs_checks_its_arguments(&Reference);
    if let Some(gpu) = gpu() {
        mlp_epoch_runs_checks_its_arguments(&gpu);
    }
}

#[test]
fn a_run_whose_optimizer_belongs_to_another_model_fails_alone() {
    let cpu = Cpu::with_threads(2).unwrap();
    let recipe = Recipe::CrossEntropyAdam;
    let plans = four_runs(&[3, 12, 3]);
    let want = alone(&cpu, recipe, &plans, &[]);
    let other = network(&cpu, &[3, 5, 3], 99);
    let got = together_after(&cpu, recipe, &plans, &[], |optimizers| {
        optimizers[1].prepare(&cpu, &other.parameters()).unwrap()
    });
    for (r, got) in got.into_iter().enumerate() {
        if r == 1 {
            let e = got.result.unwrap_err();
            assert!(e.contains("one optimizer per model"), "run 1: {e}");
            continue;
        }
        assert_eq!(got.result, want[r].result, "run {r}: reports");
        assert_eq!(got.params, want[r].params, "run {r}: parameters");
        assert_eq!(got.state, want[r].state, "run {r}: state");
    }
}
