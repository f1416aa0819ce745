//! Every op's backward in the CPU reference against central finite differences, both
//! computed in f64 with the very code the CPU backend runs in f32.
//!
//! For an op y = f(inputs) and a random projection G, L = Σ G ⊙ f(inputs); the
//! backward given dy = G must equal ∂L/∂input, which is estimated as
//! (L(v + h) − L(v − h)) / 2h. In f64 with h = 1e-6 the estimate is accurate to about
//! 1e-8 for these smooth (or piecewise linear, away from the kink) functions, so
//! 1e-6 · (1 + |∂L|) is a tolerance with ample margin that still catches any wrong
//! formula.

mod common;

use common::{assert_matches_finite_differences, rng};
use minidl::backend::reference::definitions;
use minidl::Act;
use minidl::Reduction;
use rand::RngExt;

fn random(r: &mut rand::rngs::ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut r = rng(10);
    for (n, k, m) in [(1, 1, 1), (3, 4, 5), (10, 25, 25), (7, 2, 3)] {
        let mut x = random(&mut r, n * k);
        let mut w = random(&mut r, m * k);
        let mut b = random(&mut r, m);
        let g = random(&mut r, n * m);
        let forward = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![0.0; n * m];
            definitions::linear_forward(x, w, b, &mut y, n, k, m);
            dot(&y, &g)
        };
        let mut dx = vec![0.0; n * k];
        let mut dw = vec![0.0; m * k];
        let mut db = vec![0.0; m];
        definitions::linear_backward_input(&g, &w, &mut dx, n, k, m);
        definitions::linear_backward_weight(&g, &x, &mut dw, n, k, m);
        definitions::linear_backward_bias(&g, &mut db, n, m);
        let (w0, b0, x0) = (w.clone(), b.clone(), x.clone());
        assert_matches_finite_differences("linear dx", &mut x, &dx, |x| forward(x, &w0, &b0));
        assert_matches_finite_differences("linear dw", &mut w, &dw, |w| forward(&x0, w, &b0));
        assert_matches_finite_differences("linear db", &mut b, &db, |b| forward(&x0, &w0, b));
    }
}

#[test]
fn linear_backward_accumulates() {
    let mut r = rng(11);
    let (n, k, m) = (4, 3, 2);
    let (x, g) = (random(&mut r, n * k), random(&mut r, n * m));
    let start = random(&mut r, m * k);
    let mut once = vec![0.0; m * k];
    definitions::linear_backward_weight(&g, &x, &mut once, n, k, m);
    let mut acc = start.clone();
    definitions::linear_backward_weight(&g, &x, &mut acc, n, k, m);
    for i in 0..m * k {
        assert!((acc[i] - (start[i] + once[i])).abs() < 1e-12);
    }
}

#[test]
fn relu_backward_matches_finite_differences() {
    let mut r = rng(12);
    let n = 200;
    // Keep away from the kink at 0, where the derivative is not defined.
    let mut x: Vec<f64> = random(&mut r, n)
        .into_iter()
        .map(|v| {
            if v.abs() < 1e-3 {
                v + 2e-3_f64.copysign(v)
            } else {
                v
            }
        })
        .collect();
    let g = random(&mut r, n);
    let mut dx = vec![0.0; n];
    definitions::activation_backward(Act::Relu, &x, &g, &mut dx);
    assert_matches_finite_differences("relu dx", &mut x, &dx, |x| {
        let mut y = vec![0.0; n];
        definitions::activation_forward(Act::Relu, x, &mut y);
        dot(&y, &g)
    });
}

#[test]
fn tanh_backward_matches_finite_differences() {
    let mut r = rng(13);
    let n = 200;
    let mut x: Vec<f64> = random(&mut r, n).into_iter().map(|v| 4.0 * v).collect();
    let g = random(&mut r, n);
    let mut y = vec![0.0; n];
    definitions::activation_forward(Act::Tanh, &x, &mut y);
    let mut dx = vec![0.0; n];
    definitions::activation_backward(Act::Tanh, &y, &g, &mut dx);
    assert_matches_finite_differences("tanh dx", &mut x, &dx, |x| {
        let mut y = vec![0.0; n];
        definitions::activation_forward(Act::Tanh, x, &mut y);
        dot(&y, &g)
    });
}

#[test]
fn mse_grad_matches_finite_differences() {
    let mut r = rng(14);
    for count in [1, 20, 300] {
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let mut p = random(&mut r, count);
            let t = random(&mut r, count);
            let scale = reduction.loss_scale(count) as f64;
            let factor = reduction.mse_grad_scale(count) as f64;
            let mut grad = vec![0.0; count];
            definitions::mse_grad(&p, &t, factor, &mut grad);
            assert_matches_finite_differences(
                &format!("mse {reduction:?} dp"),
                &mut p,
                &grad,
                |p| definitions::mse_loss(p, &t, scale),
            );
        }
    }
}

#[test]
fn mse_follows_pytorch_reductions() {
    // PyTorch's MSELoss: 'sum' is Σ(p−t)², 'mean' divides by the element count.
    let p = [1.0f64, 2.0, 3.0, 5.0];
    let t = [0.0f64, 2.0, 1.0, 1.0];
    let sq: f64 = p.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
    let sum = definitions::mse_loss(&p, &t, Reduction::Sum.loss_scale(4) as f64);
    let mean = definitions::mse_loss(&p, &t, Reduction::Mean.loss_scale(4) as f64);
    assert_eq!(sum, sq);
    assert_eq!(mean, sq / 4.0);
}

