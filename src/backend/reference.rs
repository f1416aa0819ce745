//! The definition of every op: plain loops over row-major slices, generic over the
//! float type so that the same code runs in `f32` (the [`Cpu`](crate::Cpu) backend)
//! and in `f64` (the finite-difference checks of the tests).
//!
//! Dimensions follow [`Backend`](crate::Backend): `x: n×k`, `w: m×k`, `y: n×m`.
//! These functions index slices directly and panic if a slice is shorter than its
//! dimensions say; the backends check shapes before calling them.

use std::ops::{Add, AddAssign, Mul, Sub};

use crate::backend::mlp::{Act, MlpEpoch, MlpSpec};

/// The float types the reference runs in (`f32` and `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + AddAssign
    + std::fmt::Debug
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The nearest value to `v`.
    fn from_f32(v: f32) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn from_f32(v: f32) -> Self {
        v as f64
    }
}

/// `y[r][c] = Σ_i x[r][i] · w[c][i] + b[c]`, the sum taken in order of `i`.
pub fn linear_forward<T: Real>(
    x: &[T],
    w: &[T],
    b: &[T],
    y: &mut [T],
    n: usize,
    k: usize,
    m: usize,
) {
    for r in 0..n {
        for c in 0..m {
            let mut acc = T::ZERO;
            for i in 0..k {
                acc += x[r * k + i] * w[c * k + i];
            }
            y[r * m + c] = acc + b[c];
        }
    }
}

/// `dx[r][i] = Σ_c dy[r][c] · w[c][i]` (overwrites `dx`).
pub fn linear_backward_input<T: Real>(
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    n: usize,
    k: usize,
    m: usize,
) {
    for r in 0..n {
        for i in 0..k {
            let mut acc = T::ZERO;
            for c in 0..m {
                acc += dy[r * m + c] * w[c * k + i];
            }
            dx[r * k + i] = acc;
        }
    }
}

/// `dw[c][i] += Σ_r dy[r][c] · x[r][i]`.
pub fn linear_backward_weight<T: Real>(
    dy: &[T],
    x: &[T],
    dw: &mut [T],
    n: usize,
    k: usize,
    m: usize,
) {
    for c in 0..m {
        for i in 0..k {
            let mut acc = T::ZERO;
            for r in 0..n {
                acc += dy[r * m + c] * x[r * k + i];
            }
            dw[c * k + i] += acc;
        }
    }
}

/// `db[c] += Σ_r dy[r][c]`.
pub fn linear_backward_bias<T: Real>(dy: &[T], db: &mut [T], n: usize, m: usize) {
    for c in 0..m {
        let mut acc = T::ZERO;
        for r in 0..n {
            acc += dy[r * m + c];
        }
        db[c] += acc;
    }
}

/// `y = max(x, 0)`.
pub fn relu_forward<T: Real>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = if x > T::ZERO { x } else { T::ZERO };
    }
}

/// `dx = dy` where `x > 0`, else 0 (PyTorch's choice at 0).
pub fn relu_backward<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = if x > T::ZERO { dy } else { T::ZERO };
    }
}

/// `y = tanh(x)`.
pub fn tanh_forward<T: Real>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.tanh();
    }
}

/// `dx = dy · (1 − y²)` from the forward output `y`.
pub fn tanh_backward<T: Real>(y: &[T], dy: &[T], dx: &mut [T]) {
    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = dy * (T::ONE - y * y);
    }
}

/// `y = act(y)` in place, as the activation's own op computes it.
pub fn activate_in_place<T: Real>(y: &mut [T], act: Act) {
    for v in y.iter_mut() {
        *v = match act {
            Act::Identity => *v,
            Act::Relu if *v > T::ZERO => *v,
            Act::Relu => T::ZERO,
            Act::Tanh => v.tanh(),
        };
    }
}

