//! The fused trainer for every recipe `fit` hands it: MSE and cross-entropy, with
//! plain SGD, momentum, Nesterov momentum with weight decay, and Adam with weight
//! decay. On the reference backend the fused path is the same composition of reference
//! ops as the step-by-step path and must equal it bit for bit, the optimizer's state
//! included; the CPU's own fused epoch adds in the reference's order and must equal the
//! reference's; the GPU's fused path must agree with the reference step by step within
//! the fused tests' tolerance, on a network that runs on one subgroup and on one that
//! does not.

mod common;

use common::{assert_close_to_largest, gpu, labelled_points, rng};
use minidl::data::Dataset;
use minidl::nn::{CrossEntropyLoss, Linear, Loss, Module, MseLoss, ReLU, Sequential, Tanh};
use minidl::optim::{Adam, AdamStep, MomentumStep, Optimizer, Sgd};
use minidl::train::{fit, FitConfig};
use minidl::{Backend, Cpu, Ops, Reduction, Reference};

/// As in `tests/fused.rs`: parameters (and optimizer state) after training agree
/// within this fraction of the largest value.
const EPOCH_RTOL: f64 = 1e-4;

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_close_to_largest(what, got, want, EPOCH_RTOL);
}

/// A loss and an optimizer of the recipes.
#[derive(Debug, Clone, Copy)]
enum Recipe {
    /// MSE (sum) with momentum 0.9.
    MseMomentum,
    /// Cross-entropy (mean) with plain SGD.
    CrossEntropySgd,
    /// Cross-entropy (mean) with Nesterov momentum and weight decay.
    CrossEntropyNesterov,
    /// MSE (mean) with Adam and weight decay.
    MseAdam,
    /// Cross-entropy (sum) with Adam.
    CrossEntropyAdam,
}

const RECIPES: [Recipe; 5] = [
    Recipe::MseMomentum,
    Recipe::CrossEntropySgd,
    Recipe::CrossEntropyNesterov,
    Recipe::MseAdam,
    Recipe::CrossEntropyAdam,
];

impl Recipe {
    fn loss<B: Backend>(self) -> Box<dyn Loss<B>> {
        match self {
            Recipe::MseMomentum => Box::new(MseLoss::new(Reduction::Sum)),
            Recipe::MseAdam => Box::new(MseLoss::new(Reduction::Mean)),
            Recipe::CrossEntropyAdam => Box::new(CrossEntropyLoss::new(Reduction::Sum)),
            _ => Box::new(CrossEntropyLoss::new(Reduction::Mean)),
        }
    }

    fn optimizer<B: Backend>(self) -> Box<dyn Optimizer<B>> {
        let momentum = |momentum, weight_decay, nesterov| {
            Box::new(
                Sgd::with(MomentumStep {
                    lr: 0.01,
                    momentum,
                    weight_decay,
                    nesterov,
                })
                .unwrap(),
            )
        };
        match self {
            Recipe::MseMomentum => momentum(0.9, 0.0, false),
            Recipe::CrossEntropySgd => Box::new(Sgd::new(0.05).unwrap()),
            Recipe::CrossEntropyNesterov => momentum(0.9, 1e-3, true),
            Recipe::MseAdam => Box::new(
                Adam::with(AdamStep {
                    weight_decay: 1e-3,
                    ..AdamStep::with_lr(0.002)
                })
                .unwrap(),
            ),
            Recipe::CrossEntropyAdam => Box::new(Adam::new(0.002).unwrap()),
        }
    }
}

/// A network of `widths` (ReLU between the layers, Tanh after the last, which
/// cross-entropy takes as logits in [-1, 1]).
fn network<B: Backend>(b: &B, widths: &[usize], seed: u64) -> Sequential<B> {
    let mut r = rng(seed);
    let mut layers: Vec<Box<dyn Module<B>>> = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        layers.push(Box::new(Linear::new(b, w[0], w[1], &mut r).unwrap()));
        match i + 2 == widths.len() {
            true => layers.push(Box::new(Tanh::new())),
            false => layers.push(Box::new(ReLU::new())),
        }
    }
    Sequential::new(layers).unwrap()
}

/// Random points in the unit cube with random labels of the output width's classes.
fn data(widths: &[usize], rows: usize, seed: u64) -> Dataset {
    labelled_points(widths[0], *widths.last().unwrap(), rows, seed)
}

