//! The GPU's convolution: its two lowerings, the direct kernels of
//! [`image`](super::image) and the products over the unfolded input of
//! [`unfolded_conv`](super::unfolded_conv), the rule that chooses between them, and
//! the public entry points that run a chosen one.

use super::image::{direct_backward, direct_forward, direct_loops};
use super::unfolded_conv;
use crate::backend::gpu::runtime::context::Gpu;
use crate::backend::{check, Conv2dGeometry, DeviceTensor, GradMode};
use crate::error::Result;

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
