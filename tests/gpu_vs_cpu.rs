//! Every op but the linear layer's (`gpu_vs_cpu_linear.rs`) on the GPU against the CPU
//! reference, on random inputs of several shapes
//! (1×1, 10×25, 1000×2, 257×129 among them: none a multiple of the workgroup size).
//!
//! Tolerances are stated per op from the rounding each performs: a sum of n terms
//! taken in any order (or with fused multiply-adds) is within γ_n·Σ|terms| of the exact
//! value, so two such evaluations differ by at most 2·γ_n·Σ|terms|; the other ops
//! perform a fixed, small number of roundings.

mod common;

use common::{
    abs64, assert_within, cross_entropy, cross_entropy_bounds, elementwise, gamma, gpu, labels,
    linear_backward, random, rng, sgd, U, ULP1,
};
use minidl::backend::gpu::LOOP_BUDGET;
use minidl::backend::reference::definitions;
use minidl::{Act, Backend, LossKind, Ops, Reduction, Reference, Tensor};

/// Input shapes (rows × cols) every op is run on.
const SHAPES: [(usize, usize); 5] = [(1, 1), (10, 25), (1000, 2), (257, 129), (3, 300)];

#[test]
fn relu_matches_cpu_exactly() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(3);
    for (n, k) in SHAPES {
        let x = random(&mut r, n, k, -1.0, 1.0);
        let dy = random(&mut r, n, k, -1.0, 1.0);
        let fwd = |t: &[&Tensor]| {
            (
                elementwise(&gpu, t, |b, i, o| {
                    b.activation_forward(Act::Relu, &i[0], o).unwrap()
                }),
                elementwise(&Reference, t, |b, i, o| {
                    b.activation_forward(Act::Relu, &i[0], o).unwrap()
                }),
            )
        };
        let (got, want) = fwd(&[&x]);
        assert_eq!(got, want, "relu_forward {n}×{k}");
        let got = elementwise(&gpu, &[&x, &dy], |b, i, o| {
            b.activation_backward(Act::Relu, &i[0], &i[1], o).unwrap()
        });
        let want = elementwise(&Reference, &[&x, &dy], |b, i, o| {
            b.activation_backward(Act::Relu, &i[0], &i[1], o).unwrap()
        });
        assert_eq!(got, want, "relu_backward {n}×{k}");
    }
}

#[test]
fn flat_kernels_cover_more_than_65535_workgroups() {
    let Some(gpu) = gpu() else { return };
    // 65536 · 256 + 1 elements: the flat grid must wrap into a second dimension.
    let n = 65_536 * 256 + 1;
    let data: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -(i as f32) } else { i as f32 })
        .collect();
    let x = Tensor::new(&[1, n], data).unwrap();
    let got = elementwise(&gpu, &[&x], |b, i, o| {
        b.activation_forward(Act::Relu, &i[0], o).unwrap()
    });
    let want = elementwise(&Reference, &[&x], |b, i, o| {
        b.activation_forward(Act::Relu, &i[0], o).unwrap()
    });
    assert!(
        got == want,
        "relu_forward over {n} elements differs from the CPU"
    );
}

