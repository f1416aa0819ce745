//! The definition of every op: plain loops over row-major slices, generic over the
//! float type so that the same code runs in `f32` (the [`Reference`](crate::Reference)
//! backend, the oracle of the tests; the [`Cpu`](crate::Cpu) backend's elementwise ops)
//! and in `f64` (the finite-difference checks of the tests).
//!
//! Dimensions follow [`Backend`](crate::Backend): `x: n×k`, `w: m×k`, `y: n×m`.
//! These functions index slices directly and panic if a slice is shorter than its
//! dimensions say; the backends check shapes before calling them.

use std::ops::{Add, AddAssign, Div, Mul, Sub};

use crate::backend::act::Act;
use crate::backend::mlp::{MlpRecipe, MlpSpec};
use crate::backend::update::UpdateRule;
use crate::backend::update::{AdamStep, MomentumStep};
use crate::backend::{LossKind, StateLayout};

/// The float types the reference runs in (`f32` and `f64`).
pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// A quiet NaN.
    const NAN: Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The nearest value to `v`.
    fn from_f32(v: f32) -> Self;
    /// The value as an `f64` (exact for both types).
    fn to_f64(self) -> f64;
    /// `e^self`.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NAN: Self = f32::NAN;
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NAN: Self = f64::NAN;
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
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

/// The logistic function `1 / (1 + e^(−x))` of one value.
pub fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (T::ZERO - x).exp())
}

/// `act(z)` of one value: the definition of every activation.
pub fn activate<T: Real>(z: T, act: Act) -> T {
    match act {
        Act::Identity => z,
        Act::Relu if z > T::ZERO => z,
        Act::Relu => T::ZERO,
        Act::Tanh => z.tanh(),
        Act::Sigmoid => sigmoid(z),
        Act::LeakyRelu(_) if z > T::ZERO => z,
        Act::LeakyRelu(slope) => T::from_f32(slope) * z,
    }
}

/// The gradient with respect to an activation's input, from `dy` and the saved value
/// `s` (see [`Act::backward_from_input`]): `dy` where `s > 0`, else 0 (ReLU, PyTorch's
/// choice at 0) or `slope · dy` (LeakyReLU); `dy · (1 − s²)` for tanh and `dy · s (1 −
/// s)` for the sigmoid, `s` being the output; `dy` for the identity.
pub fn gate_one<T: Real>(dy: T, s: T, act: Act) -> T {
    match act {
        Act::Identity => dy,
        Act::Relu if s > T::ZERO => dy,
        Act::Relu => T::ZERO,
        Act::Tanh => dy * (T::ONE - s * s),
        Act::Sigmoid => dy * (s * (T::ONE - s)),
        Act::LeakyRelu(_) if s > T::ZERO => dy,
        Act::LeakyRelu(slope) => T::from_f32(slope) * dy,
    }
}

/// `y = act(x)`, elementwise.
pub fn activation_forward<T: Real>(act: Act, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = activate(x, act);
    }
}

/// `dx = dy ⊙ act'`, from the saved input or output (see [`gate_one`]).
pub fn activation_backward<T: Real>(act: Act, saved: &[T], dy: &[T], dx: &mut [T]) {
    gate(dy, saved, act, dx)
}

/// `y = act(y)` in place, as the activation's own op computes it.
pub fn activate_in_place<T: Real>(y: &mut [T], act: Act) {
    for v in y.iter_mut() {
        *v = activate(*v, act);
    }
}

/// `dz = dy ⊙ act'` from the activation's output `y` (the linear layer's fused
/// backward; for ReLU and LeakyReLU `y > 0` exactly where its input was).
pub fn gate<T: Real>(dy: &[T], y: &[T], act: Act, dz: &mut [T]) {
    for ((dz, &dy), &y) in dz.iter_mut().zip(dy).zip(y) {
        *dz = gate_one(dy, y, act);
    }
}

/// Terms summed in order within a block; longer sums add the block sums pairwise.
pub const SUM_BLOCK: usize = 64;

