//! The GPU's convolution: the runs of its two lowerings ([`ConvLowering`]: the direct
//! kernels of [`image`](super::image), the products over the unfolded input of
//! [`unfolded_conv`]), the choice between them for each pass and geometry (measured on
//! the device and kept in the tuning cache file, as the products' kernels are; a fixed
//! rule where measuring is off), and the entry points that run the chosen lowering or
//! a given one.

use std::collections::HashMap;
use std::sync::Mutex;

use super::conv_lowering::{ConvLowering, ConvPass};
use super::image::{direct_backward, direct_forward, direct_loops};
use super::unfolded_conv;
use crate::backend::gpu::products::tuner::{tuning_off, HOPELESS};
use crate::backend::gpu::runtime::context::{lock, Gpu};
use crate::backend::{check, Backend, Conv2dGeometry, DeviceTensor, GradMode};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// The forward multiply-adds from which a convolution's lowering is measured (below,
/// the direct kernels run without measuring: the products' tuner measures from 2¹⁸,
/// below which every product is launch-bound, and the unfolding's extra passes cost
/// more than they save on smaller ones).
pub const UNFOLD_FROM: usize = 1 << 18;

/// The fewest output channels with which the fixed rule ([`ConvLowering::fixed_rule`])
/// runs a convolution as products: they are the products' output columns, and with
/// fewer the product kernels' tiles are mostly empty while the unfolded rows still cost
/// their memory traffic (on lavapipe, LeNet's 6-channel first layer and the denoiser's
/// 1-channel last one ran 1.2–2.4× slower unfolded, every layer of 16 or 32 channels
/// 1.1–12× faster; docs/performance.md).
pub const UNFOLD_CHANNELS: usize = 16;

/// The environment variable that forces a convolution lowering: `direct` or `unfolded`.
pub const CONV_ENV: &str = "MINIDL_CONV";

impl ConvLowering {
    /// The fixed rule, which chooses where measuring is off (`MINIDL_TUNE=off`) and
    /// orders the measurements: products over the unfolded input where the forward does
    /// at least [`UNFOLD_FROM`] multiply-adds into at least [`UNFOLD_CHANNELS`] output
    /// channels, the direct kernels otherwise.
    pub fn fixed_rule(g: &Conv2dGeometry) -> ConvLowering {
        let work = g.output_len().saturating_mul(g.im2col_depth());
        if work >= UNFOLD_FROM && g.out_channels() >= UNFOLD_CHANNELS {
            ConvLowering::Unfolded
        } else {
            ConvLowering::Direct
        }
    }

    /// Records `y = conv(x, w) + b` in this lowering.
    pub(crate) fn forward(
        self,
        gpu: &Gpu,
        g: &Conv2dGeometry,
        x: &T,
        w: &T,
        b: &T,
        y: &T,
    ) -> Result<()> {
        match self {
            ConvLowering::Unfolded => unfolded_conv::forward(gpu, g, x, w, b, y),
            ConvLowering::Direct => direct_forward(gpu, g, x, w, b, y),
        }
    }

    /// Records the convolution's gradients in this lowering: the input gradient where
    /// `dx` is given, the weight and bias gradients as `mode` says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward(
        self,
        gpu: &Gpu,
        g: &Conv2dGeometry,
        x: &T,
        w: &T,
        dy: &T,
        dx: Option<&T>,
        dw: &T,
        db: &T,
        mode: GradMode,
    ) -> Result<()> {
        match self {
            ConvLowering::Unfolded => unfolded_conv::backward(gpu, g, x, w, dy, dx, dw, db, mode),
            ConvLowering::Direct => direct_backward(gpu, g, x, w, dy, dx, dw, db, mode),
        }
    }
}

/// The lowering [`CONV_ENV`] forces, read once per process.
fn forced_by_env() -> Option<ConvLowering> {
    static FORCED: std::sync::OnceLock<Option<ConvLowering>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| ConvLowering::parse(&std::env::var(CONV_ENV).ok()?))
}

/// Whether the direct kernels of `pass` keep within `gpu`'s loop budget for one image
/// of `g` (beyond it, they refuse the shape).
fn direct_within_budget(gpu: &Gpu, g: &Conv2dGeometry, pass: ConvPass) -> bool {
    let [forward, input_grad, weight_grad] = direct_loops(g);
    let loops = match pass {
        ConvPass::Forward => forward,
        ConvPass::Backward { input_grad: true } => input_grad.max(weight_grad),
        ConvPass::Backward { input_grad: false } => weight_grad,
    };
    gpu.loop_budget().is_none_or(|budget| loops <= budget)
}

/// The most images a lowering is measured on: a larger batch (a prediction over a
/// whole test set, say) takes the choice measured on this many, as the products' tuner
/// measures slices of large products, and costs no more to measure.
pub const MEASURED_IMAGES: usize = 64;

