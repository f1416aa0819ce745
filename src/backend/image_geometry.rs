//! The geometry of the image ops, computed in one place: from a layer's kernel, stride,
//! padding and dilation and the size of its input, the size of its output and which
//! input pixel each kernel tap reads, for the 2-D convolution ([`Conv2dGeometry`]), max
//! pooling ([`Pool2dGeometry`]) and nearest-neighbour upsampling
//! ([`UpsampleGeometry`]). Every backend and the reference read their sizes and indices
//! from here.
//!
//! Images are PyTorch's `(N, C, H, W)`, row-major: a flattened row is one sample in
//! `C, H, W` order. A sliding window's output size is PyTorch's (`Conv2d`, `MaxPool2d`
//! with `ceil_mode = False`): `out = ⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1`.
//! The constructors validate their arguments and name the caller's `context` (a label
//! such as `"conv2d layer 3"`) and the numbers in every error; a geometry that exists
//! is valid, its element counts fit in `usize`, and its outputs are at least 1×1.

use crate::error::{Error, Result};

/// One spatial dimension (height or width) of a sliding window over a zero-padded
/// input: sizes, and the map between output positions, kernel taps and input positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Axis {
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output: usize,
}

impl Axis {
    /// PyTorch's output size, `⌊(padded − span) / stride⌋ + 1` for the padded input
    /// `in + 2·pad` and the dilated kernel's span `dil·(k − 1) + 1`; `None` where the
    /// span is larger than the padded input (the output would be empty). Assumes
    /// `stride ≥ 1`.
    fn output_size(padded: usize, span: usize, stride: usize) -> Option<usize> {
        Some(padded.checked_sub(span)? / stride + 1)
    }

    /// The input position that output `o`'s tap `k` reads (`o·stride + k·dilation −
    /// padding`), `None` where it falls in the padding.
    fn tap(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.padding)
            .filter(|&i| i < self.input)
    }

    /// The output positions whose tap `k` reads a real pixel (not the padding): the
    /// `o` with `0 ≤ o·stride + k·dilation − padding < input`, a range since the
    /// position grows with `o`.
    fn readers_of_tap(&self, k: usize) -> std::ops::Range<usize> {
        let reach = k * self.dilation;
        let lo = self.padding.saturating_sub(reach).div_ceil(self.stride);
        let hi = (self.input + self.padding)
            .saturating_sub(reach)
            .div_ceil(self.stride)
            .min(self.output);
        lo.min(hi)..hi
    }

    /// The output position whose tap `k` reads input `i`, if any: the `o` with
    /// `o·stride = i + padding − k·dilation`, `o < output`.
    fn reader(&self, i: usize, k: usize) -> Option<usize> {
        let offset = (i + self.padding).checked_sub(k * self.dilation)?;
        let o = offset / self.stride;
        (offset % self.stride == 0 && o < self.output).then_some(o)
    }
}

