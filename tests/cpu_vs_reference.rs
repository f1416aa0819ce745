//! Every op of the fast `Cpu` backend against the `Reference` backend (the plain loops
//! that define them), at 1 and 2 threads, on the shapes the GPU tests use and on large
//! ones whose work is split across threads and whose products go to `gemm`.
//!
//! The linear layer's products are summed in another order (`gemm`'s blocks, or the
//! small kernels' partial sums): two such sums of n terms differ by at most
//! 2·γ_n·Σ|terms|. Everything else is the reference's own per-element code run over
//! chunks, and the losses' parallel sums add the reference's blocks in its tree, so
//! those must be equal bit for bit.

mod common;

use common::{
    abs64, assert_overwrite_is_clear_then_accumulate, assert_within, cross_entropy, elementwise,
    gamma, labels, linear_act, linear_act_backward_bounds, linear_backward, linear_forward, random,
    rng, run_adam, run_momentum, sgd,
};
use minidl::backend::reference::definitions;
use minidl::optim::{AdamStep, MomentumStep};
use minidl::{Act, Backend, Cpu, Error, LossKind, Ops, Reduction, Reference, Tensor};

/// Input shapes (rows × cols): those of the GPU tests, then large ones.
const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (10, 25),
    (1000, 2),
    (257, 129),
    (3, 300),
    (1024, 1024),
    (257, 1000),
    (4096, 3),
];

/// The backends under test: one thread and two.
fn cpus() -> [Cpu; 2] {
    [Cpu::with_threads(1).unwrap(), Cpu::with_threads(2).unwrap()]
}

/// Output widths of the linear layer for an input shape: small and large ones, fewer
/// on the large shapes (where the reference's plain loops are slow).
fn widths(n: usize, k: usize) -> &'static [usize] {
    if n * k >= 200_000 {
        &[1, 130]
    } else {
        &[1, 25, 130, 300]
    }
}

#[test]
fn linear_forward_is_within_the_sum_bound() {
    let mut r = rng(1);
    for (n, k) in SHAPES {
        for &m in widths(n, k) {
            let x = random(&mut r, n, k, -1.0, 1.0);
            let w = random(&mut r, m, k, -1.0, 1.0);
            let b = random(&mut r, 1, m, -1.0, 1.0);
            let want = linear_forward(&Reference, &x, &w, &b);
            let mut mag = vec![0.0f64; n * m];
            definitions::linear_forward(&abs64(&x), &abs64(&w), &abs64(&b), &mut mag, n, k, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(k + 1) * v).collect();
            for cpu in cpus() {
                let got = linear_forward(&cpu, &x, &w, &b);
                let what = format!("{} threads: linear_forward {n}×{k}→{m}", cpu.threads());
                assert_within(&what, got.data(), want.data(), &bound);
            }
        }
    }
}

#[test]
fn linear_backward_is_within_the_sum_bounds() {
    let mut r = rng(2);
    for (n, k) in SHAPES {
        for &m in widths(n, k) {
            let x = random(&mut r, n, k, -1.0, 1.0);
            let w = random(&mut r, m, k, -1.0, 1.0);
            let dy = random(&mut r, n, m, -1.0, 1.0);
            let dw0 = random(&mut r, m, k, -1.0, 1.0);
            let db0 = random(&mut r, 1, m, -1.0, 1.0);
            let want = linear_backward(&Reference, &x, &w, &dy, &dw0, &db0);
            let mut mag = vec![0.0f64; n * k];
            definitions::linear_backward_input(&abs64(&dy), &abs64(&w), &mut mag, n, k, m);
            let dx_bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(m) * v).collect();
            let mut mag = abs64(&dw0);
            definitions::linear_backward_weight(&abs64(&dy), &abs64(&x), &mut mag, n, k, m);
            let dw_bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(n + 1) * v).collect();
            for cpu in cpus() {
                let got = linear_backward(&cpu, &x, &w, &dy, &dw0, &db0);
                let what =
                    |t: &str| format!("{} threads: linear_backward {t} {n}×{k}→{m}", cpu.threads());
                assert_within(&what("dx"), got.0.data(), want.0.data(), &dx_bound);
                assert_within(&what("dw"), got.1.data(), want.1.data(), &dw_bound);
                // The bias gradient adds each column in the reference's order.
                assert_eq!(got.2, want.2, "{}", what("db"));
            }
        }
    }
}

