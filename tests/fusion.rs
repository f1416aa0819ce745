//! `FitConfig::fused`: `Fusion::Auto` (the default) takes the fused path only where it
//! pays for the run's length. On the CPU backends there is nothing to build, so every
//! run is fused; on the GPU a run of fewer than `FUSED_PAYS_FROM_STEPS` steps (all runs'
//! together in `fit_runs`) trains step by step unless its kernel is built already,
//! while `Fusion::Always` and `Fusion::Never` choose regardless.

mod common;

use common::{gpu, rng};
use minidl::backend::gpu::epoch::FUSED_PAYS_FROM_STEPS;
use minidl::data::{disc_train_test, Dataset};
use minidl::nn::MseLoss;
use minidl::optim::Sgd;
use minidl::train::{fit, fit_runs, FitConfig, FitRun, Fusion};
use minidl::{seed, Backend, Cpu, Gpu, Reference};

/// The seed's training set (1 000 points, 100 steps an epoch in batches of 10).
fn train_set() -> Dataset {
    disc_train_test(1).unwrap().0
}

fn config(epochs: usize, fused: Fusion) -> FitConfig {
    FitConfig {
        epochs,
        fused,
        ..FitConfig::default()
    }
}

/// Trains the seed network on `b` for `epochs` with `fused`: whether each epoch ran
/// fused.
fn paths<B: Backend>(b: &B, epochs: usize, fused: Fusion) -> Vec<bool> {
    let mut model = seed::network(b, &mut rng(2)).unwrap();
    let reports = fit(
        b,
        &mut model,
        &mut MseLoss::new(seed::REDUCTION),
        &mut Sgd::new(seed::LR).unwrap(),
        &train_set(),
        &config(epochs, fused),
        |_, _| Ok(()),
    )
    .unwrap();
    reports.iter().map(|r| r.fused).collect()
}

/// Steps of an epoch of the seed set.
fn epoch_steps() -> usize {
    train_set().len().div_ceil(FitConfig::default().batch_size)
}

/// Epochs of the seed set that stay below the GPU's threshold, and that reach it.
fn short_and_long() -> (usize, usize) {
    let short = (FUSED_PAYS_FROM_STEPS - 1) / epoch_steps();
    assert!(short >= 1, "a seed epoch alone reaches the threshold");
    (short, FUSED_PAYS_FROM_STEPS.div_ceil(epoch_steps()))
}

#[test]
fn auto_fuses_every_run_where_there_is_nothing_to_build() {
    assert_eq!(paths(&Cpu::new(), 1, Fusion::Auto), [true]);
    assert_eq!(paths(&Reference, 1, Fusion::Auto), [true]);
    assert_eq!(paths(&Cpu::new(), 1, Fusion::Never), [false]);
    assert_eq!(FitConfig::default().fused, Fusion::Auto);
    assert_eq!(Fusion::from(true), Fusion::Always);
    assert_eq!(Fusion::from(false), Fusion::Never);
}

#[test]
fn auto_fuses_on_the_gpu_only_where_the_build_pays() {
    if gpu().is_none() {
        return;
    }
    let (short, long) = short_and_long();
    // Devices of their own: nothing built on them yet.
    let fresh = Gpu::new().unwrap();
    assert_eq!(paths(&fresh, short, Fusion::Auto), vec![false; short]);
    assert_eq!(paths(&fresh, short, Fusion::Auto), vec![false; short]);
    assert_eq!(paths(&fresh, long, Fusion::Auto), vec![true; long]);
    // Built now: even one epoch pays.
    assert_eq!(paths(&fresh, 1, Fusion::Auto), [true]);
    assert_eq!(paths(&fresh, 1, Fusion::Never), [false]);
    let fresh = Gpu::new().unwrap();
    assert_eq!(paths(&fresh, 1, Fusion::Always), [true]);
    assert_eq!(paths(&fresh, 1, Fusion::Auto), [true]);
}

#[test]
fn runs_trained_together_pay_for_one_build_with_their_steps_together() {
    if gpu().is_none() {
        return;
    }
    let (short, _) = short_and_long();
    let fresh = Gpu::new().unwrap();
    assert_eq!(paths(&fresh, short, Fusion::Auto), vec![false; short]);
    // Enough runs of `short` epochs reach the threshold together.
    let runs = FUSED_PAYS_FROM_STEPS.div_ceil(short * epoch_steps());
    assert!(runs > 1);
    let data = train_set();
    let mut models: Vec<_> = (0..runs)
        .map(|r| seed::network(&fresh, &mut rng(10 + r as u64)).unwrap())
        .collect();
    let mut losses: Vec<_> = (0..runs).map(|_| MseLoss::new(seed::REDUCTION)).collect();
    let mut sgds: Vec<_> = (0..runs).map(|_| Sgd::new(seed::LR).unwrap()).collect();
    let mut fit_runs_of: Vec<_> = models
        .iter_mut()
        .zip(&mut losses)
        .zip(&mut sgds)
        .map(|((model, loss), optimizer)| FitRun {
            model,
            loss,
            optimizer,
            data: &data,
            config: config(short, Fusion::Auto),
        })
        .collect();
    let results = fit_runs(&fresh, &mut fit_runs_of, |_, _, _| Ok(())).unwrap();
    for result in results {
        let reports = result.unwrap();
        assert_eq!(reports.len(), short);
        assert!(
            reports.iter().all(|r| r.fused),
            "a run trained step by step"
        );
    }
}
