//! Launches of `shaders/activation.wgsl`: ReLU, Tanh, Sigmoid and LeakyReLU, forward
//! and backward.

use super::{Gpu, Grid, Kernel};
use crate::backend::DeviceTensor;
use crate::error::Result;

/// Runs the elementwise activation `kernel` over `out.len()` elements, with `scalar`
/// (LeakyReLU's slope; unused by the others) in its uniform block.
pub(super) fn apply(
    gpu: &Gpu,
    kernel: Kernel,
    inputs: &[&DeviceTensor<Gpu>],
    out: &DeviceTensor<Gpu>,
    scalar: f32,
) -> Result<()> {
    let count = out.len();
    gpu.launch(
        kernel,
        inputs,
        out,
        [count, 0, 0, 0],
        [scalar, 0.0, 0.0, 0.0],
        Grid::Flat(count),
    )
}