/// What a fit of `recipe` for `epochs` leaves: the epoch losses, the parameters and
/// the optimizer's state.
struct Trained {
    losses: Vec<f64>,
    params: Vec<f32>,
    state: Vec<f32>,
}

fn train<B: Backend>(b: &B, recipe: Recipe, widths: &[usize], fused: bool) -> Trained {
    let data = data(widths, 97, 3);
    let mut model = network(b, widths, 4);
    let mut loss = recipe.loss::<B>();
    let mut optimizer = recipe.optimizer::<B>();
    let config = FitConfig {
        epochs: 3,
        batch_size: 8,
        shuffle: true,
        seed: 5,
        fused: fused.into(),
        ..FitConfig::default()
    };
    let reports = fit(
        b,
        &mut model,
        &mut *loss,
        &mut *optimizer,
        &data,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(
        reports.iter().all(|r| r.fused == fused),
        "{recipe:?} on {widths:?}: fused {fused} asked, the reports say otherwise"
    );
    let download = |t: &minidl::DeviceTensor<B>| b.download(t).unwrap().data().to_vec();
    Trained {
        losses: reports.iter().map(|r| r.loss).collect(),
        params: model
            .parameters()
            .iter()
            .flat_map(|p| download(p.value))
            .collect(),
        state: optimizer.state().into_iter().flat_map(download).collect(),
    }
}

/// The seed network's widths (one subgroup on llvmpipe) and a wider one with four
/// classes (its 41 columns need several subgroups' worth of invocations).
const NETWORKS: [&[usize]; 2] = [&[2, 25, 25, 25, 2], &[3, 40, 4]];

#[test]
fn reference_fused_path_is_bitwise_the_step_by_step_path_for_every_recipe() {
    for widths in NETWORKS {
        for recipe in RECIPES {
            let fused = train(&Reference, recipe, widths, true);
            let steps = train(&Reference, recipe, widths, false);
            let what = format!("{recipe:?} on {widths:?}");
            assert_eq!(fused.losses, steps.losses, "{what}: losses");
            assert_eq!(fused.params, steps.params, "{what}: parameters");
            assert_eq!(fused.state, steps.state, "{what}: optimizer state");
            assert!(fused.params.iter().all(|v| v.is_finite()), "{what}: finite");
        }
    }
}

#[test]
fn cpu_fused_path_is_bitwise_the_reference_for_every_recipe() {
    for widths in NETWORKS {
        for recipe in RECIPES {
            let want = train(&Reference, recipe, widths, true);
            let got = train(&Cpu::with_threads(2).unwrap(), recipe, widths, true);
            let what = format!("{recipe:?} on {widths:?}");
            assert_eq!(got.losses, want.losses, "{what}: losses");
            assert_eq!(got.params, want.params, "{what}: parameters");
            assert_eq!(got.state, want.state, "{what}: optimizer state");
        }
    }
}

/// The GPU cases: every recipe on the wider network (every rule with state runs
/// without subgroups, on any network), and on the seed network the stateless one
/// (on one subgroup on llvmpipe) and one with state. (Each kernel takes llvmpipe
/// 2–30 s to compile without Mesa's shader cache: not every pair is run.)
fn gpu_cases() -> Vec<(&'static [usize], Recipe)> {
    let mut cases: Vec<_> = RECIPES.iter().map(|&r| (NETWORKS[1], r)).collect();
    cases.push((NETWORKS[0], Recipe::CrossEntropySgd));
    cases.push((NETWORKS[0], Recipe::MseMomentum));
    cases
}

#[test]
fn gpu_fused_path_matches_the_reference_step_by_step_for_every_recipe() {
    let Some(gpu) = gpu() else { return };
    for (widths, recipe) in gpu_cases() {
        {
            let want = train(&Reference, recipe, widths, false);
            let got = train(&gpu, recipe, widths, true);
            let what = format!("{recipe:?} on {widths:?}");
            assert_close(&format!("{what}: parameters"), &got.params, &want.params);
            assert_close(&format!("{what}: optimizer state"), &got.state, &want.state);
            let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
            assert_close(
                &format!("{what}: losses"),
                &f32s(&got.losses),
                &f32s(&want.losses),
            );
        }
    }
}
