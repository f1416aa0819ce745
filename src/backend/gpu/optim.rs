//! Launches of `shaders/optim.wgsl`: the parameter updates of SGD, SGD with momentum
//! and Adam.

use super::kernels::Kernel;
use super::{Gpu, Grid};
use crate::backend::{AdamStep, DeviceTensor, MomentumStep};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// One launch of `kernel` over the `param.len()` elements of a parameter.
fn over(gpu: &Gpu, kernel: Kernel, param: &T, inputs: &[&T], out: &T, s: [f32; 4]) -> Result<()> {
    let count = param.len();
    gpu.launch(kernel, inputs, out, [count, 0, 0, 0], s, Grid::Flat(count))
}

/// `param -= lr · grad` in place.
pub(super) fn sgd(gpu: &Gpu, param: &T, grad: &T, lr: f32) -> Result<()> {
    over(
        gpu,
        Kernel::SgdStep,
        param,
        &[grad],
        param,
        [lr, 0.0, 0.0, 0.0],
    )
}

/// SGD with momentum: the velocity, then the parameter.
pub(super) fn momentum(
    gpu: &Gpu,
    param: &T,
    grad: &T,
    velocity: &T,
    h: &MomentumStep,
) -> Result<()> {
    let first = [h.momentum, h.weight_decay, 0.0, 0.0];
    over(
        gpu,
        Kernel::MomentumVelocity,
        param,
        &[grad, param],
        velocity,
        first,
    )?;
    let nesterov = if h.nesterov { 1.0 } else { 0.0 };
    let second = [h.lr, h.momentum, h.weight_decay, nesterov];
    over(
        gpu,
        Kernel::MomentumUpdate,
        param,
        &[grad, velocity],
        param,
        second,
    )
}

/// Adam: the moments and step count, then the parameter.
pub(super) fn adam(gpu: &Gpu, param: &T, grad: &T, state: &T, h: &AdamStep) -> Result<()> {
    let first = [h.beta1, h.beta2, h.weight_decay, 0.0];
    over(
        gpu,
        Kernel::AdamMoments,
        param,
        &[grad, param],
        state,
        first,
    )?;
    let second = [h.lr, h.eps, 0.0, 0.0];
    over(gpu, Kernel::AdamUpdate, param, &[state], param, second)
}