#[test]
fn tanh_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(4);
    for (n, k) in SHAPES {
        // Wide range: small arguments, the curved middle, saturation, and beyond the
        // point where exp overflows in f32.
        let mut x = random(&mut r, n, k, -4.0, 4.0);
        for (i, v) in x.data_mut().iter_mut().enumerate() {
            match i % 7 {
                0 => *v *= 1e-3,
                1 => *v *= 40.0,
                _ => {}
            }
        }
        let got = elementwise(&gpu, &[&x], |b, i, o| {
            b.activation_forward(Act::Tanh, &i[0], o).unwrap()
        });
        let want = elementwise(&Reference, &[&x], |b, i, o| {
            b.activation_forward(Act::Tanh, &i[0], o).unwrap()
        });
        // WGSL (and Vulkan) only promise tanh to the accuracy of sinh/cosh built from
        // exp, i.e. a few ulp of 1 near zero rather than a relative bound: accept 8 ulp
        // of 1.0 (2⁻²⁰) absolute, plus 4 ulp relative.
        let bound: Vec<f64> = want
            .data()
            .iter()
            .map(|v| 2f64.powi(-20) + 8.0 * U * v.abs() as f64)
            .collect();
        assert_within(
            &format!("tanh_forward {n}×{k}"),
            got.data(),
            want.data(),
            &bound,
        );

        let y = want;
        let dy = random(&mut r, n, k, -1.0, 1.0);
        let got = elementwise(&gpu, &[&y, &dy], |b, i, o| {
            b.activation_backward(Act::Tanh, &i[0], &i[1], o).unwrap()
        });
        let want = elementwise(&Reference, &[&y, &dy], |b, i, o| {
            b.activation_backward(Act::Tanh, &i[0], &i[1], o).unwrap()
        });
        // dy·(1 − y·y): three roundings, each evaluation within 3u·|dy|·(1 + y²).
        let bound: Vec<f64> = y
            .data()
            .iter()
            .zip(dy.data())
            .map(|(&y, &d)| {
                6.0 * U * (d as f64).abs() * (1.0 + (y as f64).powi(2)) * (1.0 + 4.0 * U)
            })
            .collect();
        assert_within(
            &format!("tanh_backward {n}×{k}"),
            got.data(),
            want.data(),
            &bound,
        );
    }
}

fn mse_loss<B: Backend>(b: &B, p: &Tensor, t: &Tensor, reduction: Reduction) -> f32 {
    let out = b.alloc(1, 1).unwrap();
    b.loss(
        LossKind::Mse,
        &b.upload(p).unwrap(),
        &b.upload(t).unwrap(),
        reduction,
        &out,
    )
    .unwrap();
    b.download(&out).unwrap().data()[0]
}

#[test]
fn mse_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(5);
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let t = random(&mut r, n, k, 0.0, 1.0);
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let count = n * k;
            let got = mse_loss(&gpu, &p, &t, reduction);
            let want = mse_loss(&Reference, &p, &t, reduction);
            // The squared differences are the same on both; their sum of `count`
            // terms is taken in another order (a tree on the GPU), and then scaled.
            let sq: f64 = p
                .data()
                .iter()
                .zip(t.data())
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum();
            let scale = reduction.loss_scale(count) as f64;
            let bound = 2.0 * gamma(count + 2) * sq * scale;
            assert_within(
                &format!("mse_loss {reduction:?} {n}×{k}"),
                &[got],
                &[want],
                &[bound],
            );

            let got = elementwise(&gpu, &[&p, &t], |b, i, o| {
                b.loss_grad(LossKind::Mse, &i[0], &i[1], reduction, o)
                    .unwrap()
            });
            let want = elementwise(&Reference, &[&p, &t], |b, i, o| {
                b.loss_grad(LossKind::Mse, &i[0], &i[1], reduction, o)
                    .unwrap()
            });
            // (p − t)·factor: two roundings on each side.
            let factor = reduction.mse_grad_scale(count) as f64;
            let bound: Vec<f64> = p
                .data()
                .iter()
                .zip(t.data())
                .map(|(&a, &b)| 5.0 * U * ((a - b) as f64).abs() * factor)
                .collect();
            assert_within(
                &format!("mse_grad {reduction:?} {n}×{k}"),
                got.data(),
                want.data(),
                &bound,
            );
        }
    }
}

#[test]
fn sgd_step_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(6);
    for (n, k) in SHAPES {
        let p = random(&mut r, n, k, -1.0, 1.0);
        let g = random(&mut r, n, k, -10.0, 10.0);
        let lr = 0.01;
        let got = sgd(&gpu, &p, &g, lr);
        let want = sgd(&Reference, &p, &g, lr);
        // p − lr·g: two roundings (one when fused) on each side.
        let bound: Vec<f64> = p
            .data()
            .iter()
            .zip(g.data())
            .map(|(&p, &g)| 4.0 * U * ((p as f64).abs() + (lr as f64 * g as f64).abs()))
            .collect();
        assert_within(
            &format!("sgd_step {n}×{k}"),
            got.data(),
            want.data(),
            &bound,
        );
    }
}