/// The two axes of a sliding window, validated: every size, kernel, stride and
/// dilation at least 1, the dilated kernel no larger than the padded input.
fn window_axes(
    context: &str,
    input: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Result<[Axis; 2]> {
    let invalid = |what: String| Err(Error::InvalidArgument(format!("{context}: {what}")));
    let overflow = |what: String| Error::InvalidArgument(format!("{context}: {what}"));
    if input.0 == 0 || input.1 == 0 {
        return invalid(format!(
            "the input image must be at least 1×1, got {}×{}",
            input.0, input.1
        ));
    }
    if kernel.0 == 0 || kernel.1 == 0 {
        return invalid(format!(
            "the kernel must be at least 1×1, got {}×{}",
            kernel.0, kernel.1
        ));
    }
    if stride.0 == 0 || stride.1 == 0 {
        return invalid(format!(
            "the stride must be at least 1 in each dimension, got ({}, {})",
            stride.0, stride.1
        ));
    }
    if dilation.0 == 0 || dilation.1 == 0 {
        return invalid(format!(
            "the dilation must be at least 1 in each dimension, got ({}, {})",
            dilation.0, dilation.1
        ));
    }
    let axis = |i: usize, k: usize, s: usize, p: usize, d: usize| -> Result<Axis> {
        let padded = p.checked_mul(2).and_then(|p2| p2.checked_add(i));
        let span = d.checked_mul(k - 1).and_then(|e| e.checked_add(1));
        let (Some(padded), Some(span)) = (padded, span) else {
            return Err(overflow(format!(
                "the input {}×{} with padding ({}, {}) or the kernel {}×{} with dilation \
                 ({}, {}) spans more positions than fit in usize",
                input.0, input.1, padding.0, padding.1, kernel.0, kernel.1, dilation.0, dilation.1
            )));
        };
        match Axis::output_size(padded, span, s) {
            Some(output) => Ok(Axis {
                input: i,
                kernel: k,
                stride: s,
                padding: p,
                dilation: d,
                output,
            }),
            None => Err(Error::shape(
                context,
                format!(
                    "the kernel {}×{} with dilation ({}, {}) spans {}×{}, larger than the \
                     input {}×{} with padding ({}, {}), so the output would be empty",
                    kernel.0,
                    kernel.1,
                    dilation.0,
                    dilation.1,
                    span_of(kernel.0, dilation.0),
                    span_of(kernel.1, dilation.1),
                    input.0,
                    input.1,
                    padding.0,
                    padding.1
                ),
            )),
        }
    };
    Ok([
        axis(input.0, kernel.0, stride.0, padding.0, dilation.0)?,
        axis(input.1, kernel.1, stride.1, padding.1, dilation.1)?,
    ])
}

/// `dil·(k − 1) + 1` for a message, saturating instead of overflowing.
fn span_of(kernel: usize, dilation: usize) -> usize {
    dilation
        .saturating_mul(kernel.saturating_sub(1))
        .saturating_add(1)
}

/// The product of `factors`, or an [`Error::InvalidArgument`] naming `context` and
/// `what` where it overflows `usize`.
fn count(context: &str, what: &str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{context}: the {what} ({}) has more elements than fit in usize",
                factors
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join("×")
            ))
        })
}

/// `Ok` when `value ≥ 1`, else an [`Error::InvalidArgument`] naming `context`.
fn at_least_one(context: &str, what: &str, value: usize) -> Result<()> {
    if value == 0 {
        Err(Error::InvalidArgument(format!(
            "{context}: the {what} must be at least 1, got 0"
        )))
    } else {
        Ok(())
    }
}

/// A 2-D convolution layer's configuration, as PyTorch's `Conv2d` arguments: channels,
/// kernel size, and stride, padding (zeros) and dilation, each as (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dSpec {
    /// Input channels `C`.
    pub in_channels: usize,
    /// Output channels `O`.
    pub out_channels: usize,
    /// Kernel size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Stride `(sh, sw)`.
    pub stride: (usize, usize),
    /// Zero padding on both sides, `(ph, pw)`.
    pub padding: (usize, usize),
    /// Spacing between kernel taps, `(dh, dw)`.
    pub dilation: (usize, usize),
}

impl Conv2dSpec {
    /// `in_channels → out_channels` with a `kernel` of `(kh, kw)`, PyTorch's defaults:
    /// stride 1, padding 0, dilation 1.
    pub fn new(in_channels: usize, out_channels: usize, kernel: (usize, usize)) -> Self {
        Conv2dSpec {
            in_channels,
            out_channels,
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
        }
    }

    /// The same with stride `(sh, sw)`.
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Conv2dSpec { stride, ..self }
    }

    /// The same with zero padding `(ph, pw)` on both sides.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Conv2dSpec { padding, ..self }
    }

    /// The same with dilation `(dh, dw)`.
    pub fn with_dilation(self, dilation: (usize, usize)) -> Self {
        Conv2dSpec { dilation, ..self }
    }
}

/// The geometry of a 2-D convolution on a batch: input `(N, C, H, W)`, weight
/// `(O, C, kh, kw)` (PyTorch's order), bias `(O)`, output `(N, O, OH, OW)`, with
/// PyTorch's output size (see the [module](self) documentation). Built only by
/// [`Conv2dGeometry::new`], which validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeometry {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    axes: [Axis; 2],
}