/// `Σ term(i)` for `i` in `0..n`: blocks of [`SUM_BLOCK`] terms summed in order, then
/// the block sums added pairwise, so that the rounding error grows with
/// `SUM_BLOCK + log₂ n` rather than with `n` (a plain `f32` sum of 20 M squares is off
/// by 4 %). Up to `SUM_BLOCK` terms it is the plain sum in order.
pub fn blocked_sum<T: Real>(n: usize, term: impl Fn(usize) -> T) -> T {
    let blocks = n.div_ceil(SUM_BLOCK);
    if blocks == 0 {
        return T::ZERO;
    }
    pairwise_blocks(0, blocks, n, &term)
}

/// The sum of blocks `first..first + count` as [`blocked_sum`] adds them: level by
/// level, neighbours in pairs (an odd last one carried up), which is the sum of the
/// first power-of-two half and the rest, recursively. Allocates nothing.
fn pairwise_blocks<T: Real>(first: usize, count: usize, n: usize, term: &impl Fn(usize) -> T) -> T {
    if count == 1 {
        let start = first * SUM_BLOCK;
        let mut acc = T::ZERO;
        for i in start..(start + SUM_BLOCK).min(n) {
            acc += term(i);
        }
        return acc;
    }
    let half = count.next_power_of_two() / 2;
    pairwise_blocks(first, half, n, term) + pairwise_blocks(first + half, count - half, n, term)
}

/// `scale · Σ (p − t)²`, summed by [`blocked_sum`].
pub fn mse_loss<T: Real>(pred: &[T], target: &[T], scale: T) -> T {
    blocked_sum(pred.len().min(target.len()), mse_term(pred, target)) * scale
}

/// Term `i` of [`mse_loss`]'s sum: `(p − t)²`.
pub fn mse_term<'a, T: Real>(pred: &'a [T], target: &'a [T]) -> impl Fn(usize) -> T + Sync + 'a {
    |i| {
        let d = pred[i] - target[i];
        d * d
    }
}

/// `grad = factor · (p − t)`.
pub fn mse_grad<T: Real>(pred: &[T], target: &[T], factor: T, grad: &mut [T]) {
    for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
        *g = (p - t) * factor;
    }
}

/// The class a label value names, when it is a whole number below `classes`.
fn class_of<T: Real>(label: T, classes: usize) -> Option<usize> {
    let l = label.to_f64();
    (l >= 0.0 && l.fract() == 0.0 && l < classes as f64).then_some(l as usize)
}

/// The row's maximum and `ln Σ_j e^(z_j − max)`, the stable log-sum-exp in two parts.
fn log_sum_exp<T: Real>(z: &[T]) -> (T, T) {
    let mut max = z[0];
    for &v in &z[1..] {
        if v > max {
            max = v;
        }
    }
    let mut sum = T::ZERO;
    for &v in z {
        sum += (v - max).exp();
    }
    (max, sum.ln())
}

/// Softmax cross-entropy of `logits` (`n × classes`, row-major) against class
/// indices `labels` (`n` values): `scale · Σ_r (ln Σ_j e^(z_rj − max_r) + max_r −
/// z_r,label)`, the rows summed by [`blocked_sum`]. A label that is not a whole number
/// below `classes` makes the result NaN.
pub fn cross_entropy_loss<T: Real>(logits: &[T], labels: &[T], classes: usize, scale: T) -> T {
    let n = labels.len().min(logits.len() / classes.max(1));
    blocked_sum(n, cross_entropy_term(logits, labels, classes)) * scale
}

/// Term `r` of [`cross_entropy_loss`]'s sum: row `r`'s loss, NaN where its label is
/// invalid.
pub fn cross_entropy_term<'a, T: Real>(
    logits: &'a [T],
    labels: &'a [T],
    classes: usize,
) -> impl Fn(usize) -> T + Sync + 'a {
    move |r| {
        let z = &logits[r * classes..(r + 1) * classes];
        match class_of(labels[r], classes) {
            None => T::NAN,
            Some(t) => {
                let (max, lse) = log_sum_exp(z);
                lse + max - z[t]
            }
        }
    }
}

