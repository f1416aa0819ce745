//! Launches of `shaders/activation.wgsl`: every activation, forward and backward, as
//! one kernel each keyed by the activation's code.

use super::{Gpu, Grid};
use crate::backend::gpu::kernels::Kernel;
use crate::backend::{Act, DeviceTensor};
use crate::error::Result;

/// Runs the elementwise `kernel` for `act` over `out.len()` elements.
fn apply(
    gpu: &Gpu,
    kernel: Kernel,
    act: Act,
    inputs: &[&DeviceTensor<Gpu>],
    out: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = out.len();
    gpu.launch(
        kernel,
        inputs,
        out,
        [count, act.code() as usize, 0, 0],
        [act.slope(), 0.0, 0.0, 0.0],
        Grid::Flat(count),
    )
}

/// `y = act(x)`.
pub(super) fn forward(
    gpu: &Gpu,
    act: Act,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    apply(gpu, Kernel::ActivationForward, act, &[x], y)
}

/// `dx = dy ⊙ act'` from the saved input or output.
pub(super) fn backward(
    gpu: &Gpu,
    act: Act,
    saved: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    apply(gpu, Kernel::ActivationBackward, act, &[saved, dy], dx)
}
