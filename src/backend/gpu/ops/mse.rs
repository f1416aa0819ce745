//! Launches of `shaders/mse.wgsl`: the MSE loss value and its gradient.

use crate::backend::gpu::kernels::params::MseParams;
use crate::backend::gpu::kernels::table::{Kernel, FLAT};
use crate::backend::gpu::runtime::context::{to_u32, Gpu, LOOP_BUDGET};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{DeviceTensor, Reduction};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// Elements one launch of the loss reduces: each of its 256 invocations loops over at
/// most [`LOOP_BUDGET`] of them.
const CHUNK: usize = FLAT * LOOP_BUDGET;

/// The reduced loss into the single element `out`, in one workgroup per chunk of
/// [`CHUNK`] elements, the chunks after the first adding to `out`.
pub(crate) fn loss(gpu: &Gpu, pred: &T, target: &T, reduction: Reduction, out: &T) -> Result<()> {
    let count = pred.len();
    let scale = reduction.loss_scale(count);
    let (pred, target) = (pred.reshape(count, 1)?, target.reshape(count, 1)?);
    let mut first = 0;
    loop {
        let len = CHUNK.min(count - first);
        gpu.launch(
            Kernel::MseLoss,
            &[
                &pred.slice_rows(first, len)?,
                &target.slice_rows(first, len)?,
            ],
            out,
            MseParams {
                count: to_u32("elements", len)?,
                accumulate: u32::from(first > 0),
                loss_scale: scale,
                ..Default::default()
            },
            Grid::Single,
        )?;
        first += len;
        if first >= count {
            return Ok(());
        }
    }
}

/// The gradient with respect to `pred`, one invocation per element.
pub(crate) fn grad(gpu: &Gpu, pred: &T, target: &T, reduction: Reduction, grad: &T) -> Result<()> {
    let count = pred.len();
    let factor = reduction.mse_grad_scale(count);
    gpu.launch(
        Kernel::MseGrad,
        &[pred, target],
        grad,
        MseParams {
            count: to_u32("elements", count)?,
            grad_scale: factor,
            ..Default::default()
        },
        Grid::Flat(count),
    )
}
