//! Launches of `shaders/image.wgsl`: the 2-D convolution and its gradients, max and
//! average pooling and nearest-neighbour upsampling, one invocation per element written, with the
//! geometry in [`ImageParams`]: the convolution's direct lowering (see
//! [`convolution`](super::convolution)).

use crate::backend::gpu::kernels::params::ImageParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::runtime::context::{to_u32, Gpu};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{Conv2dGeometry, DeviceTensor, GradMode, Pool2dGeometry, UpsampleGeometry};
use crate::error::{Error, Result};

/// The parameter block of a sliding window over an `(N, C, H, W)` batch.
#[allow(clippy::too_many_arguments)]
fn window_params(
    batch: usize,
    (channels, out_channels): (usize, usize),
    input: (usize, usize),
    output: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Result<ImageParams> {
    let u = |what: &str, v: usize| to_u32(what, v);
    Ok(ImageParams {
        batch: u("batch", batch)?,
        channels: u("channels", channels)?,
        out_channels: u("channels", out_channels)?,
        in_h: u("height", input.0)?,
        in_w: u("width", input.1)?,
        out_h: u("height", output.0)?,
        out_w: u("width", output.1)?,
        kernel_h: u("kernel", kernel.0)?,
        kernel_w: u("kernel", kernel.1)?,
        stride_h: u("stride", stride.0)?,
        stride_w: u("stride", stride.1)?,
        pad_h: u("padding", padding.0)?,
        pad_w: u("padding", padding.1)?,
        dil_h: u("dilation", dilation.0)?,
        dil_w: u("dilation", dilation.1)?,
        ..Default::default()
    })
}

/// The parameter block of convolution `g`, writing `count` elements.
pub(crate) fn conv_params(
    g: &Conv2dGeometry,
    count: usize,
    accumulate: bool,
) -> Result<ImageParams> {
    let p = window_params(
        g.batch(),
        (g.in_channels(), g.out_channels()),
        g.input_size(),
        g.output_size(),
        g.kernel(),
        g.stride(),
        g.padding(),
        g.dilation(),
    )?;
    Ok(ImageParams {
        count: to_u32("elements", count)?,
        accumulate: accumulate as u32,
        ..p
    })
}

/// The parameter block of pool `g` (max or average), writing `count` elements.
fn pool_params(g: &Pool2dGeometry, count: usize) -> Result<ImageParams> {
    let p = window_params(
        g.batch(),
        (g.channels(), g.channels()),
        g.input_size(),
        g.output_size(),
        g.kernel(),
        g.stride(),
        g.padding(),
        (1, 1),
    )?;
    Ok(ImageParams {
        count: to_u32("elements", count)?,
        ..p
    })
}

/// The parameter block of upsampling `g`, writing `count` elements.
fn upsample_params(g: &UpsampleGeometry, count: usize) -> Result<ImageParams> {
    let s = g.scale();
    let p = window_params(
        g.batch(),
        (g.channels(), g.channels()),
        g.input_size(),
        g.output_size(),
        (s, s),
        (s, s),
        (0, 0),
        (1, 1),
    )?;
    Ok(ImageParams {
        count: to_u32("elements", count)?,
        scale: to_u32("scale", s)?,
        ..p
    })
}

/// The loop iterations of one invocation of the direct kernels: the forward's (over
/// the input channels and taps), the input gradient's (over the output channels and
/// taps) and the weight gradient's per image (over the output rows and columns).
pub(crate) fn direct_loops(g: &Conv2dGeometry) -> [usize; 3] {
    let (kh, kw) = g.kernel();
    let (oh, ow) = g.output_size();
    let taps = 1 + kh * (1 + kw);
    [
        g.in_channels() * taps,
        g.out_channels() * taps,
        1 + oh * (1 + ow),
    ]
}

/// `y = conv(x, w) + b` on the direct kernel.
pub(crate) fn direct_forward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &DeviceTensor<Gpu>,
    w: &DeviceTensor<Gpu>,
    b: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    within_budget(gpu, "conv2d_forward", direct_loops(g)[0])?;
    let count = g.output_len();
    let params = conv_params(g, count, false)?;
    gpu.launch(
        Kernel::Conv2dForward,
        &[x, w, b],
        y,
        params,
        Grid::Flat(count),
    )
}