#[test]
fn activation_gates_match_finite_differences() {
    use minidl::Act;
    let mut r = rng(16);
    for act in Act::ALL {
        // Away from ReLU's kink at 0, where the difference quotient straddles it.
        let mut z: Vec<f64> = random(&mut r, 40)
            .into_iter()
            .map(|v| if v.abs() < 1e-3 { 0.5 } else { v })
            .collect();
        let g = random(&mut r, 40);
        let mut y = z.clone();
        definitions::activate_in_place(&mut y, act);
        let mut dz = vec![0.0; 40];
        definitions::gate(&g, &y, act, &mut dz);
        assert_matches_finite_differences(&format!("{act:?} gate"), &mut z, &dz, |z| {
            let mut y = z.to_vec();
            definitions::activate_in_place(&mut y, act);
            dot(&y, &g)
        });
    }
}

#[test]
fn sigmoid_backward_matches_finite_differences() {
    let mut r = rng(17);
    let n = 40;
    let mut x: Vec<f64> = random(&mut r, n).into_iter().map(|v| 6.0 * v).collect();
    let g = random(&mut r, n);
    let mut y = vec![0.0; n];
    definitions::activation_forward(Act::Sigmoid, &x, &mut y);
    let mut dx = vec![0.0; n];
    definitions::activation_backward(Act::Sigmoid, &y, &g, &mut dx);
    assert_matches_finite_differences("sigmoid dx", &mut x, &dx, |x| {
        let mut y = vec![0.0; n];
        definitions::activation_forward(Act::Sigmoid, x, &mut y);
        dot(&y, &g)
    });
}

#[test]
fn sigmoid_follows_its_definition() {
    // PyTorch's Sigmoid, 1 / (1 + exp(−x)), through an independent identity:
    // σ(x) = e^(x/2) / (e^(x/2) + e^(−x/2)), in f64, against the reference in f32 and f64.
    for x in [-30.0f64, -2.0, -0.25, 0.0, 0.5, 3.0, 30.0] {
        let (up, down) = ((x / 2.0).exp(), (-x / 2.0).exp());
        let want = up / (up + down);
        let mut y = [0.0];
        definitions::activation_forward(Act::Sigmoid, &[x], &mut y);
        assert!(
            (y[0] - want).abs() <= 1e-14 * want,
            "sigmoid({x}) = {} in f64, want {want}",
            y[0]
        );
        let mut y32 = [0.0f32];
        definitions::activation_forward(Act::Sigmoid, &[x as f32], &mut y32);
        assert!(
            (y32[0] as f64 - want).abs() <= 4.0 * f32::EPSILON as f64 * want,
            "sigmoid({x}) = {} in f32, want {want}",
            y32[0]
        );
    }
}

#[test]
fn leaky_relu_backward_matches_finite_differences() {
    let mut r = rng(18);
    let n = 40;
    for slope in [0.01f32, 0.3] {
        // Away from the kink at 0.
        let mut x: Vec<f64> = random(&mut r, n)
            .into_iter()
            .map(|v| if v.abs() < 1e-3 { 0.5 } else { v })
            .collect();
        let g = random(&mut r, n);
        let mut dx = vec![0.0; n];
        definitions::activation_backward(Act::LeakyRelu(slope), &x, &g, &mut dx);
        assert_matches_finite_differences(&format!("leaky_relu {slope} dx"), &mut x, &dx, |x| {
            let mut y = vec![0.0; n];
            definitions::activation_forward(Act::LeakyRelu(slope), x, &mut y);
            dot(&y, &g)
        });
    }
}

#[test]
fn cross_entropy_grad_matches_finite_differences() {
    let mut r = rng(19);
    for (n, c) in [(1, 1), (1, 2), (5, 3), (10, 10)] {
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let mut z: Vec<f64> = random(&mut r, n * c).into_iter().map(|v| 4.0 * v).collect();
            let labels: Vec<f64> = (0..n).map(|i| ((i * 7 + 3) % c) as f64).collect();
            let scale = reduction.loss_scale(n) as f64;
            let mut grad = vec![0.0; n * c];
            definitions::cross_entropy_grad(&z, &labels, c, scale, &mut grad);
            assert_matches_finite_differences(
                &format!("cross_entropy {reduction:?} {n}×{c} dz"),
                &mut z,
                &grad,
                |z| definitions::cross_entropy_loss(z, &labels, c, scale),
            );
        }
    }
}

#[test]
fn cross_entropy_follows_pytorch_formula() {
    // PyTorch's CrossEntropyLoss on class indices: −log softmax(z)[label], summed or
    // averaged over the rows; computed here naively, which is exact enough for
    // moderate logits.
    let z = [1.0f64, 2.0, 0.5, -1.0, 0.0, 3.0];
    let labels = [1.0f64, 2.0];
    let naive: f64 = z
        .chunks(3)
        .zip(&labels)
        .map(|(row, &l)| {
            let sum: f64 = row.iter().map(|v| v.exp()).sum();
            -(row[l as usize].exp() / sum).ln()
        })
        .sum();
    let sum = definitions::cross_entropy_loss(&z, &labels, 3, Reduction::Sum.loss_scale(2) as f64);
    let mean =
        definitions::cross_entropy_loss(&z, &labels, 3, Reduction::Mean.loss_scale(2) as f64);
    assert!((sum - naive).abs() < 1e-12, "{sum} vs {naive}");
    assert!(
        (mean - naive / 2.0).abs() < 1e-12,
        "{mean} vs {}",
        naive / 2.0
    );
    // Stable where the naive formula overflows: shifting every logit of a row leaves
    // the loss unchanged.
    let shifted: Vec<f64> = z.iter().map(|v| v + 1000.0).collect();
    let big = definitions::cross_entropy_loss(&shifted, &labels, 3, 1.0);
    assert!((big - naive).abs() < 1e-9, "{big} vs {naive}");
}
