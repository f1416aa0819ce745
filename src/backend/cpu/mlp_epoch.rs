//! The [`Cpu`](crate::Cpu) backend's fused epoch for narrow MLPs: one pass over the
//! mini-batches with the weights, one batch's activations and its gradients in a few
//! small contiguous buffers that stay in cache, on the calling thread, without the
//! op set's locking and checks between steps. Each weight is updated as soon as its
//! layer's input gradient is computed, so no gradient buffer is kept.
//!
//! Every sum is taken in the reference's order, a row of outputs at a time (the
//! vectorized loops run across outputs, not along a sum), and every update with the
//! optimizer ops' formulas, so that it computes what
//! [`reference::mlp_epoch`](crate::backend::reference::definitions::mlp_epoch) computes.

use crate::backend::cpu::matmul::SMALL_PRODUCT;
use crate::backend::reference::definitions::{
    activate, adam_corrections, adam_moments_of, adam_update_of, gate, mlp_loss, momentum_update,
    momentum_velocity, sgd_step,
};
use crate::backend::{AdamStep, MlpRecipe, MlpSpec, MomentumStep, StateLayout, UpdateRule};

/// Whether every layer's product for one batch is small enough for the fused epoch's
/// single-threaded kernels; wider networks train faster step by step, where the
/// products go to `gemm` and the threads.
pub(crate) fn fits(spec: &MlpSpec, batch_size: usize) -> bool {
    batch_size > 0
        && spec
            .layers()
            .iter()
            .all(|l| batch_size * l.inputs * l.outputs < SMALL_PRODUCT)
}

/// Lanes of a block: every row of the workspace is padded with zeros to a multiple of
/// this, so that the loops below run over whole blocks.
const LANE: usize = 8;

/// `n` rounded up to whole [`LANE`]s.
fn padded(n: usize) -> usize {
    n.div_ceil(LANE) * LANE
}

/// `Σ_t s_t · rows[t][col..col + L]` over the scalars `s_t` in order, each sum started
/// at 0 and added to in the order of `t` (the reference's order), kept in registers.
#[inline(always)]
fn block<const L: usize>(
    scalars: impl Iterator<Item = f32>,
    rows: &[f32],
    stride: usize,
    col: usize,
) -> [f32; L] {
    let mut acc = [0.0f32; L];
    for (t, s) in scalars.enumerate() {
        let row = &rows[t * stride + col..t * stride + col + L];
        for j in 0..L {
            acc[j] += s * row[j];
        }
    }
    acc
}

/// `out = Σ_t s_t · rows[t]` over a padded row of `out.len()` lanes: blocks of 32 lanes
/// (four independent AVX2 sums), then of 8.
#[inline(always)]
fn combine(
    scalars: impl Iterator<Item = f32> + Clone,
    rows: &[f32],
    stride: usize,
    out: &mut [f32],
) {
    let mut col = 0;
    while col + 4 * LANE <= out.len() {
        let acc = block::<{ 4 * LANE }>(scalars.clone(), rows, stride, col);
        out[col..col + 4 * LANE].copy_from_slice(&acc);
        col += 4 * LANE;
    }
    while col < out.len() {
        let acc = block::<LANE>(scalars.clone(), rows, stride, col);
        out[col..col + LANE].copy_from_slice(&acc);
        col += LANE;
    }
}

/// The update of a run of parameters from their gradients, with the state the rule
/// keeps for them: the reference's optimizer functions on the run's slices.
trait Step {
    /// Called at the start of each mini-batch, before its updates.
    fn start_step(&mut self) {}

    /// Updates the parameters `p`, which start at index `at` of the parameters, from
    /// their gradients `g` (as long as `p`).
    fn apply(&mut self, at: usize, p: &mut [f32], g: &[f32]);
}

/// Plain SGD.
struct Sgd(f32);

impl Step for Sgd {
    #[inline(always)]
    fn apply(&mut self, _at: usize, p: &mut [f32], g: &[f32]) {
        sgd_step(p, g, self.0);
    }
}

