//! Launches of `shaders/activation.wgsl`: every activation, forward and backward, as
//! one kernel each keyed by the activation's code.

use crate::backend::gpu::kernels::params::ActivationParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::runtime::context::{to_u32, Gpu};
use crate::backend::gpu::runtime::launch::Grid;
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
        ActivationParams {
            count: to_u32("elements", count)?,
            act: act.code(),
            slope: act.slope(),
            ..Default::default()
        },
        Grid::Flat(count),
    )
}

/// `y = act(x)`.
pub(crate) fn forward(
    gpu: &Gpu,
    act: Act,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    apply(gpu, Kernel::ActivationForward, act, &[x], y)
}

/// `dx = dy ⊙ act'` from the saved input or output.
pub(crate) fn backward(
    gpu: &Gpu,
    act: Act,
    saved: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    apply(gpu, Kernel::ActivationBackward, act, &[saved, dy], dx)
}