/// `dz = dy ⊙ act'` from the activation's output `y`: `dy` where `y > 0` for ReLU
/// (exactly where its input was), `dy · (1 − y²)` for tanh, `dy` for the identity.
pub fn gate<T: Real>(dy: &[T], y: &[T], act: Act, dz: &mut [T]) {
    for ((dz, &dy), &y) in dz.iter_mut().zip(dy).zip(y) {
        *dz = match act {
            Act::Identity => dy,
            Act::Relu if y > T::ZERO => dy,
            Act::Relu => T::ZERO,
            Act::Tanh => dy * (T::ONE - y * y),
        };
    }
}

/// `scale · Σ (p − t)²`, the sum taken in order.
pub fn mse_loss<T: Real>(pred: &[T], target: &[T], scale: T) -> T {
    let mut acc = T::ZERO;
    for (&p, &t) in pred.iter().zip(target) {
        let d = p - t;
        acc += d * d;
    }
    acc * scale
}

/// `grad = factor · (p − t)`.
pub fn mse_grad<T: Real>(pred: &[T], target: &[T], factor: T, grad: &mut [T]) {
    for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
        *g = (p - t) * factor;
    }
}

/// `param -= lr · grad`.
pub fn sgd_step<T: Real>(param: &mut [T], grad: &[T], lr: T) {
    for (p, &g) in param.iter_mut().zip(grad) {
        *p = *p - lr * g;
    }
}

/// One epoch of mini-batch SGD on the MLP `spec` over `rows` rows of `inputs` and
/// `targets`, composed of the ops above exactly as a `Sequential` trained step by step
/// composes them (zero the gradients, forward, loss into `losses[step]`, backward,
/// update), so that both give the same numbers.
pub fn mlp_epoch<T: Real>(
    spec: &MlpSpec,
    params: &mut [T],
    inputs: &[T],
    targets: &[T],
    rows: usize,
    epoch: &MlpEpoch,
    losses: &mut [T],
) {
    let (width_in, width_out) = (spec.inputs(), spec.outputs());
    let offsets = spec.offsets();
    for (step, first) in (0..rows).step_by(epoch.batch_size).enumerate() {
        let n = epoch.batch_size.min(rows - first);
        // Forward: keep each layer's input and output.
        let mut xs = vec![inputs[first * width_in..(first + n) * width_in].to_vec()];
        for (layer, &(w, b)) in spec.layers().iter().zip(&offsets) {
            let (k, m) = (layer.inputs, layer.outputs);
            let mut y = vec![T::ZERO; n * m];
            let x = xs.last().expect("starts with the input");
            linear_forward(x, &params[w..w + m * k], &params[b..b + m], &mut y, n, k, m);
            activate_in_place(&mut y, layer.act);
            xs.push(y);
        }
        let pred = xs.last().expect("one output per layer");
        let count = n * width_out;
        let target = &targets[first * width_out..(first + n) * width_out];
        losses[step] = mse_loss(pred, target, T::from_f32(epoch.reduction.loss_scale(count)));
        let mut grad = vec![T::ZERO; count];
        mse_grad(
            pred,
            target,
            T::from_f32(epoch.reduction.grad_scale(count)),
            &mut grad,
        );
        // Backward through every layer from the pre-update weights, then update.
        let mut updates = Vec::new();
        for (l, (layer, &(w, _))) in spec.layers().iter().zip(&offsets).enumerate().rev() {
            let (k, m) = (layer.inputs, layer.outputs);
            let mut dz = vec![T::ZERO; n * m];
            gate(&grad, &xs[l + 1], layer.act, &mut dz);
            let mut dw = vec![T::ZERO; m * k];
            let mut db = vec![T::ZERO; m];
            linear_backward_weight(&dz, &xs[l], &mut dw, n, k, m);
            linear_backward_bias(&dz, &mut db, n, m);
            if l > 0 {
                grad = vec![T::ZERO; n * k];
                linear_backward_input(&dz, &params[w..w + m * k], &mut grad, n, k, m);
            }
            updates.push((dw, db));
        }
        let lr = T::from_f32(epoch.lr);
        for ((dw, db), &(w, b)) in updates.iter().rev().zip(&offsets) {
            sgd_step(&mut params[w..w + dw.len()], dw, lr);
            sgd_step(&mut params[b..b + db.len()], db, lr);
        }
    }
}
