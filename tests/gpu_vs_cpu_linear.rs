//! The linear layer's ops on the GPU against the CPU reference: the forward with both
//! matrix kernels, the backward, and the fused linear + activation ops, on random
//! inputs of several shapes (none a multiple of the workgroup size or the tiles).
//!
//! Tolerances are stated per op from the rounding each performs: a sum of n terms
//! taken in any order (or with fused multiply-adds) is within γ_n·Σ|terms| of the exact
//! value, so two such evaluations differ by at most 2·γ_n·Σ|terms|.

mod common;

use common::{
    abs64, assert_overwrite_is_clear_then_accumulate, assert_within, gamma, gpu, linear_act,
    linear_act_backward_bounds, linear_backward, linear_forward, random, rng, U,
};
use minidl::backend::gpu::products::{Choice, Product};
use minidl::backend::reference::definitions;
use minidl::{Act, Backend, GradMode, Ops, Reference, Tensor};

/// Input shapes (rows × cols) every op is run on.
const SHAPES: [(usize, usize); 5] = [(1, 1), (10, 25), (1000, 2), (257, 129), (3, 300)];

#[test]
fn linear_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(1);
    for (n, k) in SHAPES {
        for m in [1, 25, 130] {
            let x = random(&mut r, n, k, -1.0, 1.0);
            let w = random(&mut r, m, k, -1.0, 1.0);
            let b = random(&mut r, 1, m, -1.0, 1.0);
            let got = linear_forward(&gpu, &x, &w, &b);
            let want = linear_forward(&Reference, &x, &w, &b);
            // Σ|x||w| + |b| per output, scaled by 2γ_{k+1}.
            let mut mag = vec![0.0f64; n * m];
            definitions::linear_forward(&abs64(&x), &abs64(&w), &abs64(&b), &mut mag, n, k, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(k + 1) * v).collect();
            assert_within(
                &format!("linear_forward {n}×{k}→{m}"),
                got.data(),
                want.data(),
                &bound,
            );
        }
    }
}

/// Shapes `(n, k, m)` (`x: n×k`, `w: m×k`) on which every candidate kernel of every
/// product runs: the plain kernels on any, the generated ones where the contiguous
/// dimensions are multiples of 4 (none of these is a multiple of a tile), and the wide
/// step's layers.
const CANDIDATE_SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (3, 300, 7),
    (257, 129, 130),
    (1000, 2, 25),
    (1025, 1023, 3),
    (1, 4, 4),
    (3, 300, 132),
    (257, 128, 68),
    (1025, 1020, 36),
    (256, 784, 1024),
];