impl Conv2dGeometry {
    /// The convolution `spec` on a batch of `batch` images of `input = (H, W)` pixels.
    /// Errors name `context` and the numbers: an [`Error::InvalidArgument`] for a batch,
    /// channel count, image or kernel size, stride or dilation of 0, or element counts
    /// that overflow `usize`; an [`Error::Shape`] where the dilated kernel
    /// `dil·(k − 1) + 1` is larger than the padded input `in + 2·pad`, which is exactly
    /// where PyTorch's output size would be 0 or less.
    pub fn new(
        context: &str,
        spec: &Conv2dSpec,
        batch: usize,
        input: (usize, usize),
    ) -> Result<Self> {
        at_least_one(context, "batch size", batch)?;
        at_least_one(context, "number of input channels", spec.in_channels)?;
        at_least_one(context, "number of output channels", spec.out_channels)?;
        let axes = window_axes(
            context,
            input,
            spec.kernel,
            spec.stride,
            spec.padding,
            spec.dilation,
        )?;
        let (h, w) = (axes[0], axes[1]);
        count(
            context,
            "input",
            &[batch, spec.in_channels, h.input, w.input],
        )?;
        count(
            context,
            "output",
            &[batch, spec.out_channels, h.output, w.output],
        )?;
        count(
            context,
            "weight",
            &[spec.out_channels, spec.in_channels, h.kernel, w.kernel],
        )?;
        Ok(Conv2dGeometry {
            batch,
            in_channels: spec.in_channels,
            out_channels: spec.out_channels,
            axes,
        })
    }

    /// The same convolution on a batch of `batch` images; errors as [`Conv2dGeometry::new`].
    pub fn with_batch(&self, context: &str, batch: usize) -> Result<Self> {
        Conv2dGeometry::new(context, &self.spec(), batch, self.input_size())
    }

    /// The layer configuration this geometry was built from.
    pub fn spec(&self) -> Conv2dSpec {
        Conv2dSpec {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel: self.kernel(),
            stride: self.stride(),
            padding: self.padding(),
            dilation: self.dilation(),
        }
    }

    /// The output rows whose kernel row `ky` reads a real input row (not the padding).
    pub fn rows_reading(&self, ky: usize) -> std::ops::Range<usize> {
        self.axes[0].readers_of_tap(ky)
    }

    /// The output columns whose kernel column `kx` reads a real input column.
    pub fn cols_reading(&self, kx: usize) -> std::ops::Range<usize> {
        self.axes[1].readers_of_tap(kx)
    }

    /// The batch size `N`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Input channels `C`.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels `O`.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The input image size `(H, W)`.
    pub fn input_size(&self) -> (usize, usize) {
        (self.axes[0].input, self.axes[1].input)
    }

    /// The kernel size `(kh, kw)`.
    pub fn kernel(&self) -> (usize, usize) {
        (self.axes[0].kernel, self.axes[1].kernel)
    }

    /// The stride `(sh, sw)`.
    pub fn stride(&self) -> (usize, usize) {
        (self.axes[0].stride, self.axes[1].stride)
    }

    /// The zero padding `(ph, pw)`, on both sides.
    pub fn padding(&self) -> (usize, usize) {
        (self.axes[0].padding, self.axes[1].padding)
    }

    /// The dilation `(dh, dw)`.
    pub fn dilation(&self) -> (usize, usize) {
        (self.axes[0].dilation, self.axes[1].dilation)
    }

    /// The output height `OH = ⌊(H + 2·ph − dh·(kh − 1) − 1) / sh⌋ + 1`.
    pub fn out_height(&self) -> usize {
        self.axes[0].output
    }

    /// The output width `OW = ⌊(W + 2·pw − dw·(kw − 1) − 1) / sw⌋ + 1`.
    pub fn out_width(&self) -> usize {
        self.axes[1].output
    }

