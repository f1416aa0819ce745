//! Launches of `shaders/sgd.wgsl`: the SGD parameter update.

use super::{Gpu, Grid, Kernel};
use crate::backend::DeviceTensor;
use crate::error::Result;

/// `param -= lr · grad` in place.
pub(super) fn step(
    gpu: &Gpu,
    param: &DeviceTensor<Gpu>,
    grad: &DeviceTensor<Gpu>,
    lr: f32,
) -> Result<()> {
    let count = param.len();
    gpu.launch(
        Kernel::SgdStep,
        &[grad],
        param,
        [count, 0, 0, 0],
        lr,
        Grid::Flat(count),
    )
}