#[test]
fn every_candidate_kernel_of_every_product_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(11);
    for (n, k, m) in CANDIDATE_SHAPES {
        let x = random(&mut r, n, k, -1.0, 1.0);
        let w = random(&mut r, m, k, -1.0, 1.0);
        let b = random(&mut r, 1, m, -1.0, 1.0);
        let dy = random(&mut r, n, m, -1.0, 1.0);
        let dw0 = random(&mut r, m, k, -1.0, 1.0);
        let db0 = random(&mut r, 1, m, -1.0, 1.0);
        let (xd, wd, bd, dyd) = (
            gpu.upload(&x).unwrap(),
            gpu.upload(&w).unwrap(),
            gpu.upload(&b).unwrap(),
            gpu.upload(&dy).unwrap(),
        );
        let mut mag = vec![0.0f64; n * m];
        definitions::linear_forward(&abs64(&x), &abs64(&w), &abs64(&b), &mut mag, n, k, m);
        let forward_bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(k + 1) * v).collect();
        // Every activation (epilogue and gate); on the wide shape the two it has.
        let acts: &[Act] = if n * k * m > 100_000_000 {
            &[Act::Identity, Act::Relu]
        } else {
            &Act::ALL
        };
        for &act in acts {
            // The forward's epilogue: the sum bound carried through a 1-Lipschitz
            // activation, plus tanh's or the sigmoid's own error on the GPU (2⁻²⁰
            // absolute and a few roundings).
            let (y, ..) = linear_act(&Reference, act, &x, &w, &b, &dy, &dy);
            let want = linear_act(&Reference, act, &x, &w, &b, &y, &dy);
            let [dx_bound, dw_bound, db_bound] = linear_act_backward_bounds(&x, &w, &y, &dy, act);
            let yd = gpu.upload(&y).unwrap();
            let y_arg = (act != Act::Identity).then_some(&yd);
            let what =
                |p: Product, c: Choice| format!("{} {} {act:?} {n}×{k}→{m}", p.name(), c.label());
            for choice in gpu.product_candidates(Product::Forward, n, k, m) {
                let out = gpu.alloc(n, m).unwrap();
                gpu.linear_forward_with(choice, &xd, &wd, &bd, act, &out)
                    .unwrap();
                let got = gpu.download(&out).unwrap();
                let bound: Vec<f64> = forward_bound
                    .iter()
                    .zip(&mag)
                    .map(|(b, v)| match act {
                        Act::Tanh | Act::Sigmoid => b + 2f64.powi(-20) + 8.0 * U * v,
                        _ => *b,
                    })
                    .collect();
                assert_within(
                    &what(Product::Forward, choice),
                    got.data(),
                    want.0.data(),
                    &bound,
                );
            }
            for choice in gpu.product_candidates(Product::GradInput, n, k, m) {
                let dx = gpu.alloc(n, k).unwrap();
                gpu.grad_input_with(choice, &dyd, &wd, y_arg, act, &dx)
                    .unwrap();
                let got = gpu.download(&dx).unwrap();
                assert_within(
                    &what(Product::GradInput, choice),
                    got.data(),
                    want.1.data(),
                    &dx_bound,
                );
            }
            // The parameter gradients added to what dw0 and db0 hold, and written over
            // them: the sum's bound plus one rounding of the addition.
            let added = |start: &Tensor, grad: &Tensor, bound: &[f64]| {
                let sum: Vec<f32> = start
                    .data()
                    .iter()
                    .zip(grad.data())
                    .map(|(a, g)| a + g)
                    .collect();
                let bound: Vec<f64> = bound
                    .iter()
                    .zip(start.data())
                    .map(|(b, v)| b + U * (v.abs() as f64 + 1.0))
                    .collect();
                (sum, bound)
            };
            let (dw_acc, dw_acc_bound) = added(&dw0, &want.2, &dw_bound);
            let (db_acc, db_acc_bound) = added(&db0, &want.3, &db_bound);
            for choice in gpu.product_candidates(Product::GradWeight, n, k, m) {
                for mode in [GradMode::Overwrite, GradMode::Accumulate] {
                    let (dw, db) = (gpu.upload(&dw0).unwrap(), gpu.upload(&db0).unwrap());
                    gpu.grad_weight_with(choice, &dyd, &xd, y_arg, act, &dw, &db, mode)
                        .unwrap();
                    let label = format!("{} {mode:?}", what(Product::GradWeight, choice));
                    let (dw_want, dw_bound, db_want, db_bound) = match mode {
                        GradMode::Overwrite => (want.2.data(), &dw_bound, want.3.data(), &db_bound),
                        GradMode::Accumulate => {
                            (&dw_acc[..], &dw_acc_bound, &db_acc[..], &db_acc_bound)
                        }
                    };
                    let got = gpu.download(&dw).unwrap();
                    assert_within(&format!("{label} dw"), got.data(), dw_want, dw_bound);
                    let got = gpu.download(&db).unwrap();
                    assert_within(&format!("{label} db"), got.data(), db_want, db_bound);
                }
            }
        }
    }
}

#[test]
fn the_tuner_chooses_the_fastest_of_the_candidates() {
    let Some(gpu) = gpu() else { return };
    for product in Product::ALL {
        let (best, rates) = gpu.measure(product, 256, 512, 256).unwrap();
        let candidates = gpu.product_candidates(product, 256, 512, 256);
        assert!(
            candidates.contains(&best),
            "{product:?}: {best:?} is not a candidate"
        );
        let measured: Vec<Choice> = rates.iter().map(|r| r.0).collect();
        assert_eq!(
            measured, candidates,
            "{product:?}: every candidate measured"
        );
        let fastest = rates.iter().map(|r| r.1).fold(0.0, f64::max);
        assert!(fastest > 0.0 && rates.iter().any(|&(c, r)| c == best && r == fastest));
    }
}

#[test]
fn linear_backward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(2);
    for (n, k) in SHAPES {
        for m in [1, 25, 130] {
            let x = random(&mut r, n, k, -1.0, 1.0);
            let w = random(&mut r, m, k, -1.0, 1.0);
            let dy = random(&mut r, n, m, -1.0, 1.0);
            let dw0 = random(&mut r, m, k, -1.0, 1.0);
            let db0 = random(&mut r, 1, m, -1.0, 1.0);
            let got = linear_backward(&gpu, &x, &w, &dy, &dw0, &db0);
            let want = linear_backward(&Reference, &x, &w, &dy, &dw0, &db0);
            let what = |t: &str| format!("linear_backward {t} {n}×{k}→{m}");

            let mut mag = vec![0.0f64; n * k];
            definitions::linear_backward_input(&abs64(&dy), &abs64(&w), &mut mag, n, k, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(m) * v).collect();
            assert_within(&what("dx"), got.0.data(), want.0.data(), &bound);

            let mut mag = abs64(&dw0);
            definitions::linear_backward_weight(&abs64(&dy), &abs64(&x), &mut mag, n, k, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(n + 1) * v).collect();
            assert_within(&what("dw"), got.1.data(), want.1.data(), &bound);

            let mut mag = abs64(&db0);
            definitions::linear_backward_bias(&abs64(&dy), &mut mag, n, m);
            let bound: Vec<f64> = mag.iter().map(|v| 2.0 * gamma(n + 1) * v).collect();
            assert_within(&what("db"), got.2.data(), want.2.data(), &bound);
        }
    }
}