/// The gradient of [`cross_entropy_loss`] with respect to the logits:
/// `scale · (softmax(z_r) − onehot(label_r))`, NaN on a row whose label is invalid.
pub fn cross_entropy_grad<T: Real>(
    logits: &[T],
    labels: &[T],
    classes: usize,
    scale: T,
    grad: &mut [T],
) {
    for ((z, g), &label) in logits
        .chunks(classes)
        .zip(grad.chunks_mut(classes))
        .zip(labels)
    {
        let t = class_of(label, classes);
        let (max, lse) = log_sum_exp(z);
        for (j, (g, &v)) in g.iter_mut().zip(z).enumerate() {
            let p = (v - max - lse).exp();
            *g = match t {
                Some(t) if t == j => (p - T::ONE) * scale,
                Some(_) => p * scale,
                None => T::NAN,
            };
        }
    }
}

/// The first half of SGD with momentum (PyTorch's `SGD` with `dampening = 0`):
/// `g = grad + weight_decay · param`, `velocity = momentum · velocity + g`.
pub fn momentum_velocity<T: Real>(
    velocity: &mut [T],
    grad: &[T],
    param: &[T],
    hyper: &MomentumStep,
) {
    let (momentum, wd) = (T::from_f32(hyper.momentum), T::from_f32(hyper.weight_decay));
    for ((v, &g), &p) in velocity.iter_mut().zip(grad).zip(param) {
        *v = momentum * *v + (g + wd * p);
    }
}

/// The second half: `param −= lr · d` with `d = g + momentum · velocity` (Nesterov) or
/// `d = velocity`, `g` as in [`momentum_velocity`].
pub fn momentum_update<T: Real>(param: &mut [T], grad: &[T], velocity: &[T], hyper: &MomentumStep) {
    let (lr, momentum, wd) = (
        T::from_f32(hyper.lr),
        T::from_f32(hyper.momentum),
        T::from_f32(hyper.weight_decay),
    );
    for ((p, &g), &v) in param.iter_mut().zip(grad).zip(velocity) {
        let g = g + wd * *p;
        let d = if hyper.nesterov { g + momentum * v } else { v };
        *p = *p - lr * d;
    }
}

/// The first half of Adam (PyTorch's `Adam`, `amsgrad = False`) on `state = [m | v |
/// c₁ | c₂]` ([`StateLayout::ADAM`]): `g = grad + weight_decay · param`,
/// `m += (1 − β₁)(g − m)`, `v = β₂ v + (1 − β₂) g²`, and the bias corrections
/// `c = 1 − βᵗ` advance as `c ← (1 − β) + β c` (from 0: exact at the first step, where
/// `1 − βᵗ` computed from a power would cancel most of its digits).
pub fn adam_moments<T: Real>(state: &mut [T], grad: &[T], param: &[T], hyper: &AdamStep) {
    let ([m, v], c) = StateLayout::ADAM.split_mut(state, grad.len());
    adam_moments_of(m, v, grad, param, hyper);
    adam_corrections(c, hyper);
}

/// The moments of [`adam_moments`] on matching slices of `m`, `v`, `grad`, `param`.
pub fn adam_moments_of<T: Real>(
    m: &mut [T],
    v: &mut [T],
    grad: &[T],
    param: &[T],
    hyper: &AdamStep,
) {
    let (b1, b2, wd) = (
        T::from_f32(hyper.beta1),
        T::from_f32(hyper.beta2),
        T::from_f32(hyper.weight_decay),
    );
    for (((m, v), &g), &p) in m.iter_mut().zip(v.iter_mut()).zip(grad).zip(param) {
        let g = g + wd * p;
        *m += (T::ONE - b1) * (g - *m);
        *v = b2 * *v + (T::ONE - b2) * (g * g);
    }
}

/// The bias corrections `c = [c₁, c₂]` of [`adam_moments`], one step on.
pub fn adam_corrections<T: Real>(c: &mut [T], hyper: &AdamStep) {
    let (b1, b2) = (T::from_f32(hyper.beta1), T::from_f32(hyper.beta2));
    c[0] = (T::ONE - b1) + b1 * c[0];
    c[1] = (T::ONE - b2) + b2 * c[1];
}