/// SGD with momentum and weight decay, on the velocities.
struct Momentum<'a> {
    hyper: MomentumStep,
    velocity: &'a mut [f32],
}

impl Step for Momentum<'_> {
    #[inline(always)]
    fn apply(&mut self, at: usize, p: &mut [f32], g: &[f32]) {
        let velocity = &mut self.velocity[at..at + p.len()];
        momentum_velocity(velocity, g, p, &self.hyper);
        momentum_update(p, g, velocity, &self.hyper);
    }
}

/// Adam on the moments, with the bias corrections advanced at the start of each step.
struct Adam<'a> {
    hyper: AdamStep,
    m: &'a mut [f32],
    v: &'a mut [f32],
    /// `[1 − β₁ᵗ, 1 − β₂ᵗ]`.
    corrections: &'a mut [f32],
}

impl Step for Adam<'_> {
    #[inline(always)]
    fn start_step(&mut self) {
        adam_corrections(self.corrections, &self.hyper);
    }

    #[inline(always)]
    fn apply(&mut self, at: usize, p: &mut [f32], g: &[f32]) {
        let (m, v) = (&mut self.m[at..at + p.len()], &mut self.v[at..at + p.len()]);
        adam_moments_of(m, v, g, p, &self.hyper);
        let c = [self.corrections[0], self.corrections[1]];
        adam_update_of(p, m, v, c, &self.hyper);
    }
}

/// One epoch of mini-batch training on `spec` (see
/// [`MlpTrainer::mlp_epoch`](crate::backend::MlpTrainer::mlp_epoch)) on `packed`, the
/// parameters and the rule's state. Allocates its workspace once per call. Runs with
/// AVX2 where the processor has it.
pub(crate) fn run(
    spec: &MlpSpec,
    packed: &mut [f32],
    inputs: &[f32],
    targets: &[f32],
    rows: usize,
    epoch: &MlpRecipe,
    losses: &mut [f32],
) {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2, checked just above.
        return unsafe { run_avx2(spec, packed, inputs, targets, rows, epoch, losses) };
    }
    run_portable(spec, packed, inputs, targets, rows, epoch, losses)
}

/// [`run`] compiled for AVX2.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2(
    spec: &MlpSpec,
    packed: &mut [f32],
    inputs: &[f32],
    targets: &[f32],
    rows: usize,
    epoch: &MlpRecipe,
    losses: &mut [f32],
) {
    run_portable(spec, packed, inputs, targets, rows, epoch, losses)
}

/// [`run`] for any processor; inlined into [`run_avx2`] so that it is compiled for
/// AVX2 there. Splits `packed` and hands [`run_steps`] the rule's update.
#[inline(always)]
fn run_portable(
    spec: &MlpSpec,
    packed: &mut [f32],
    inputs: &[f32],
    targets: &[f32],
    rows: usize,
    epoch: &MlpRecipe,
    losses: &mut [f32],
) {
    let count = spec.param_count();
    let (params, state) = packed.split_at_mut(count);
    let data = (inputs, targets, rows);
    match epoch.rule {
        UpdateRule::Sgd { lr } => run_steps(spec, params, &mut Sgd(lr), data, epoch, losses),
        UpdateRule::Momentum(hyper) => {
            let ([velocity], _) = StateLayout::MOMENTUM.split_mut(state, count);
            let step = &mut Momentum { hyper, velocity };
            run_steps(spec, params, step, data, epoch, losses)
        }
        UpdateRule::Adam(hyper) => {
            let ([m, v], corrections) = StateLayout::ADAM.split_mut(state, count);
            let step = &mut Adam {
                hyper,
                m,
                v,
                corrections,
            };
            run_steps(spec, params, step, data, epoch, losses)
        }
    }
}

