//! Learning-rate schedules against PyTorch's own recursive ("chainable") formulas for
//! `CosineAnnealingLR`, `StepLR` and `LinearLR` in a `SequentialLR`, written here apart
//! from the closed forms minidl computes; and `fit` training each epoch at its
//! schedule's rate, on the step-by-step and the fused path.

mod common;

use common::{gpu, rng};
use minidl::data::disc_train_test;
use minidl::nn::{Module, MseLoss};
use minidl::optim::{LrSchedule, Optimizer, Schedule, Sgd};
use minidl::train::{fit, EpochReport, FitConfig};
use minidl::{seed, Backend, Ops, Reduction, Reference};

/// The rates PyTorch's schedulers give epochs `0..epochs` (a `LinearLR` warm-up with
/// `start_factor = 1 / warmup` for `warmup` epochs, then `kind`), by their recursive
/// `get_lr` formulas, in f64.
fn pytorch_rates(base: f64, kind: LrSchedule, warmup: usize, epochs: usize) -> Vec<f64> {
    let mut rates = Vec::new();
    // LinearLR: lr_0 = base · start; lr_t = lr_{t−1} · (1 + (1 − start) / (total · start
    // + (t − 1)(1 − start))) up to t = total.
    let start = if warmup > 0 { 1.0 / warmup as f64 } else { 1.0 };
    let mut lr = base * start;
    for t in 0..warmup {
        if t > 0 {
            lr *= 1.0 + (1.0 - start) / (warmup as f64 * start + (t - 1) as f64 * (1.0 - start));
        }
        rates.push(lr);
    }
    // The main scheduler starts from the base rate at its own step 0.
    let t_max = (epochs - warmup) as f64;
    let mut lr = base;
    for t in 0..epochs - warmup {
        lr = match kind {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                if t == 0 || t % step_size != 0 {
                    lr
                } else {
                    lr * gamma as f64
                }
            }
            LrSchedule::Cosine { eta_min } => {
                let eta_min = eta_min as f64;
                let pi = std::f64::consts::PI;
                if t == 0 {
                    base
                } else if (t as f64 - 1.0 - t_max) % (2.0 * t_max) == 0.0 {
                    lr + (base - eta_min) * (1.0 - (pi / t_max).cos()) / 2.0
                } else {
                    (1.0 + (pi * t as f64 / t_max).cos())
                        / (1.0 + (pi * (t as f64 - 1.0) / t_max).cos())
                        * (lr - eta_min)
                        + eta_min
                }
            }
        };
        rates.push(lr);
    }
    rates
}

const KINDS: [LrSchedule; 4] = [
    LrSchedule::Constant,
    LrSchedule::Cosine { eta_min: 0.0 },
    LrSchedule::Cosine { eta_min: 0.001 },
    LrSchedule::Step {
        step_size: 100,
        gamma: 0.1,
    },
];

#[test]
fn schedules_follow_pytorchs_formulas() {
    for kind in KINDS {
        for warmup in [0, 1, 5] {
            let schedule = Schedule { kind, warmup };
            let want = pytorch_rates(0.01, kind, warmup, 300);
            for (epoch, want) in want.iter().enumerate() {
                let got = schedule.lr(0.01, epoch, 300) as f64;
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs() + 1e-12,
                    "{kind:?}, warm-up {warmup}, epoch {epoch}: {got} vs PyTorch's {want}"
                );
            }
        }
    }
    // Step decay at epochs 100 and 200, as the disc_gpu flag gives for 300 epochs.
    let step = Schedule {
        kind: KINDS[3],
        warmup: 0,
    };
    let rates: Vec<f32> = [0, 99, 100, 199, 200, 299]
        .iter()
        .map(|&e| step.lr(0.01, e, 300))
        .collect();
    let want = [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001];
    for (got, want) in rates.iter().zip(want) {
        assert!((got - want).abs() <= 1e-9, "{rates:?}");
    }
}

#[test]
fn bad_schedule_parameters_are_errors() {
    let bad = [
        LrSchedule::Cosine { eta_min: -1.0 },
        LrSchedule::Cosine { eta_min: f32::NAN },
        LrSchedule::Step {
            step_size: 0,
            gamma: 0.1,
        },
        LrSchedule::Step {
            step_size: 10,
            gamma: f32::INFINITY,
        },
    ];
    for kind in bad {
        let schedule = Schedule { kind, warmup: 0 };
        assert!(schedule.validate().is_err(), "{kind:?}");
    }
}

/// Four epochs of the seed network with `schedule`: the reports and the parameters.
fn scheduled_fit<B: Backend>(
    b: &B,
    schedule: Schedule,
    fused: bool,
) -> (Vec<EpochReport>, Vec<f32>) {
    let (train, _) = disc_train_test(0).unwrap();
    let mut model = seed::network(b, &mut rng(1)).unwrap();
    let mut sgd = Sgd::new(0.01).unwrap();
    let config = FitConfig {
        epochs: 4,
        fused: fused.into(),
        schedule,
        ..FitConfig::default()
    };
    let reports = fit(
        b,
        &mut model,
        &mut MseLoss::new(Reduction::Sum),
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(Optimizer::<B>::lr(&sgd), 0.01, "the base rate is restored");
    let params = model
        .parameters()
        .iter()
        .flat_map(|p| b.download(p.value).unwrap().into_data())
        .collect();
    (reports, params)
}

#[test]
fn fit_trains_each_epoch_at_its_scheduled_rate_on_both_paths() {
    let schedule = Schedule {
        kind: LrSchedule::Cosine { eta_min: 0.0 },
        warmup: 1,
    };
    let want: Vec<f32> = (0..4).map(|e| schedule.lr(0.01, e, 4)).collect();
    // On the reference backend both paths are the same composition of reference ops: bit for bit,
    // so the fused epoch did take each epoch's rate.
    let (step_reports, step_params) = scheduled_fit(&Reference, schedule, false);
    let (fused_reports, fused_params) = scheduled_fit(&Reference, schedule, true);
    for reports in [&step_reports, &fused_reports] {
        let rates: Vec<f32> = reports.iter().map(|r| r.lr).collect();
        assert_eq!(rates, want);
    }
    assert!(fused_reports.iter().all(|r| r.fused));
    assert_eq!(fused_params, step_params);
    // A constant schedule trains to other parameters: the rates changed the training.
    let (_, constant_params) = scheduled_fit(&Reference, Schedule::constant(), false);
    assert_ne!(constant_params, step_params);
    if let Some(gpu) = gpu() {
        for fused in [false, true] {
            let (reports, _) = scheduled_fit(&gpu, schedule, fused);
            let rates: Vec<f32> = reports.iter().map(|r| r.lr).collect();
            assert_eq!(rates, want, "GPU, fused {fused}");
        }
    }
}
