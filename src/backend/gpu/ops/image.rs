//! Launches of `shaders/image.wgsl`: the 2-D convolution and its gradients, max pooling
//! and nearest-neighbour upsampling, one invocation per element written, with the
//! geometry in [`ImageParams`]; and the choice of a convolution's lowering: these
//! direct kernels, or products over the unfolded input ([`unfolded_conv`]).

use super::unfolded_conv;
use crate::backend::gpu::kernels::params::ImageParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::runtime::context::{to_u32, Gpu};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{
    check, Conv2dGeometry, DeviceTensor, GradMode, Pool2dGeometry, UpsampleGeometry,
};
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

/// The parameter block of max pool `g`, writing `count` elements.
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

/// How a convolution runs on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvLowering {
    /// The direct kernels of `shaders/image.wgsl`: one invocation per element written,
    /// looping over the taps (or, for the weight gradient, over the pixels).
    Direct,
    /// Matrix products over the unfolded input (im2col), on the kernels the products'
    /// tuner chooses, with the layout changes around them.
    Unfolded,
}

/// The forward multiply-adds from which a convolution runs as products: the products'
/// tuner measures from 2¹⁸ (below, every product is launch-bound), and the unfolding's
/// extra passes cost more than they save on smaller ones.
pub const UNFOLD_FROM: usize = 1 << 18;

/// The fewest output channels with which a convolution runs as products: they are the
/// products' output columns, and with fewer the product kernels' tiles are mostly
/// empty while the unfolded rows still cost their memory traffic (on lavapipe, LeNet's
/// 6-channel first layer and the denoiser's 1-channel last one ran 1.2–2.4× slower
/// unfolded, every layer of 16 or 32 channels 1.1–12× faster; docs/performance.md).
pub const UNFOLD_CHANNELS: usize = 16;

impl ConvLowering {
    /// The lowering the convolution ops take for `g` on `gpu`: products over the
    /// unfolded input where the forward does at least [`UNFOLD_FROM`] multiply-adds
    /// into at least [`UNFOLD_CHANNELS`] output channels, or where the direct kernels
    /// would loop over the adapter's budget, provided one image's unfolded rows fit a
    /// scratch buffer; the direct kernels otherwise.
    ///
    /// `MINIDL_CONV=direct` or `MINIDL_CONV=unfolded` ([`CONV_ENV`], read once) takes
    /// that lowering wherever it can run, to compare the two.
    pub fn for_geometry(gpu: &Gpu, g: &Conv2dGeometry) -> ConvLowering {
        if !unfolded_conv::fits(gpu, g) {
            return ConvLowering::Direct;
        }
        if let Some(forced) = forced_lowering() {
            return forced;
        }
        let work = g.output_len().saturating_mul(g.im2col_depth());
        let wide = g.out_channels() >= UNFOLD_CHANNELS;
        let over_budget = gpu
            .loop_budget()
            .is_some_and(|budget| direct_loops(g).into_iter().any(|l| l > budget));
        if (work >= UNFOLD_FROM && wide) || over_budget {
            ConvLowering::Unfolded
        } else {
            ConvLowering::Direct
        }
    }
}

/// The environment variable that forces a convolution lowering: `direct` or `unfolded`.
pub const CONV_ENV: &str = "MINIDL_CONV";

/// The lowering [`CONV_ENV`] forces, read once per process.
fn forced_lowering() -> Option<ConvLowering> {
    static FORCED: std::sync::OnceLock<Option<ConvLowering>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var(CONV_ENV).as_deref() {
        Ok("direct") => Some(ConvLowering::Direct),
        Ok("unfolded") => Some(ConvLowering::Unfolded),
        _ => None,
    })
}

/// The loop iterations of one invocation of the direct kernels: the forward's (over
/// the input channels and taps), the input gradient's (over the output channels and
/// taps) and the weight gradient's per image (over the output rows and columns).
fn direct_loops(g: &Conv2dGeometry) -> [usize; 3] {
    let (kh, kw) = g.kernel();
    let (oh, ow) = g.output_size();
    let taps = 1 + kh * (1 + kw);
    [
        g.in_channels() * taps,
        g.out_channels() * taps,
        1 + oh * (1 + ow),
    ]
}

/// `y = conv(x, w) + b` with the lowering [`ConvLowering::for_geometry`] chooses.
pub(crate) fn conv2d_forward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &DeviceTensor<Gpu>,
    w: &DeviceTensor<Gpu>,
    b: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    conv2d_forward_with(gpu, ConvLowering::for_geometry(gpu, g), g, x, w, b, y)
}