/// The second half, with the bias corrections `c₁ = 1 − β₁ᵗ`, `c₂ = 1 − β₂ᵗ` of the
/// state: `param −= lr / c₁ · m / (√v / √c₂ + ε)`.
pub fn adam_update<T: Real>(param: &mut [T], state: &[T], hyper: &AdamStep) {
    let ([m, v], c) = StateLayout::ADAM.split(state, param.len());
    adam_update_of(param, m, v, [c[0], c[1]], hyper);
}

/// The update of [`adam_update`] on matching slices of `param`, `m` and `v`, with the
/// bias corrections `c = [c₁, c₂]`.
pub fn adam_update_of<T: Real>(param: &mut [T], m: &[T], v: &[T], c: [T; 2], hyper: &AdamStep) {
    let (lr, eps) = (T::from_f32(hyper.lr), T::from_f32(hyper.eps));
    let step_size = lr / c[0];
    let correction = c[1].sqrt();
    for ((p, &m), &v) in param.iter_mut().zip(m).zip(v) {
        let denom = v.sqrt() / correction + eps;
        *p = *p - step_size * (m / denom);
    }
}

/// `param -= lr · grad`.
pub fn sgd_step<T: Real>(param: &mut [T], grad: &[T], lr: T) {
    for (p, &g) in param.iter_mut().zip(grad) {
        *p = *p - lr * g;
    }
}

/// The loss of a fused epoch's batch, `pred` (rows of `outputs`) against `target` (rows
/// of [`MlpRecipe::target_width`]), as the loss ops compute it with `epoch`'s loss and
/// reduction; its gradient with respect to `pred` into `grad`.
pub fn mlp_loss<T: Real>(
    epoch: &MlpRecipe,
    pred: &[T],
    target: &[T],
    outputs: usize,
    grad: &mut [T],
) -> T {
    let (loss_scale, grad_scale) = epoch.loss_factors(pred.len() / outputs.max(1), outputs);
    let (loss_scale, grad_scale) = (T::from_f32(loss_scale), T::from_f32(grad_scale));
    match epoch.loss {
        LossKind::Mse => {
            mse_grad(pred, target, grad_scale, grad);
            mse_loss(pred, target, loss_scale)
        }
        LossKind::CrossEntropy => {
            cross_entropy_grad(pred, target, outputs, grad_scale, grad);
            cross_entropy_loss(pred, target, outputs, loss_scale)
        }
    }
}

