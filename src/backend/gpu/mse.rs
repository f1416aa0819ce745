//! Launches of `shaders/mse.wgsl`: the MSE loss value and its gradient.

use super::{Gpu, Grid, Kernel};
use crate::backend::{DeviceTensor, Reduction};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// The reduced loss into the single element `out`, in one workgroup.
pub(super) fn loss(gpu: &Gpu, pred: &T, target: &T, reduction: Reduction, out: &T) -> Result<()> {
    let count = pred.len();
    let scale = reduction.loss_scale(count);
    gpu.launch(
        Kernel::MseLoss,
        &[pred, target],
        out,
        [count, 0, 0, 0],
        [scale, 0.0, 0.0, 0.0],
        Grid::Single,
    )
}

/// The gradient with respect to `pred`, one invocation per element.
pub(super) fn grad(gpu: &Gpu, pred: &T, target: &T, reduction: Reduction, grad: &T) -> Result<()> {
    let count = pred.len();
    let factor = reduction.grad_scale(count);
    gpu.launch(
        Kernel::MseGrad,
        &[pred, target],
        grad,
        [count, 0, 0, 0],
        [factor, 0.0, 0.0, 0.0],
        Grid::Flat(count),
    )
}