#[test]
fn fused_linear_activation_is_within_the_sum_bounds() {
    let mut r = rng(12);
    for act in Act::ALL {
        for (n, k) in [(10, 25), (257, 129), (3, 300), (257, 1000)] {
            let m = 130;
            let x = random(&mut r, n, k, -1.0, 1.0);
            let w = random(&mut r, m, k, -1.0, 1.0);
            let bias = random(&mut r, 1, m, -1.0, 1.0);
            let dy = random(&mut r, n, m, -1.0, 1.0);
            let (y, ..) = linear_act(&Reference, act, &x, &w, &bias, &dy, &dy);
            let want = linear_act(&Reference, act, &x, &w, &bias, &y, &dy);
            // Forward: the linear bound, carried through a 1-Lipschitz activation.
            let mut mag = vec![0.0f64; n * m];
            definitions::linear_forward(&abs64(&x), &abs64(&w), &abs64(&bias), &mut mag, n, k, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(k + 1) * v).collect();
            let [dx, dw, _] = linear_act_backward_bounds(&x, &w, &y, &dy, act);
            for cpu in cpus() {
                let got = linear_act(&cpu, act, &x, &w, &bias, &y, &dy);
                let what = |t: &str| format!("{} threads: {act:?} {t} {n}×{k}→{m}", cpu.threads());
                assert_within(&what("forward"), got.0.data(), want.0.data(), &bound);
                assert_within(&what("dx"), got.1.data(), want.1.data(), &dx);
                assert_within(&what("dw"), got.2.data(), want.2.data(), &dw);
                assert_eq!(got.3, want.3, "{}", what("db"));
            }
        }
    }
}

#[test]
fn activations_are_the_references_bit_for_bit() {
    let mut r = rng(3);
    for (n, k) in SHAPES {
        let x = random(&mut r, n, k, -3.0, 3.0);
        let dy = random(&mut r, n, k, -1.0, 1.0);
        for act in Act::ALL {
            let want_y = elementwise(&Reference, &[&x], |b, i, o| {
                b.activation_forward(act, &i[0], o).unwrap()
            });
            let saved = if act.backward_from_input() {
                &x
            } else {
                &want_y
            };
            let want_dx = elementwise(&Reference, &[saved, &dy], |b, i, o| {
                b.activation_backward(act, &i[0], &i[1], o).unwrap()
            });
            for cpu in cpus() {
                let y = elementwise(&cpu, &[&x], |b, i, o| {
                    b.activation_forward(act, &i[0], o).unwrap()
                });
                let dx = elementwise(&cpu, &[saved, &dy], |b, i, o| {
                    b.activation_backward(act, &i[0], &i[1], o).unwrap()
                });
                let what = format!("{} threads: {act:?} {n}×{k}", cpu.threads());
                assert_eq!(y, want_y, "{what} forward");
                assert_eq!(dx, want_dx, "{what} backward");
            }
        }
    }
}