/// One epoch of mini-batch training on the MLP `spec` over `rows` rows of `inputs`
/// and `targets`, composed of the ops above exactly as a `Sequential` trained step by
/// step composes them (zero the gradients, forward, loss into `losses[step]`, backward,
/// the optimizer's step on each parameter), so that both give the same numbers. The
/// update rule's state follows the parameters in `packed` ([`UpdateRule::packed_len`],
/// [`StateLayout`]);
/// Adam's bias corrections advance once per step, as each parameter's would. Its
/// workspace is allocated once per call, not per step.
pub fn mlp_epoch<T: Real>(
    spec: &MlpSpec,
    packed: &mut [T],
    inputs: &[T],
    targets: &[T],
    rows: usize,
    epoch: &MlpRecipe,
    losses: &mut [T],
) {
    let (width_in, width_out) = (spec.inputs(), spec.outputs());
    let width_target = epoch.target_width(spec);
    let offsets = spec.offsets();
    let layers = spec.layers();
    let batch = epoch.batch_size.min(rows);
    let count = spec.param_count();
    let (params, state) = packed.split_at_mut(count);
    // Each layer's output for one batch, its gradients, and two gradient buffers
    // wide enough for any layer.
    let mut ys: Vec<Vec<T>> = layers
        .iter()
        .map(|l| vec![T::ZERO; batch * l.outputs])
        .collect();
    let mut dws: Vec<Vec<T>> = layers
        .iter()
        .map(|l| vec![T::ZERO; l.outputs * l.inputs])
        .collect();
    let mut dbs: Vec<Vec<T>> = layers.iter().map(|l| vec![T::ZERO; l.outputs]).collect();
    let widest = batch * spec.max_width();
    let (mut grad, mut dz) = (vec![T::ZERO; widest], vec![T::ZERO; widest]);
    for (step, first) in (0..rows).step_by(epoch.batch_size).enumerate() {
        let n = epoch.batch_size.min(rows - first);
        let x0 = &inputs[first * width_in..(first + n) * width_in];
        // Forward: keep each layer's output.
        for (l, (layer, &(w, b))) in layers.iter().zip(&offsets).enumerate() {
            let (k, m) = (layer.inputs, layer.outputs);
            let (done, rest) = ys.split_at_mut(l);
            let x = if l == 0 { x0 } else { &done[l - 1][..n * k] };
            let y = &mut rest[0][..n * m];
            linear_forward(x, &params[w..w + m * k], &params[b..b + m], y, n, k, m);
            activate_in_place(y, layer.act);
        }
        let pred = &ys[layers.len() - 1][..n * width_out];
        let target = &targets[first * width_target..(first + n) * width_target];
        losses[step] = mlp_loss(epoch, pred, target, width_out, &mut grad[..n * width_out]);
        // Backward through every layer from the pre-update weights, then update.
        for (l, (layer, &(w, _))) in layers.iter().zip(&offsets).enumerate().rev() {
            let (k, m) = (layer.inputs, layer.outputs);
            gate(&grad[..n * m], &ys[l][..n * m], layer.act, &mut dz[..n * m]);
            let x = if l == 0 { x0 } else { &ys[l - 1][..n * k] };
            dws[l].fill(T::ZERO);
            dbs[l].fill(T::ZERO);
            linear_backward_weight(&dz[..n * m], x, &mut dws[l], n, k, m);
            linear_backward_bias(&dz[..n * m], &mut dbs[l], n, m);
            if l > 0 {
                let weight = &params[w..w + m * k];
                linear_backward_input(&dz[..n * m], weight, &mut grad[..n * k], n, k, m);
            }
        }
        if let UpdateRule::Adam(hyper) = &epoch.rule {
            let ([_, _], corrections) = StateLayout::ADAM.split_mut(state, count);
            adam_corrections(corrections, hyper);
        }
        for ((dw, db), &(w, b)) in dws.iter().zip(&dbs).zip(&offsets) {
            for (at, g) in [(w, dw), (b, db)] {
                let range = at..at + g.len();
                let p = &mut params[range.clone()];
                match &epoch.rule {
                    UpdateRule::Sgd { lr } => sgd_step(p, g, T::from_f32(*lr)),
                    UpdateRule::Momentum(hyper) => {
                        let ([velocity], _) = StateLayout::MOMENTUM.split_mut(state, count);
                        let v = &mut velocity[range];
                        momentum_velocity(v, g, p, hyper);
                        momentum_update(p, g, v, hyper);
                    }
                    UpdateRule::Adam(hyper) => {
                        let ([m, v], c) = StateLayout::ADAM.split_mut(state, count);
                        let (m, v) = (&mut m[range.clone()], &mut v[range]);
                        adam_moments_of(m, v, g, p, hyper);
                        let c = [c[0], c[1]];
                        adam_update_of(p, m, v, c, hyper);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level-by-level definition of [`blocked_sum`]: block sums in order, then
    /// neighbours added in pairs until one is left.
    fn by_levels(values: &[f32]) -> f32 {
        let mut sums: Vec<f32> = values.chunks(SUM_BLOCK).map(|b| b.iter().sum()).collect();
        while sums.len() > 1 {
            sums = sums.chunks(2).map(|p| p.iter().sum()).collect();
        }
        sums.first().copied().unwrap_or(0.0)
    }

    #[test]
    fn blocked_sum_adds_as_the_level_by_level_definition_bit_for_bit() {
        // Values of mixed magnitude, so that another order rounds differently.
        let values: Vec<f32> = (0..20_000)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 10f32.powi(i % 7 - 3))
            .collect();
        for n in [0, 1, 63, 64, 65, 128, 129, 191, 449, 1000, 4097, 20_000] {
            let got = blocked_sum(n, |i| values[i]);
            assert_eq!(got.to_bits(), by_levels(&values[..n]).to_bits(), "n = {n}");
        }
    }
}