#[test]
fn fused_linear_activation_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(12);
    for act in Act::ALL {
        for (n, k) in SHAPES {
            for m in [1, 25, 130] {
                let x = random(&mut r, n, k, -1.0, 1.0);
                let w = random(&mut r, m, k, -1.0, 1.0);
                let bias = random(&mut r, 1, m, -1.0, 1.0);
                let dy = random(&mut r, n, m, -1.0, 1.0);
                // The forward output both backwards gate with: the CPU's.
                let (y, ..) = linear_act(&Reference, act, &x, &w, &bias, &dy, &dy);
                let got = linear_act(&gpu, act, &x, &w, &bias, &y, &dy);
                let want = linear_act(&Reference, act, &x, &w, &bias, &y, &dy);
                let what = |t: &str| format!("{act:?} {t} {n}×{k}→{m}");
                // Forward: the linear bound (the activations are 1-Lipschitz) plus
                // tanh's or the sigmoid's own error (2⁻²⁰ absolute and a few
                // roundings; the sigmoid's, from exp's 3 + 2|z| ulp, is smaller).
                let mut mag = vec![0.0f64; n * m];
                definitions::linear_forward(
                    &abs64(&x),
                    &abs64(&w),
                    &abs64(&bias),
                    &mut mag,
                    n,
                    k,
                    m,
                );
                let act_err = |v: f64| match act {
                    Act::Tanh | Act::Sigmoid => 2f64.powi(-20) + 8.0 * U * v,
                    _ => 0.0,
                };
                let bound: Vec<f64> = mag
                    .iter()
                    .map(|v| 2.0 * gamma(k + 1) * v + act_err(*v))
                    .collect();
                assert_within(&what("forward"), got.0.data(), want.0.data(), &bound);
                // Backward: sums of |dz|-weighted terms, and the gates' own difference.
                let [dx, dw, db] = linear_act_backward_bounds(&x, &w, &y, &dy, act);
                assert_within(&what("dx"), got.1.data(), want.1.data(), &dx);
                assert_within(&what("dw"), got.2.data(), want.2.data(), &dw);
                assert_within(&what("db"), got.3.data(), want.3.data(), &db);
            }
        }
    }
}

#[test]
fn an_overwriting_backward_is_a_clear_then_an_accumulating_one() {
    let Some(gpu) = gpu() else { return };
    for (n, k, m) in [(10, 25, 7), (257, 129, 130), (1, 1, 1)] {
        assert_overwrite_is_clear_then_accumulate(&gpu, n, k, m);
        // Rows in chunks of 7: the first chunk writes, the others add.
        assert_overwrite_is_clear_then_accumulate(&gpu.with_loop_budget(Some(7)), n, k, m);
    }
}

#[test]
fn empty_batches_are_fine() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(8);
    let x = Tensor::new(&[0, 3], vec![]).unwrap();
    let w = random(&mut r, 4, 3, -1.0, 1.0);
    let b = random(&mut r, 1, 4, -1.0, 1.0);
    let got = linear_forward(&gpu, &x, &w, &b);
    assert_eq!(got, linear_forward(&Reference, &x, &w, &b));
    assert_eq!(got.shape(), [0, 4]);
    // A weight gradient over no rows adds nothing.
    let dy = Tensor::new(&[0, 4], vec![]).unwrap();
    let dw0 = random(&mut r, 4, 3, -1.0, 1.0);
    let db0 = random(&mut r, 1, 4, -1.0, 1.0);
    let (_, dw, db) = linear_backward(&gpu, &x, &w, &dy, &dw0, &db0);
    assert_eq!((dw.data(), db.data()), (dw0.data(), db0.data()));
}

#[test]
fn fused_tanh_and_sigmoid_hold_for_pre_activations_up_to_90() {
    let Some(gpu) = gpu() else { return };
    // z = x · 1 + 0 for a single input: the pre-activations are x itself, from −90 to
    // 90, where a tanh evaluated through e^(2z) overflows.
    let n = 181;
    let x = Tensor::new(&[n, 1], (0..n).map(|i| i as f32 - 90.0).collect()).unwrap();
    let w = Tensor::new(&[1, 1], vec![1.0]).unwrap();
    let bias = Tensor::new(&[1], vec![0.0]).unwrap();
    for act in [Act::Tanh, Act::Sigmoid] {
        let y = Tensor::new(&[n, 1], vec![0.5; n]).unwrap();
        let got = linear_act(&gpu, act, &x, &w, &bias, &y, &y).0;
        let want = linear_act(&Reference, act, &x, &w, &bias, &y, &y).0;
        // Within tanh's or the sigmoid's own error (2⁻²⁰ absolute and a few roundings).
        let bound: Vec<f64> = want
            .data()
            .iter()
            .map(|_| 2f64.powi(-20) + 8.0 * U)
            .collect();
        assert_within(
            &format!("{act:?} of −90..90"),
            got.data(),
            want.data(),
            &bound,
        );
    }
}
