//! Launches of `shaders/cross_entropy.wgsl`: the fused softmax cross-entropy loss and
//! its gradient.

use super::{Gpu, Grid, Kernel};
use crate::backend::{DeviceTensor, Reduction};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// The reduced loss into the single element `out`, in one workgroup.
pub(super) fn loss(gpu: &Gpu, logits: &T, labels: &T, reduction: Reduction, out: &T) -> Result<()> {
    let [n, c] = logits.shape();
    let scale = reduction.loss_scale(n);
    gpu.launch(
        Kernel::CrossEntropyLoss,
        &[logits, labels],
        out,
        [n, c, 0, 0],
        [scale, 0.0, 0.0, 0.0],
        Grid::Single,
    )
}

/// The gradient with respect to the logits, one invocation per row.
pub(super) fn grad(
    gpu: &Gpu,
    logits: &T,
    labels: &T,
    reduction: Reduction,
    grad: &T,
) -> Result<()> {
    let [n, c] = logits.shape();
    let scale = reduction.loss_scale(n);
    gpu.launch(
        Kernel::CrossEntropyGrad,
        &[logits, labels],
        grad,
        [n, c, 0, 0],
        [scale, 0.0, 0.0, 0.0],
        Grid::Flat(n),
    )
}