/// The epoch's mini-batches over `rows` rows of `inputs` and `targets`, each
/// parameter updated by `update`.
#[inline(always)]
fn run_steps(
    spec: &MlpSpec,
    params: &mut [f32],
    update: &mut impl Step,
    (inputs, targets, rows): (&[f32], &[f32], usize),
    epoch: &MlpRecipe,
    losses: &mut [f32],
) {
    let (width_in, width_out) = (spec.inputs(), spec.outputs());
    let offsets = spec.offsets();
    let layers = spec.layers();
    let batch = epoch.batch_size.min(rows);
    let mut ws = Workspace::new(spec, params, batch);
    let (in_pad, out_pad) = (padded(width_in), padded(width_out));
    let width_target = epoch.target_width(spec);
    for (step, first) in (0..rows).step_by(epoch.batch_size).enumerate() {
        let n = epoch.batch_size.min(rows - first);
        update.start_step();
        // The batch's inputs, padded.
        for (src, dst) in inputs[first * width_in..(first + n) * width_in]
            .chunks_exact(width_in)
            .zip(ws.input.chunks_exact_mut(in_pad))
        {
            dst[..width_in].copy_from_slice(src);
        }
        // Forward: each output the sum over the inputs in order, plus the bias, then
        // the activation, as the reference computes it; padding lanes stay 0.
        for (l, (layer, &(_, b))) in layers.iter().zip(&offsets).enumerate() {
            let (k, m, m_pad) = (layer.inputs, layer.outputs, padded(layer.outputs));
            let k_pad = padded(k);
            let (before, rest) = ws.outputs.split_at_mut(ws.starts[l]);
            let x = if l == 0 {
                &ws.input[..n * k_pad]
            } else {
                &before[ws.starts[l - 1]..ws.starts[l - 1] + n * k_pad]
            };
            let wt = &ws.transposed[l];
            let bias = &params[b..b + m];
            for (xr, y) in x
                .chunks_exact(k_pad)
                .zip(rest[..n * m_pad].chunks_exact_mut(m_pad))
            {
                combine(xr[..k].iter().copied(), wt, m_pad, y);
                for (v, &bc) in y[..m].iter_mut().zip(bias) {
                    *v = activate(*v + bc, layer.act);
                }
            }
        }
        // The loss and its gradient on the predictions gathered contiguous, as the
        // reference's; the gradient scattered back into padded rows.
        let count = n * width_out;
        let last = layers.len() - 1;
        let y_last = &ws.outputs[ws.starts[last]..ws.starts[last] + n * out_pad];
        for (src, dst) in y_last
            .chunks_exact(out_pad)
            .zip(ws.pred.chunks_exact_mut(width_out))
        {
            dst.copy_from_slice(&src[..width_out]);
        }
        let (pred, target) = (
            &ws.pred[..count],
            &targets[first * width_target..(first + n) * width_target],
        );
        losses[step] = mlp_loss(epoch, pred, target, width_out, &mut ws.pred_grad[..count]);
        for (src, dst) in ws.pred_grad[..count]
            .chunks_exact(width_out)
            .zip(ws.grad.chunks_exact_mut(out_pad))
        {
            dst.fill(0.0);
            dst[..width_out].copy_from_slice(src);
        }
        // Backward, each layer updated once its input gradient is taken from the
        // weights before the update.
        for (l, (layer, &(w, b))) in layers.iter().zip(&offsets).enumerate().rev() {
            let (k, m) = (layer.inputs, layer.outputs);
            let (k_pad, m_pad) = (padded(k), padded(m));
            let dz = &mut ws.dz[..n * m_pad];
            gate(
                &ws.grad[..n * m_pad],
                &ws.outputs[ws.starts[l]..ws.starts[l] + n * m_pad],
                layer.act,
                dz,
            );
            let dz = &ws.dz[..n * m_pad];
            let x = if l == 0 {
                &ws.input[..n * k_pad]
            } else {
                &ws.outputs[ws.starts[l - 1]..ws.starts[l - 1] + n * k_pad]
            };
            if l > 0 {
                // dx[r] = Σ_c dz[r][c] · w[c], in order of c.
                let weight = &ws.weights[l];
                for (dzr, dx) in dz.chunks_exact(m_pad).zip(ws.next.chunks_exact_mut(k_pad)) {
                    combine(dzr[..m].iter().copied(), weight, k_pad, dx);
                }
            }
            // w[c] steps along Σ_r dz[r][c] · x[r], the sum in order of r; the padded
            // copies follow.
            let row = &mut ws.dw_row[..k_pad];
            for c in 0..m {
                combine((0..n).map(|r| dz[r * m_pad + c]), x, k_pad, row);
                let wc = &mut params[w + c * k..w + (c + 1) * k];
                update.apply(w + c * k, wc, &row[..k]);
                for (i, &p) in wc.iter().enumerate() {
                    ws.weights[l][c * k_pad + i] = p;
                    ws.transposed[l][i * m_pad + c] = p;
                }
            }
            // b steps along Σ_r dz[r], in order of r (1 · dz is dz exactly).
            let row = &mut ws.dw_row[..m_pad];
            combine(std::iter::repeat_n(1.0, n), dz, m_pad, row);
            update.apply(b, &mut params[b..b + m], &row[..m]);
            std::mem::swap(&mut ws.grad, &mut ws.next);
        }
    }
}