/// The convolution's gradients on the direct kernels, the weight and bias gradients
/// over chunks of the batch where the adapter limits an invocation's loops.
#[allow(clippy::too_many_arguments)]
pub(crate) fn direct_backward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &DeviceTensor<Gpu>,
    w: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: Option<&DeviceTensor<Gpu>>,
    dw: &DeviceTensor<Gpu>,
    db: &DeviceTensor<Gpu>,
    mode: GradMode,
) -> Result<()> {
    // Loop iterations of one invocation: the input gradient's over o, ky, kx; the
    // weight and bias gradients' over the images, rows and columns (per image).
    let [_, input_loops, per_image] = direct_loops(g);
    within_budget(gpu, "conv2d_backward (input gradient)", input_loops)?;
    within_budget(gpu, "conv2d_backward (weight gradient)", per_image)?;
    if let Some(dx) = dx {
        let count = g.input_len();
        let params = conv_params(g, count, false)?;
        let grid = Grid::Flat(count);
        gpu.launch(Kernel::Conv2dBackwardInput, &[dy, w], dx, params, grid)?;
    }
    // The images in chunks that keep each invocation within the loop budget, the
    // chunks after the first adding to the gradients.
    let n = g.batch();
    let chunk = gpu.loop_budget().map_or(n, |b| (b / per_image).max(1));
    let mut accumulate = mode == GradMode::Accumulate;
    for first in (0..n).step_by(chunk) {
        let rows = chunk.min(n - first);
        let part = g.with_batch("conv2d_backward", rows)?;
        let (x, dy) = (x.slice_rows(first, rows)?, dy.slice_rows(first, rows)?);
        let count = part.weight_len();
        let params = conv_params(&part, count, accumulate)?;
        gpu.launch(
            Kernel::Conv2dBackwardWeight,
            &[&x, &dy],
            dw,
            params,
            Grid::Flat(count),
        )?;
        let count = part.out_channels();
        let params = conv_params(&part, count, accumulate)?;
        gpu.launch(
            Kernel::Conv2dBackwardBias,
            &[&dy],
            db,
            params,
            Grid::Flat(count),
        )?;
        accumulate = true;
    }
    Ok(())
}

/// Fails, naming `op` and the numbers, where one invocation would loop `iterations`
/// times, over the adapter's [`Gpu::loop_budget`] (llvmpipe would cut it short).
fn within_budget(gpu: &Gpu, op: &str, iterations: usize) -> Result<()> {
    match gpu.loop_budget() {
        Some(budget) if iterations > budget => Err(Error::InvalidArgument(format!(
            "{op}: one invocation would loop {iterations} times, over this adapter's budget \
             of {budget} (llvmpipe cuts invocations short); use fewer channels or a smaller \
             image, or the CPU backend"
        ))),
        _ => Ok(()),
    }
}

/// Launches the pool kernel `kernel` of geometry `g`, one invocation for each of
/// `count` elements written.
fn launch_pool(
    gpu: &Gpu,
    kernel: Kernel,
    g: &Pool2dGeometry,
    inputs: &[&DeviceTensor<Gpu>],
    out: &DeviceTensor<Gpu>,
    count: usize,
) -> Result<()> {
    let params = pool_params(g, count)?;
    gpu.launch(kernel, inputs, out, params, Grid::Flat(count))
}

/// `y = max_pool(x)`.
pub(crate) fn max_pool2d_forward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    let kernel = Kernel::MaxPool2dForward;
    launch_pool(gpu, kernel, g, &[x], y, g.output_len())
}

/// The max pool's input gradient.
pub(crate) fn max_pool2d_backward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    x: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    let kernel = Kernel::MaxPool2dBackward;
    launch_pool(gpu, kernel, g, &[x, dy], dx, g.input_len())
}

/// `y = avg_pool(x)`.
pub(crate) fn avg_pool2d_forward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    let kernel = Kernel::AvgPool2dForward;
    launch_pool(gpu, kernel, g, &[x], y, g.output_len())
}

/// The average pool's input gradient.
pub(crate) fn avg_pool2d_backward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    let kernel = Kernel::AvgPool2dBackward;
    launch_pool(gpu, kernel, g, &[dy], dx, g.input_len())
}

/// `y = upsample_nearest(x)`.
pub(crate) fn upsample_nearest_forward(
    gpu: &Gpu,
    g: &UpsampleGeometry,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = g.output_len();
    let params = upsample_params(g, count)?;
    gpu.launch(
        Kernel::UpsampleNearestForward,
        &[x],
        y,
        params,
        Grid::Flat(count),
    )
}

/// The upsampling's input gradient.
pub(crate) fn upsample_nearest_backward(
    gpu: &Gpu,
    g: &UpsampleGeometry,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = g.input_len();
    let params = upsample_params(g, count)?;
    gpu.launch(
        Kernel::UpsampleNearestBackward,
        &[dy],
        dx,
        params,
        Grid::Flat(count),
    )
}