#[test]
fn losses_and_their_gradients_are_the_references_bit_for_bit() {
    let mut r = rng(5);
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let t = random(&mut r, n, k, 0.0, 1.0);
        let classes = labels(&mut r, n, k);
        for reduction in [Reduction::Sum, Reduction::Mean] {
            for cpu in cpus() {
                let what = format!("{} threads: {n}×{k} {reduction:?}", cpu.threads());
                let (got, want) = (
                    mse_loss_and_grad(&cpu, &p, &t, reduction),
                    mse_loss_and_grad(&Reference, &p, &t, reduction),
                );
                assert_eq!(got.0.to_bits(), want.0.to_bits(), "{what}: MSE loss");
                assert_eq!(got.1, want.1, "{what}: MSE gradient");
                let (got, want) = (
                    cross_entropy(&cpu, &p, &classes, reduction),
                    cross_entropy(&Reference, &p, &classes, reduction),
                );
                assert_eq!(got.0.to_bits(), want.0.to_bits(), "{what}: cross-entropy");
                assert_eq!(got.1, want.1, "{what}: cross-entropy gradient");
            }
        }
    }
}

/// The MSE loss and its gradient on `b`.
fn mse_loss_and_grad<B: Backend>(
    b: &B,
    p: &Tensor,
    t: &Tensor,
    reduction: Reduction,
) -> (f32, Tensor) {
    let (pd, td) = (b.upload(p).unwrap(), b.upload(t).unwrap());
    let out = b.alloc(1, 1).unwrap();
    b.loss(LossKind::Mse, &pd, &td, reduction, &out).unwrap();
    let grad = b.alloc(pd.rows(), pd.cols()).unwrap();
    b.loss_grad(LossKind::Mse, &pd, &td, reduction, &grad)
        .unwrap();
    (
        b.download(&out).unwrap().data()[0],
        b.download(&grad).unwrap(),
    )
}

#[test]
fn optimizer_steps_are_the_references_bit_for_bit() {
    let mut r = rng(7);
    let momentum = MomentumStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: true,
    };
    let adam = AdamStep {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let grads: Vec<Tensor> = (0..3).map(|_| random(&mut r, n, k, -1.0, 1.0)).collect();
        let want_sgd = sgd(&Reference, &p, &grads[0], 0.1);
        let want_momentum = run_momentum(&Reference, &p, &grads, &momentum);
        let want_adam = run_adam(&Reference, &p, &grads, &adam);
        for cpu in cpus() {
            let what = format!("{} threads: {n}×{k}", cpu.threads());
            assert_eq!(sgd(&cpu, &p, &grads[0], 0.1), want_sgd, "{what}: SGD");
            assert_eq!(
                run_momentum(&cpu, &p, &grads, &momentum),
                want_momentum,
                "{what}: momentum"
            );
            assert_eq!(run_adam(&cpu, &p, &grads, &adam), want_adam, "{what}: Adam");
        }
    }
}

#[test]
fn storage_ops_are_exact() {
    let mut r = rng(9);
    for (n, k) in SHAPES {
        let a = random(&mut r, n, k, -1.0, 1.0);
        for cpu in cpus() {
            let src = cpu.upload(&a).unwrap();
            let dst = cpu.alloc(n, k).unwrap();
            cpu.copy(&src, &dst).unwrap();
            assert_eq!(cpu.download(&dst).unwrap(), a, "copy {n}×{k}");
            cpu.zero(&dst).unwrap();
            assert!(cpu.download(&dst).unwrap().data().iter().all(|&v| v == 0.0));
            cpu.write(&dst, a.data()).unwrap();
            assert_eq!(cpu.download(&dst).unwrap(), a, "write {n}×{k}");
        }
    }
}

#[test]
fn an_overwriting_backward_is_a_clear_then_an_accumulating_one() {
    for (n, k, m) in [(10, 25, 7), (257, 1000, 130), (1, 1, 1)] {
        assert_overwrite_is_clear_then_accumulate(&Reference, n, k, m);
        for cpu in cpus() {
            assert_overwrite_is_clear_then_accumulate(&cpu, n, k, m);
        }
    }
}

#[test]
fn thread_counts_are_checked() {
    assert!(matches!(
        Cpu::with_threads(0),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(Cpu::with_threads(3).unwrap().threads(), 3);
    assert!(Cpu::new().threads() >= 1);
}