/// What a measured lowering is kept under: the pass and the geometry, its batch rounded
/// up to a power of two (as the products' shape classes) and at most
/// [`MEASURED_IMAGES`], so that a run's last, partial batch takes its full batches'
/// choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConvClass {
    pass: ConvPass,
    geometry: Conv2dGeometry,
}

impl ConvClass {
    /// The class of `pass` over `g`.
    fn of(g: &Conv2dGeometry, pass: ConvPass) -> Result<ConvClass> {
        let batch = g.batch().next_power_of_two().min(MEASURED_IMAGES);
        let geometry = g.with_batch("conv2d", batch)?;
        Ok(ConvClass { pass, geometry })
    }

    /// The key in the tuning cache file: `conv2d`, the pass, then batch × channels ×
    /// height × width, output channels, kernel, stride, padding and dilation.
    fn key(&self) -> String {
        let g = &self.geometry;
        let (h, w) = g.input_size();
        let pair = |(a, b): (usize, usize)| format!("{a}x{b}");
        format!(
            "conv2d {} {}x{}x{h}x{w}>{} k{} s{} p{} d{}",
            self.pass.label(),
            g.batch(),
            g.in_channels(),
            g.out_channels(),
            pair(g.kernel()),
            pair(g.stride()),
            pair(g.padding()),
            pair(g.dilation()),
        )
    }
}

/// The lowerings chosen on one device (a [`Gpu::state`]).
#[derive(Default)]
struct ConvChoices {
    made: Mutex<HashMap<ConvClass, ConvLowering>>,
}

impl Gpu {
    /// The lowering the convolution ops take for `pass` over `g`:
    ///
    /// - the direct kernels where one image's unfolded rows do not fit a scratch
    ///   buffer, the products where the direct kernels would loop beyond the
    ///   [loop budget](Gpu::loop_budget);
    /// - else the lowering [`Gpu::with_conv_lowering`] or `MINIDL_CONV`
    ///   ([`CONV_ENV`], read once) forces;
    /// - else the direct kernels below [`UNFOLD_FROM`] forward multiply-adds;
    /// - else the [fixed rule](ConvLowering::fixed_rule) where `MINIDL_TUNE=off`;
    /// - else the faster as measured ([`Gpu::measure_conv`], on at most
    ///   [`MEASURED_IMAGES`] of the images) on the first use of the pass and geometry
    ///   (the batch rounded up to a power of two, at most [`MEASURED_IMAGES`]) on this
    ///   device, or as the tuning cache file recorded it for this adapter.
    ///
    /// A choice already made costs no allocation.
    pub fn conv_lowering(&self, g: &Conv2dGeometry, pass: ConvPass) -> Result<ConvLowering> {
        if !unfolded_conv::fits(self, g) {
            return Ok(ConvLowering::Direct);
        }
        if !direct_within_budget(self, g, pass) {
            return Ok(ConvLowering::Unfolded);
        }
        if let Some(forced) = self.forced_conv.or_else(forced_by_env) {
            return Ok(forced);
        }
        if g.output_len().saturating_mul(g.im2col_depth()) < UNFOLD_FROM {
            return Ok(ConvLowering::Direct);
        }
        if tuning_off() {
            return Ok(ConvLowering::fixed_rule(g));
        }
        let class = ConvClass::of(g, pass)?;
        let state = self.state::<ConvChoices>();
        if let Some(&lowering) = lock(&state.made).get(&class) {
            return Ok(lowering);
        }
        let key = class.key();
        let cached = self.cached_label(&key);
        let lowering = match cached.as_deref().and_then(ConvLowering::parse) {
            Some(lowering) => lowering,
            None => {
                let sample = g.with_batch("conv2d", g.batch().min(MEASURED_IMAGES))?;
                let (fastest, _) = self.measure_conv(&sample, pass)?;
                self.remember_label(&key, fastest.label());
                fastest
            }
        };
        lock(&state.made).insert(class, lowering);
        Ok(lowering)
    }