/// The fused epoch's buffers, every row padded to whole [`LANE`]s with zeros.
struct Workspace {
    /// One batch's inputs (`batch × padded(inputs)`).
    input: Vec<f32>,
    /// Every layer's output for one batch, back to back.
    outputs: Vec<f32>,
    /// Where each layer's output starts in `outputs`.
    starts: Vec<usize>,
    /// Each layer's weight (`out × padded(in)`), for the input gradient.
    weights: Vec<Vec<f32>>,
    /// Each layer's weight transposed (`in × padded(out)`), for the forward pass.
    transposed: Vec<Vec<f32>>,
    /// The gradient flowing into the layer being differentiated, and the one it
    /// passes on (each `batch × padded(widest)`).
    grad: Vec<f32>,
    next: Vec<f32>,
    /// The gated gradient of the layer being differentiated.
    dz: Vec<f32>,
    /// One row of a weight's gradient, or the bias gradient.
    dw_row: Vec<f32>,
    /// The predictions and their gradient, contiguous (`batch × outputs`).
    pred: Vec<f32>,
    pred_grad: Vec<f32>,
}

impl Workspace {
    fn new(spec: &MlpSpec, params: &[f32], batch: usize) -> Self {
        let layers = spec.layers();
        let starts: Vec<usize> = layers
            .iter()
            .scan(0, |at, l| {
                let s = *at;
                *at += batch * padded(l.outputs);
                Some(s)
            })
            .collect();
        let total: usize = layers.iter().map(|l| batch * padded(l.outputs)).sum();
        let mut weights = Vec::new();
        let mut transposed = Vec::new();
        for (l, &(w, _)) in layers.iter().zip(&spec.offsets()) {
            let (k, m) = (l.inputs, l.outputs);
            let (k_pad, m_pad) = (padded(k), padded(m));
            let mut plain = vec![0.0f32; m * k_pad];
            let mut trans = vec![0.0f32; k * m_pad];
            for c in 0..m {
                for i in 0..k {
                    plain[c * k_pad + i] = params[w + c * k + i];
                    trans[i * m_pad + c] = params[w + c * k + i];
                }
            }
            weights.push(plain);
            transposed.push(trans);
        }
        let widest = batch * padded(spec.max_width());
        Workspace {
            input: vec![0.0; batch * padded(spec.inputs())],
            outputs: vec![0.0; total],
            starts,
            weights,
            transposed,
            grad: vec![0.0; widest],
            next: vec![0.0; widest],
            dz: vec![0.0; widest],
            dw_row: vec![0.0; padded(spec.max_width())],
            pred: vec![0.0; batch * spec.outputs()],
            pred_grad: vec![0.0; batch * spec.outputs()],
        }
    }
}