#[test]
fn zero_and_views_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(7);
    let full = random(&mut r, 9, 5, -1.0, 1.0);
    fn run<B: Backend>(b: &B, t: &Tensor) -> Tensor {
        let d = b.upload(t).unwrap();
        // Zero rows 2..5, then ReLU rows 5..9 into rows 0..4 of another buffer.
        b.zero(&d.slice_rows(2, 3).unwrap()).unwrap();
        let out = b.alloc(4, 5).unwrap();
        b.activation_forward(Act::Relu, &d.slice_rows(5, 4).unwrap(), &out)
            .unwrap();
        let mut all = b.download(&d).unwrap().into_data();
        all.extend(b.download(&out).unwrap().into_data());
        all.extend(
            b.download(&d.slice_rows(7, 2).unwrap())
                .unwrap()
                .into_data(),
        );
        Tensor::new(&[all.len()], all).unwrap()
    }
    assert_eq!(run(&gpu, &full), run(&Reference, &full));
}

#[test]
fn sigmoid_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(21);
    for (n, k) in SHAPES {
        // Wide enough to saturate at both ends.
        let x = random(&mut r, n, k, -20.0, 20.0);
        let got = elementwise(&gpu, &[&x], |b, i, o| {
            b.activation_forward(Act::Sigmoid, &i[0], o).unwrap()
        });
        let want = elementwise(&Reference, &[&x], |b, i, o| {
            b.activation_forward(Act::Sigmoid, &i[0], o).unwrap()
        });
        // exp is within 3 + 2|x| ulp (Vulkan's bound), which moves 1/(1 + e) by at most
        // y(1 − y) times that relative error; the add and the division round once each.
        let bound: Vec<f64> = x
            .data()
            .iter()
            .zip(want.data())
            .map(|(&x, &y)| {
                let (x, y) = (x as f64, y as f64);
                ULP1 * ((4.0 + 2.0 * x.abs()) * y * (1.0 - y) + 4.0 * y)
            })
            .collect();
        assert_within(
            &format!("sigmoid_forward {n}×{k}"),
            got.data(),
            want.data(),
            &bound,
        );
        // The backward from the CPU's output: dy · (y (1 − y)), three roundings.
        let dy = random(&mut r, n, k, -1.0, 1.0);
        let got = elementwise(&gpu, &[&want, &dy], |b, i, o| {
            b.activation_backward(Act::Sigmoid, &i[0], &i[1], o)
                .unwrap()
        });
        let want_dx = elementwise(&Reference, &[&want, &dy], |b, i, o| {
            b.activation_backward(Act::Sigmoid, &i[0], &i[1], o)
                .unwrap()
        });
        let bound: Vec<f64> = want
            .data()
            .iter()
            .zip(dy.data())
            .map(|(&y, &d)| 8.0 * U * (d as f64).abs() * (y as f64) * (1.0 + y as f64))
            .collect();
        assert_within(
            &format!("sigmoid_backward {n}×{k}"),
            got.data(),
            want_dx.data(),
            &bound,
        );
    }
}

