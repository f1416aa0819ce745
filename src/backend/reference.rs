//! The definition of every op: plain loops over row-major slices, generic over the
//! float type so that the same code runs in `f32` (the [`Cpu`](crate::Cpu) backend)
//! and in `f64` (the finite-difference checks of the tests).
//!
//! Dimensions follow [`Backend`](crate::Backend): `x: n×k`, `w: m×k`, `y: n×m`.
//! These functions index slices directly and panic if a slice is shorter than its
//! dimensions say; the backends check shapes before calling them.

use std::ops::{Add, AddAssign, Mul, Sub};

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
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn tanh(self) -> Self {
        f64::tanh(self)
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