    /// The output image size `(OH, OW)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_height(), self.out_width())
    }

    /// Elements of one input sample, `C·H·W` (a row of the flattened batch).
    pub fn input_sample_len(&self) -> usize {
        self.in_channels * self.axes[0].input * self.axes[1].input
    }

    /// Elements of one output sample, `O·OH·OW`.
    pub fn output_sample_len(&self) -> usize {
        self.out_channels * self.axes[0].output * self.axes[1].output
    }

    /// Elements of the input batch, `N·C·H·W`.
    pub fn input_len(&self) -> usize {
        self.batch * self.input_sample_len()
    }

    /// Elements of the output batch, `N·O·OH·OW`.
    pub fn output_len(&self) -> usize {
        self.batch * self.output_sample_len()
    }

    /// Elements of the weight `(O, C, kh, kw)`: `O·C·kh·kw`.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.im2col_depth()
    }

    /// Elements of the bias, `O`.
    pub fn bias_len(&self) -> usize {
        self.out_channels
    }

    /// The depth of the im2col product, `C·kh·kw`: the length of one weight row and of
    /// the sum behind each output value.
    pub fn im2col_depth(&self) -> usize {
        self.in_channels * self.axes[0].kernel * self.axes[1].kernel
    }

    /// The input row that output row `oy`'s kernel row `ky` reads, `oy·sh + ky·dh − ph`;
    /// `None` where that falls in the padding. Assumes `oy < OH`, `ky < kh`.
    pub fn input_y(&self, oy: usize, ky: usize) -> Option<usize> {
        self.axes[0].tap(oy, ky)
    }

    /// The input column that output column `ox`'s kernel column `kx` reads,
    /// `ox·sw + kx·dw − pw`; `None` where that falls in the padding. Assumes `ox < OW`,
    /// `kx < kw`.
    pub fn input_x(&self, ox: usize, kx: usize) -> Option<usize> {
        self.axes[1].tap(ox, kx)
    }

    /// The inverse of [`input_y`](Self::input_y): the output row whose kernel row `ky`
    /// reads input row `iy`, if one does. Assumes `iy < H`, `ky < kh`.
    pub fn output_y(&self, iy: usize, ky: usize) -> Option<usize> {
        self.axes[0].reader(iy, ky)
    }

    /// The inverse of [`input_x`](Self::input_x): the output column whose kernel column
    /// `kx` reads input column `ix`, if one does. Assumes `ix < W`, `kx < kw`.
    pub fn output_x(&self, ix: usize, kx: usize) -> Option<usize> {
        self.axes[1].reader(ix, kx)
    }

    /// The offset of input element `(n, c, y, x)` in the flattened batch.
    pub fn input_index(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.in_channels + c) * self.axes[0].input + y) * self.axes[1].input + x
    }

    /// The offset of output element `(n, o, y, x)` in the flattened batch.
    pub fn output_index(&self, n: usize, o: usize, y: usize, x: usize) -> usize {
        ((n * self.out_channels + o) * self.axes[0].output + y) * self.axes[1].output + x
    }

    /// The offset of weight element `(o, c, ky, kx)`.
    pub fn weight_index(&self, o: usize, c: usize, ky: usize, kx: usize) -> usize {
        ((o * self.in_channels + c) * self.axes[0].kernel + ky) * self.axes[1].kernel + kx
    }
}

/// A max-pooling layer's configuration, as PyTorch's `MaxPool2d` arguments with
/// `dilation = 1` and `ceil_mode = False`: kernel size, stride and padding, each as
/// (height, width). Padded positions are never chosen (PyTorch pads with −∞).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dSpec {
    /// Window size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Stride `(sh, sw)`.
    pub stride: (usize, usize),
    /// Implicit −∞ padding on both sides, `(ph, pw)`; at most half the window.
    pub padding: (usize, usize),
}

impl Pool2dSpec {
    /// A `kernel` window with PyTorch's defaults: stride equal to the kernel, padding 0.
    pub fn new(kernel: (usize, usize)) -> Self {
        Pool2dSpec {
            kernel,
            stride: kernel,
            padding: (0, 0),
        }
    }

