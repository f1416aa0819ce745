//! The optimizer ops: the GPU against the CPU reference over several steps, and the CPU
//! reference (run in f64) against PyTorch's documented algorithms for `torch.optim.SGD`
//! and `torch.optim.Adam`, written out here independently.

mod common;

use common::{adam_bound, assert_within, gpu, momentum_bound, random, rng, run_adam, run_momentum};
use minidl::backend::reference::definitions;
use minidl::backend::UpdateRule;
use minidl::nn::{Linear, Module};
use minidl::optim::{Adam, AdamStep, MomentumStep, Optimizer, Sgd};
use minidl::{Error, Reference, Tensor};

const STEPS: usize = 4;
const SHAPES: [(usize, usize); 4] = [(1, 1), (25, 2), (257, 129), (1, 1000)];

fn momentum_configs() -> Vec<MomentumStep> {
    let base = MomentumStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    vec![
        base,
        MomentumStep {
            nesterov: true,
            ..base
        },
        MomentumStep {
            weight_decay: 0.1,
            ..base
        },
        MomentumStep {
            momentum: 0.0,
            weight_decay: 0.05,
            ..base
        },
        MomentumStep {
            nesterov: true,
            weight_decay: 0.01,
            ..base
        },
    ]
}

fn adam_configs() -> Vec<AdamStep> {
    let base = AdamStep::with_lr(0.01);
    vec![
        base,
        AdamStep {
            weight_decay: 0.1,
            ..base
        },
        AdamStep {
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-3,
            ..base
        },
    ]
}

#[test]
fn momentum_step_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(31);
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let grads: Vec<Tensor> = (0..STEPS)
            .map(|_| random(&mut r, n, k, -10.0, 10.0))
            .collect();
        for h in momentum_configs() {
            let got = run_momentum(&gpu, &p, &grads, &h);
            let want = run_momentum(&Reference, &p, &grads, &h);
            let bound: Vec<f64> = p
                .data()
                .iter()
                .map(|&p0| momentum_bound(p0, STEPS, 10.0, &h))
                .collect();
            assert_within(
                &format!("momentum {h:?} {n}×{k}"),
                got.data(),
                want.data(),
                &bound,
            );
        }
    }
}

#[test]
fn adam_step_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(32);
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let grads: Vec<Tensor> = (0..STEPS)
            .map(|_| random(&mut r, n, k, -10.0, 10.0))
            .collect();
        for h in adam_configs() {
            let got = run_adam(&gpu, &p, &grads, &h);
            let want = run_adam(&Reference, &p, &grads, &h);
            let bound: Vec<f64> = p
                .data()
                .iter()
                .map(|&p0| adam_bound(p0, STEPS, &h))
                .collect();
            assert_within(
                &format!("adam {h:?} {n}×{k}"),
                got.data(),
                want.data(),
                &bound,
            );
        }
    }
}

/// PyTorch's `SGD` step as its documentation writes it (dampening 0), in f64: on the
/// first step the buffer is the gradient itself.
fn pytorch_sgd(p: &mut [f64], buf: &mut Option<Vec<f64>>, grad: &[f64], h: &MomentumStep) {
    let (lr, mu, wd) = (h.lr as f64, h.momentum as f64, h.weight_decay as f64);
    let g: Vec<f64> = grad.iter().zip(p.iter()).map(|(g, p)| g + wd * p).collect();
    let d = if mu != 0.0 {
        let b = match buf.take() {
            None => g.clone(),
            Some(b) => b.iter().zip(&g).map(|(b, g)| mu * b + g).collect(),
        };
        let d = if h.nesterov {
            g.iter().zip(&b).map(|(g, b)| g + mu * b).collect()
        } else {
            b.clone()
        };
        *buf = Some(b);
        d
    } else {
        g
    };
    for (p, d) in p.iter_mut().zip(d) {
        *p -= lr * d;
    }
}

/// PyTorch's `Adam` step as its documentation writes it, in f64, at step `t` (1-based).
fn pytorch_adam(p: &mut [f64], m: &mut [f64], v: &mut [f64], grad: &[f64], t: i32, h: &AdamStep) {
    let (lr, b1, b2) = (h.lr as f64, h.beta1 as f64, h.beta2 as f64);
    let (eps, wd) = (h.eps as f64, h.weight_decay as f64);
    for i in 0..p.len() {
        let g = grad[i] + wd * p[i];
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let m_hat = m[i] / (1.0 - b1.powi(t));
        let v_hat = v[i] / (1.0 - b2.powi(t));
        p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
    }
}

