//! Launches of `shaders/activation.wgsl`: ReLU and Tanh, forward and backward.

use super::{Gpu, Grid, Kernel};
use crate::backend::DeviceTensor;
use crate::error::Result;

/// Runs the elementwise activation `kernel` over `out.len()` elements.
pub(super) fn apply(
    gpu: &Gpu,
    kernel: Kernel,
    inputs: &[&DeviceTensor<Gpu>],
    out: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = out.len();
    gpu.launch(
        kernel,
        inputs,
        out,
        [count, 0, 0, 0],
        0.0,
        Grid::Flat(count),
    )
}