    /// The same with stride `(sh, sw)`.
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Pool2dSpec { stride, ..self }
    }

    /// The same with padding `(ph, pw)`.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Pool2dSpec { padding, ..self }
    }
}

/// The geometry of 2-D max pooling on a batch: input `(N, C, H, W)`, output
/// `(N, C, OH, OW)` with `OH = ⌊(H + 2·ph − kh) / sh⌋ + 1` (and so for the width), the
/// convolution's formula with dilation 1. Built only by [`Pool2dGeometry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dGeometry {
    batch: usize,
    channels: usize,
    axes: [Axis; 2],
}

impl Pool2dGeometry {
    /// Pooling `spec` over a batch of `batch` images of `channels` channels and
    /// `input = (H, W)` pixels. Errors name `context` and the numbers: an
    /// [`Error::InvalidArgument`] for a batch, channel count, image or window size or
    /// stride of 0, padding over half the window (PyTorch's rule, which keeps a real
    /// pixel in every window), or counts that overflow `usize`; an [`Error::Shape`]
    /// where the window is larger than the padded input.
    pub fn new(
        context: &str,
        spec: &Pool2dSpec,
        batch: usize,
        channels: usize,
        input: (usize, usize),
    ) -> Result<Self> {
        at_least_one(context, "batch size", batch)?;
        at_least_one(context, "number of channels", channels)?;
        let axes = window_axes(
            context,
            input,
            spec.kernel,
            spec.stride,
            spec.padding,
            (1, 1),
        )?;
        if spec.padding.0 > spec.kernel.0 / 2 || spec.padding.1 > spec.kernel.1 / 2 {
            return Err(Error::InvalidArgument(format!(
                "{context}: the padding ({}, {}) must be at most half the window {}×{}",
                spec.padding.0, spec.padding.1, spec.kernel.0, spec.kernel.1
            )));
        }
        let (h, w) = (axes[0], axes[1]);
        count(context, "input", &[batch, channels, h.input, w.input])?;
        Ok(Pool2dGeometry {
            batch,
            channels,
            axes,
        })
    }

    /// The batch size `N`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The same pooling on a batch of `batch` images; errors as [`Pool2dGeometry::new`].
    pub fn with_batch(&self, context: &str, batch: usize) -> Result<Self> {
        let spec = Pool2dSpec {
            kernel: self.kernel(),
            stride: self.stride(),
            padding: self.padding(),
        };
        Pool2dGeometry::new(context, &spec, batch, self.channels, self.input_size())
    }

    /// The channels `C` (the same in and out).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The input image size `(H, W)`.
    pub fn input_size(&self) -> (usize, usize) {
        (self.axes[0].input, self.axes[1].input)
    }

    /// The window size `(kh, kw)`.
    pub fn kernel(&self) -> (usize, usize) {
        (self.axes[0].kernel, self.axes[1].kernel)
    }

    /// The stride `(sh, sw)`.
    pub fn stride(&self) -> (usize, usize) {
        (self.axes[0].stride, self.axes[1].stride)
    }

    /// The padding `(ph, pw)`.
    pub fn padding(&self) -> (usize, usize) {
        (self.axes[0].padding, self.axes[1].padding)
    }

    /// The output height `OH = ⌊(H + 2·ph − kh) / sh⌋ + 1`.
    pub fn out_height(&self) -> usize {
        self.axes[0].output
    }

    /// The output width `OW = ⌊(W + 2·pw − kw) / sw⌋ + 1`.
    pub fn out_width(&self) -> usize {
        self.axes[1].output
    }

