//! Launches of `shaders/update.wgsl`: the parameter updates of SGD, SGD with momentum
//! and Adam.

use crate::backend::gpu::kernels::params::UpdateParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::runtime::context::{to_u32, Gpu};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{AdamStep, DeviceTensor, MomentumStep, StateLayout};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// One launch of `kernel` over the `param.len()` elements of a parameter, with the
/// update's hyperparameters in `hyper` (its count set here).
fn over(
    gpu: &Gpu,
    kernel: Kernel,
    param: &T,
    inputs: &[&T],
    out: &T,
    hyper: UpdateParams,
) -> Result<()> {
    let count = param.len();
    let params = UpdateParams {
        count: to_u32("elements", count)?,
        ..hyper
    };
    gpu.launch(kernel, inputs, out, params, Grid::Flat(count))
}

/// `param -= lr · grad` in place.
pub(crate) fn sgd(gpu: &Gpu, param: &T, grad: &T, lr: f32) -> Result<()> {
    let hyper = UpdateParams {
        lr,
        ..Default::default()
    };
    over(gpu, Kernel::SgdStep, param, &[grad], param, hyper)
}

/// SGD with momentum: the velocity, then the parameter.
pub(crate) fn momentum(
    gpu: &Gpu,
    param: &T,
    grad: &T,
    velocity: &T,
    h: &MomentumStep,
) -> Result<()> {
    let hyper = UpdateParams {
        lr: h.lr,
        momentum: h.momentum,
        weight_decay: h.weight_decay,
        nesterov: u32::from(h.nesterov),
        ..Default::default()
    };
    over(
        gpu,
        Kernel::MomentumVelocity,
        param,
        &[grad, param],
        velocity,
        hyper,
    )?;
    over(
        gpu,
        Kernel::MomentumUpdate,
        param,
        &[grad, velocity],
        param,
        hyper,
    )
}

/// Adam: the moments and step count, then the parameter; the state laid out as
/// [`StateLayout::ADAM`] says.
pub(crate) fn adam(gpu: &Gpu, param: &T, grad: &T, state: &T, h: &AdamStep) -> Result<()> {
    let n = param.len();
    let layout = StateLayout::ADAM;
    let hyper = UpdateParams {
        second_moments: to_u32("state offset", layout.row(1, n).start)?,
        corrections: to_u32("state offset", layout.shared_values(n).start)?,
        lr: h.lr,
        weight_decay: h.weight_decay,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        ..Default::default()
    };
    over(
        gpu,
        Kernel::AdamMoments,
        param,
        &[grad, param],
        state,
        hyper,
    )?;
    over(gpu, Kernel::AdamUpdate, param, &[state], param, hyper)
}