    /// Times both lowerings of `pass` over `g` (whole batch, zero operands; the
    /// median of a few runs, see `Gpu::median_millis`) and returns the faster, with each
    /// lowering's milliseconds, the [fixed rule](ConvLowering::fixed_rule)'s choice
    /// first. The other is warmed up on one image (the products' on the whole batch,
    /// which also tunes their kernels and grows the workspace) and timed once where that
    /// run is more than 4 times slower than the first.
    pub fn measure_conv(
        &self,
        g: &Conv2dGeometry,
        pass: ConvPass,
    ) -> Result<(ConvLowering, Vec<(ConvLowering, f64)>)> {
        let n = g.batch();
        let (x, dx) = (
            self.alloc(n, g.input_sample_len())?,
            self.alloc(n, g.input_sample_len())?,
        );
        let (y, dy) = (
            self.alloc(n, g.output_sample_len())?,
            self.alloc(n, g.output_sample_len())?,
        );
        let taps = g.im2col_depth();
        let (w, dw) = (
            self.alloc(g.out_channels(), taps)?,
            self.alloc(g.out_channels(), taps)?,
        );
        let (b, db) = (self.alloc(1, g.bias_len())?, self.alloc(1, g.bias_len())?);
        let one = g.with_batch("conv2d", 1)?;
        // `lowering`'s pass on the first `images` images (`part` their geometry).
        let run = |lowering: ConvLowering, part: &Conv2dGeometry| -> Result<()> {
            let images = part.batch();
            let (x, y) = (x.slice_rows(0, images)?, y.slice_rows(0, images)?);
            match pass {
                ConvPass::Forward => lowering.forward(self, part, &x, &w, &b, &y),
                ConvPass::Backward { input_grad } => {
                    let dx = dx.slice_rows(0, images)?;
                    let dx = input_grad.then_some(&dx);
                    let dy = dy.slice_rows(0, images)?;
                    lowering.backward(self, part, &x, &w, &dy, dx, &dw, &db, GradMode::Overwrite)
                }
            }
        };
        let first = ConvLowering::fixed_rule(g);
        let mut times = Vec::with_capacity(2);
        for lowering in [first, first.other()] {
            let hopeless = times
                .first()
                .map_or(f64::INFINITY, |&(_, ms)| HOPELESS * ms);
            let warm_up = match lowering {
                ConvLowering::Direct if !times.is_empty() => one,
                _ => *g,
            };
            let ms = self.median_millis_after(
                hopeless,
                || run(lowering, &warm_up),
                || run(lowering, g),
            )?;
            times.push((lowering, ms));
        }
        let fastest = times
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(first, |t| t.0);
        Ok((fastest, times))
    }

    /// This backend on the same device with every convolution taking `lowering`
    /// wherever it can run (`None`: the measured choice), as `MINIDL_CONV` does for the
    /// whole process: to compare the two lowerings, or to pin one.
    pub fn with_conv_lowering(&self, lowering: Option<ConvLowering>) -> Gpu {
        Gpu {
            forced_conv: lowering,
            ..self.clone()
        }
    }

    /// [`Ops::conv2d_forward`](crate::backend::Ops::conv2d_forward) with a chosen
    /// lowering (for benchmarks and tests; the op takes [`Gpu::conv_lowering`]), after
    /// the same checks as the op.
    pub fn conv2d_forward_with(
        &self,
        lowering: ConvLowering,
        g: &Conv2dGeometry,
        x: &T,
        w: &T,
        b: &T,
        y: &T,
    ) -> Result<()> {
        let all = [Some(x), Some(w), Some(b), Some(y)];
        check::same_device(self, "conv2d_forward", &all)?;
        check::conv2d_forward(g, x, w, b, y)?;
        lowering.forward(self, g, x, w, b, y)
    }

    /// [`Ops::conv2d_backward`](crate::backend::Ops::conv2d_backward) with a chosen
    /// lowering (see [`Gpu::conv2d_forward_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_with(
        &self,
        lowering: ConvLowering,
        g: &Conv2dGeometry,
        x: &T,
        w: &T,
        dy: &T,
        dx: Option<&T>,
        dw: &T,
        db: &T,
        mode: GradMode,
    ) -> Result<()> {
        let all = [Some(x), Some(w), Some(dy), dx, Some(dw), Some(db)];
        check::same_device(self, "conv2d_backward", &all)?;
        check::conv2d_backward(g, x, w, dy, dx, dw, db)?;
        lowering.backward(self, g, x, w, dy, dx, dw, db, mode)
    }
}

/// `y = conv(x, w) + b` with the lowering [`Gpu::conv_lowering`] chooses.
pub(crate) fn conv2d_forward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &T,
    w: &T,
    b: &T,
    y: &T,
) -> Result<()> {
    gpu.conv_lowering(g, ConvPass::Forward)?
        .forward(gpu, g, x, w, b, y)
}

/// The convolution's input gradient (when `dx` is given), weight and bias gradients,
/// with the lowering [`Gpu::conv_lowering`] chooses.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &T,
    w: &T,
    dy: &T,
    dx: Option<&T>,
    dw: &T,
    db: &T,
    mode: GradMode,
) -> Result<()> {
    let pass = ConvPass::Backward {
        input_grad: dx.is_some(),
    };
    gpu.conv_lowering(g, pass)?
        .backward(gpu, g, x, w, dy, dx, dw, db, mode)
}