#[test]
fn leaky_relu_matches_cpu_exactly() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(22);
    for (n, k) in SHAPES {
        for slope in [0.01f32, 0.2, 0.0] {
            let mut x = random(&mut r, n, k, -1.0, 1.0);
            x.data_mut()[0] = 0.0;
            let dy = random(&mut r, n, k, -1.0, 1.0);
            // A select and one correctly rounded product: bit for bit.
            let got = elementwise(&gpu, &[&x], |b, i, o| {
                b.activation_forward(Act::LeakyRelu(slope), &i[0], o)
                    .unwrap()
            });
            let want = elementwise(&Reference, &[&x], |b, i, o| {
                b.activation_forward(Act::LeakyRelu(slope), &i[0], o)
                    .unwrap()
            });
            assert_eq!(got, want, "leaky_relu_forward {slope} {n}×{k}");
            let got = elementwise(&gpu, &[&x, &dy], |b, i, o| {
                b.activation_backward(Act::LeakyRelu(slope), &i[0], &i[1], o)
                    .unwrap()
            });
            let want = elementwise(&Reference, &[&x, &dy], |b, i, o| {
                b.activation_backward(Act::LeakyRelu(slope), &i[0], &i[1], o)
                    .unwrap()
            });
            assert_eq!(got, want, "leaky_relu_backward {slope} {n}×{k}");
        }
    }
}

#[test]
fn cross_entropy_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(23);
    for (n, c) in [(1, 1), (10, 2), (257, 10), (3, 300), (1000, 2)] {
        // Shifted far from 0 as well: a naive exp would overflow there.
        for (lo, hi) in [(-5.0, 5.0), (80.0, 100.0)] {
            let z = random(&mut r, n, c, lo, hi);
            let t = labels(&mut r, n, c);
            for reduction in [Reduction::Sum, Reduction::Mean] {
                let (got_loss, got_grad) = cross_entropy(&gpu, &z, &t, reduction);
                let (want_loss, want_grad) = cross_entropy(&Reference, &z, &t, reduction);
                let scale = reduction.loss_scale(n) as f64;
                let (loss_bound, grad_bound) = cross_entropy_bounds(&z, &t, scale);
                let what = format!("cross_entropy {reduction:?} {n}×{c} in [{lo}, {hi})");
                assert!(got_loss.is_finite(), "{what}: loss {got_loss}");
                assert_within(&what, &[got_loss], &[want_loss], &[loss_bound]);
                assert_within(
                    &format!("{what} grad"),
                    got_grad.data(),
                    want_grad.data(),
                    &grad_bound,
                );
            }
        }
    }
}