fn random64(r: &mut rand::rngs::ChaCha8Rng, n: usize) -> Vec<f64> {
    use rand::RngExt;
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "{what}[{i}]: minidl's reference gives {g}, PyTorch's algorithm {w}"
        );
    }
}

#[test]
fn momentum_reference_follows_pytorch_sgd() {
    let mut r = rng(33);
    for h in momentum_configs() {
        let n = 50;
        let mut p = random64(&mut r, n);
        let mut want = p.clone();
        let mut velocity = vec![0.0; n];
        let mut buf = None;
        for _ in 0..20 {
            let grad = random64(&mut r, n);
            definitions::momentum_velocity(&mut velocity, &grad, &p, &h);
            definitions::momentum_update(&mut p, &grad, &velocity, &h);
            pytorch_sgd(&mut want, &mut buf, &grad, &h);
        }
        assert_close(&format!("{h:?}"), &p, &want);
    }
}

#[test]
fn adam_reference_follows_pytorch_adam() {
    let mut r = rng(34);
    for h in adam_configs() {
        let n = 50;
        let mut p = random64(&mut r, n);
        let mut want = p.clone();
        let mut state = vec![0.0; 2 * n + 2];
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        for t in 1..=200 {
            let grad = random64(&mut r, n);
            definitions::adam_moments(&mut state, &grad, &p, &h);
            definitions::adam_update(&mut p, &state, &h);
            pytorch_adam(&mut want, &mut m, &mut v, &grad, t, &h);
        }
        assert_close(&format!("{h:?}"), &p, &want);
    }
}

#[test]
fn optimizers_reject_bad_hyperparameters() {
    let bad_lr = [0.0f32, -0.1, f32::NAN, f32::INFINITY];
    for lr in bad_lr {
        let sgd = Sgd::<Reference>::new(lr);
        assert!(
            matches!(&sgd, Err(Error::InvalidArgument(m)) if m.contains("learning rate")),
            "lr {lr}"
        );
        assert!(
            matches!(Adam::<Reference>::new(lr), Err(Error::InvalidArgument(m)) if m.contains("learning rate"))
        );
    }
    let base = MomentumStep {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    for (h, says) in [
        (
            MomentumStep {
                momentum: -0.5,
                ..base
            },
            "momentum",
        ),
        (
            MomentumStep {
                weight_decay: f32::NAN,
                ..base
            },
            "weight decay",
        ),
        (
            MomentumStep {
                momentum: 0.0,
                nesterov: true,
                ..base
            },
            "Nesterov",
        ),
    ] {
        assert!(
            matches!(Sgd::<Reference>::with(h), Err(Error::InvalidArgument(m)) if m.contains(says)),
            "{h:?}"
        );
    }
    let base = AdamStep::with_lr(0.1);
    for (h, says) in [
        (AdamStep { beta1: 1.0, ..base }, "beta1"),
        (
            AdamStep {
                beta2: -0.1,
                ..base
            },
            "beta2",
        ),
        (AdamStep { eps: -1.0, ..base }, "eps"),
    ] {
        assert!(
            matches!(Adam::<Reference>::with(h), Err(Error::InvalidArgument(m)) if m.contains(says)),
            "{h:?}"
        );
    }
}

#[test]
fn an_optimizer_refuses_another_models_parameters() {
    let mut r = rng(35);
    let a = Linear::new(&Reference, 3, 2, &mut r).unwrap();
    let b = Linear::new(&Reference, 4, 2, &mut r).unwrap();
    let mut adam = Adam::new(0.01).unwrap();
    adam.step(&Reference, &a.parameters()).unwrap();
    let e = adam.step(&Reference, &b.parameters()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("one optimizer per model")),
        "{e}"
    );
}

#[test]
fn each_optimizer_names_its_rule_for_the_fused_trainer() {
    assert_eq!(
        Sgd::<Reference>::new(0.5).unwrap().update_rule(),
        Some(UpdateRule::Sgd { lr: 0.5 })
    );
    let momentum = MomentumStep {
        lr: 0.5,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    assert_eq!(
        Sgd::<Reference>::with(momentum).unwrap().update_rule(),
        Some(UpdateRule::Momentum(momentum))
    );
    assert_eq!(
        Adam::<Reference>::new(0.5).unwrap().update_rule(),
        Some(UpdateRule::Adam(AdamStep::with_lr(0.5)))
    );
}