    /// The output image size `(OH, OW)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_height(), self.out_width())
    }

    /// The number of image planes, `N·C`: pooling treats each on its own.
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements of one input image, `C·H·W` (a row of the flattened batch).
    pub fn input_sample_len(&self) -> usize {
        self.channels * self.axes[0].input * self.axes[1].input
    }

    /// Elements of one output image, `C·OH·OW`.
    pub fn output_sample_len(&self) -> usize {
        self.channels * self.axes[0].output * self.axes[1].output
    }

    /// Elements of the input batch, `N·C·H·W`.
    pub fn input_len(&self) -> usize {
        self.planes() * self.axes[0].input * self.axes[1].input
    }

    /// Elements of the output batch, `N·C·OH·OW`.
    pub fn output_len(&self) -> usize {
        self.planes() * self.axes[0].output * self.axes[1].output
    }

    /// The input row that output row `oy`'s window row `ky` reads, `oy·sh + ky − ph`;
    /// `None` in the padding. Assumes `oy < OH`, `ky < kh`.
    pub fn input_y(&self, oy: usize, ky: usize) -> Option<usize> {
        self.axes[0].tap(oy, ky)
    }

    /// The input column that output column `ox`'s window column `kx` reads,
    /// `ox·sw + kx − pw`; `None` in the padding. Assumes `ox < OW`, `kx < kw`.
    pub fn input_x(&self, ox: usize, kx: usize) -> Option<usize> {
        self.axes[1].tap(ox, kx)
    }
}

/// The geometry of nearest-neighbour upsampling by an integer `scale` (PyTorch's
/// `Upsample(scale_factor = scale, mode = "nearest")`): input `(N, C, H, W)`, output
/// `(N, C, H·scale, W·scale)`, output pixel `(y, x)` a copy of input pixel
/// `(⌊y / scale⌋, ⌊x / scale⌋)`. Built only by [`UpsampleGeometry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpsampleGeometry {
    batch: usize,
    channels: usize,
    input: (usize, usize),
    scale: usize,
}

impl UpsampleGeometry {
    /// Upsampling a batch of `batch` images of `channels` channels and `input = (H, W)`
    /// pixels by `scale`. An [`Error::InvalidArgument`] naming `context` and the
    /// numbers for a batch, channel count, image size or scale of 0, or an output
    /// whose size overflows `usize`.
    pub fn new(
        context: &str,
        batch: usize,
        channels: usize,
        input: (usize, usize),
        scale: usize,
    ) -> Result<Self> {
        at_least_one(context, "batch size", batch)?;
        at_least_one(context, "number of channels", channels)?;
        at_least_one(context, "scale factor", scale)?;
        if input.0 == 0 || input.1 == 0 {
            return Err(Error::InvalidArgument(format!(
                "{context}: the input image must be at least 1×1, got {}×{}",
                input.0, input.1
            )));
        }
        count(
            context,
            "output",
            &[batch, channels, input.0, input.1, scale, scale],
        )?;
        Ok(UpsampleGeometry {
            batch,
            channels,
            input,
            scale,
        })
    }

    /// The batch size `N`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The same upsampling on a batch of `batch` images; errors as
    /// [`UpsampleGeometry::new`].
    pub fn with_batch(&self, context: &str, batch: usize) -> Result<Self> {
        UpsampleGeometry::new(context, batch, self.channels, self.input, self.scale)
    }

    /// The channels `C` (the same in and out).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The scale factor, the same for height and width.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// The input image size `(H, W)`.
    pub fn input_size(&self) -> (usize, usize) {
        self.input
    }

    /// The output image size `(H·scale, W·scale)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.input.0 * self.scale, self.input.1 * self.scale)
    }

    /// The number of image planes, `N·C`.
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements of one input image, `C·H·W` (a row of the flattened batch).
    pub fn input_sample_len(&self) -> usize {
        self.channels * self.input.0 * self.input.1
    }

    /// Elements of one output image, `C·H·W·scale²`.
    pub fn output_sample_len(&self) -> usize {
        self.input_sample_len() * self.scale * self.scale
    }

    /// Elements of the input batch, `N·C·H·W`.
    pub fn input_len(&self) -> usize {
        self.planes() * self.input.0 * self.input.1
    }

    /// Elements of the output batch, `N·C·H·W·scale²`.
    pub fn output_len(&self) -> usize {
        self.input_len() * self.scale * self.scale
    }
}