#[test]
fn cross_entropy_with_an_invalid_label_is_nan_on_both() {
    let Some(gpu) = gpu() else { return };
    let z = Tensor::new(&[3, 2], vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
    for bad in [2.0f32, -1.0, 0.5, f32::NAN] {
        let t = Tensor::new(&[3, 1], vec![0.0, bad, 1.0]).unwrap();
        for b in [
            cross_entropy(&gpu, &z, &t, Reduction::Sum),
            cross_entropy(&Reference, &z, &t, Reduction::Sum),
        ] {
            assert!(b.0.is_nan(), "label {bad}: loss {}", b.0);
            let g = b.1.data();
            assert!(
                g[2].is_nan() && g[3].is_nan(),
                "label {bad}: row 1 of the gradient {g:?}"
            );
            assert!(
                g[0].is_finite() && g[5].is_finite(),
                "label {bad}: other rows {g:?}"
            );
        }
    }
}

/// Reductions longer than llvmpipe lets one invocation loop (65 535 iterations): the
/// MSE over 20 M elements (more than 256 × 65 535), the cross-entropy over 4 M rows,
/// and a linear backward over a batch of 70 000 rows, each against the CPU.
#[test]
fn long_reductions_match_cpu_beyond_llvmpipes_loop_limit() {
    let Some(gpu) = gpu() else { return };
    // llvmpipe's budget on every adapter, so that the splitting runs everywhere.
    let gpu = gpu.with_loop_budget(Some(LOOP_BUDGET));
    let mut r = rng(24);
    let count = 20_000_000;
    let p = random(&mut r, 1, count, -1.0, 1.0);
    let t = random(&mut r, 1, count, -1.0, 1.0);
    let got = mse_loss(&gpu, &p, &t, Reduction::Mean);
    let want = mse_loss(&Reference, &p, &t, Reduction::Mean);
    // The same squares summed in two ways: on the GPU each invocation adds up to 32 768
    // of them in order, then a tree of 8 levels and 3 chunks; the CPU adds blocks of 64
    // in order and the block sums pairwise (19 levels). Each is within γ of its own
    // count of additions times the sum of squares (sq).
    let sq: f64 = p
        .data()
        .iter()
        .zip(t.data())
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    let bound = (gamma(32_768 + 8 + 3 + 2) + gamma(64 + 19 + 2)) * sq / count as f64;
    assert_within("mse_loss over 20 M elements", &[got], &[want], &[bound]);

    let n = 4_000_000;
    let z = random(&mut r, n, 2, -3.0, 3.0);
    let l = labels(&mut r, n, 2);
    let (got, _) = cross_entropy(&gpu, &z, &l, Reduction::Sum);
    let (want, _) = cross_entropy(&Reference, &z, &l, Reduction::Sum);
    // Each row's loss within a few ulps of its magnitude (≤ 7 here) on either side,
    // then 4 M rows summed in the two ways above (1.67 M rows per GPU chunk, 6 511 per
    // invocation; in one launch, 15 625 rows of 5 iterations each would pass the limit).
    let rows = (gamma(6_511 + 8 + 3 + 2) + gamma(64 + 16 + 2)) * (want.abs() as f64);
    let bound = rows + n as f64 * 64.0 * U * 7.0;
    assert_within("cross_entropy over 4 M rows", &[got], &[want], &[bound]);

    // Positive terms, so that rows left out would show beyond the rounding bound.
    let (n, k, m) = (70_000, 3, 2);
    let x = random(&mut r, n, k, 0.0, 1.0);
    let w = random(&mut r, m, k, -1.0, 1.0);
    let dy = random(&mut r, n, m, 0.0, 1.0);
    let zeros = |rows, cols| Tensor::new(&[rows, cols], vec![0.0; rows * cols]).unwrap();
    let got = linear_backward(&gpu, &x, &w, &dy, &zeros(m, k), &zeros(1, m));
    let want = linear_backward(&Reference, &x, &w, &dy, &zeros(m, k), &zeros(1, m));
    let mut dw_mag = vec![0.0f64; m * k];
    definitions::linear_backward_weight(&abs64(&dy), &abs64(&x), &mut dw_mag, n, k, m);
    let bound: Vec<f64> = dw_mag.iter().map(|v| 2.0 * gamma(n) * v).collect();
    assert_within("dw over 70 000 rows", got.1.data(), want.1.data(), &bound);
    let mut db_mag = vec![0.0f64; m];
    definitions::linear_backward_bias(&abs64(&dy), &mut db_mag, n, m);
    let bound: Vec<f64> = db_mag.iter().map(|v| 2.0 * gamma(n) * v).collect();
    assert_within("db over 70 000 rows", got.2.data(), want.2.data(), &bound);
}

/// Where the adapter limits an invocation's loops (llvmpipe), a row too long to split
/// is an error that names the limit, not a silently truncated result.
#[test]
fn rows_too_long_for_the_loop_limit_are_errors() {
    let Some(gpu) = gpu() else { return };
    // llvmpipe's budget on every adapter, so that the test runs everywhere.
    let gpu = gpu.with_loop_budget(Some(LOOP_BUDGET));
    let budget = LOOP_BUDGET;
    let k = budget + 1;
    let x = gpu.alloc(1, k).unwrap();
    let w = gpu.alloc(1, k).unwrap();
    let b = gpu.alloc(1, 1).unwrap();
    let y = gpu.alloc(1, 1).unwrap();
    let e = gpu.linear_forward(&x, &w, &b, &y).unwrap_err().to_string();
    assert!(
        e.contains("input width of 32769") && e.contains("65535"),
        "{e}"
    );
    let c = budget;
    let z = gpu.alloc(1, c).unwrap();
    let l = gpu.alloc(1, 1).unwrap();
    let out = gpu.alloc(1, 1).unwrap();
    let e = gpu
        .loss(LossKind::CrossEntropy, &z, &l, Reduction::Sum, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{c} classes per row")), "{e}");
}