/// `y = conv(x, w) + b` with `lowering`.
pub(crate) fn conv2d_forward_with(
    gpu: &Gpu,
    lowering: ConvLowering,
    g: &Conv2dGeometry,
    x: &DeviceTensor<Gpu>,
    w: &DeviceTensor<Gpu>,
    b: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    match lowering {
        ConvLowering::Unfolded => unfolded_conv::forward(gpu, g, x, w, b, y),
        ConvLowering::Direct => direct_forward(gpu, g, x, w, b, y),
    }
}

/// `y = conv(x, w) + b` on the direct kernel.
fn direct_forward(
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

/// The convolution's input gradient (when `dx` is given), weight and bias gradients,
/// with the lowering [`ConvLowering::for_geometry`] chooses.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
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
    let lowering = ConvLowering::for_geometry(gpu, g);
    conv2d_backward_with(gpu, lowering, g, x, w, dy, dx, dw, db, mode)
}

/// The convolution's gradients (see [`conv2d_backward`]) with `lowering`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward_with(
    gpu: &Gpu,
    lowering: ConvLowering,
    g: &Conv2dGeometry,
    x: &DeviceTensor<Gpu>,
    w: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: Option<&DeviceTensor<Gpu>>,
    dw: &DeviceTensor<Gpu>,
    db: &DeviceTensor<Gpu>,
    mode: GradMode,
) -> Result<()> {
    match lowering {
        ConvLowering::Unfolded => unfolded_conv::backward(gpu, g, x, w, dy, dx, dw, db, mode),
        ConvLowering::Direct => direct_backward(gpu, g, x, w, dy, dx, dw, db, mode),
    }
}

/// The convolution's gradients on the direct kernels, the weight and bias gradients
/// over chunks of the batch where the adapter limits an invocation's loops.
#[allow(clippy::too_many_arguments)]
fn direct_backward(
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

/// `y = max_pool(x)`.
pub(crate) fn max_pool2d_forward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    x: &DeviceTensor<Gpu>,
    y: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = g.output_len();
    let params = pool_params(g, count)?;
    gpu.launch(Kernel::MaxPool2dForward, &[x], y, params, Grid::Flat(count))
}

/// The max pool's input gradient.
pub(crate) fn max_pool2d_backward(
    gpu: &Gpu,
    g: &Pool2dGeometry,
    x: &DeviceTensor<Gpu>,
    dy: &DeviceTensor<Gpu>,
    dx: &DeviceTensor<Gpu>,
) -> Result<()> {
    let count = g.input_len();
    let params = pool_params(g, count)?;
    gpu.launch(
        Kernel::MaxPool2dBackward,
        &[x, dy],
        dx,
        params,
        Grid::Flat(count),
    )
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

impl Gpu {
    /// [`Ops::conv2d_forward`](crate::backend::Ops::conv2d_forward) with a chosen
    /// lowering (for benchmarks and tests; the op takes
    /// [`ConvLowering::for_geometry`]), after the same checks as the op.
    pub fn conv2d_forward_with(
        &self,
        lowering: ConvLowering,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Gpu>,
        w: &DeviceTensor<Gpu>,
        b: &DeviceTensor<Gpu>,
        y: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        let all = [Some(x), Some(w), Some(b), Some(y)];
        check::same_device(self, "conv2d_forward", &all)?;
        check::conv2d_forward(g, x, w, b, y)?;
        conv2d_forward_with(self, lowering, g, x, w, b, y)
    }

    /// [`Ops::conv2d_backward`](crate::backend::Ops::conv2d_backward) with a chosen
    /// lowering (see [`Gpu::conv2d_forward_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_with(
        &self,
        lowering: ConvLowering,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Gpu>,
        w: &DeviceTensor<Gpu>,
        dy: &DeviceTensor<Gpu>,
        dx: Option<&DeviceTensor<Gpu>>,
        dw: &DeviceTensor<Gpu>,
        db: &DeviceTensor<Gpu>,
        mode: GradMode,
    ) -> Result<()> {
        let all = [Some(x), Some(w), Some(dy), dx, Some(dw), Some(db)];
        check::same_device(self, "conv2d_backward", &all)?;
        check::conv2d_backward(g, x, w, dy, dx, dw, db)?;
        conv2d_backward_with(self, lowering, g, x, w, dy, dx, dw, db, mode)
    }
}
