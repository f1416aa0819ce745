//! A network written as a list of layers in PyTorch's words, and its construction:
//! `conv(6,5,padding=2),relu,maxpool(2),flatten,linear(10)` parses into
//! [`LayerSpec`]s ([`parse_model`]), which [`build_model`] turns into a
//! [`Sequential`] for a given input shape, following the shape from layer to layer so
//! that a geometry that cannot work is an error naming the layer, found before any
//! training.
//!
//! The grammar: layers separated by commas; each is a name, optionally followed by
//! arguments in parentheses, positional first, then `key=value`:
//! `conv(OUT,K[,stride=S][,padding=P][,dilation=D][,bias=false])`,
//! `maxpool(K[,stride=S][,padding=P])` and `avgpool(K[,stride=S][,padding=P])`
//! (stride K by default, as PyTorch's),
//! `upsample(S)`, `flatten`, `linear(OUT)`, `relu`, `tanh`, `sigmoid`,
//! `leakyrelu[(SLOPE)]`. As in PyTorch, a size (`K`, `S`, `P`, `D`) is one number
//! for both sides or a pair `(HEIGHT,WIDTH)`: `conv(8,(3,5),stride=(1,2))`; the kernel
//! may be given as `kernel_size=K` and the scale as `scale_factor=S`; `bias` takes
//! `true` or `false` (any case).

use std::fmt;

use rand::Rng;

use super::{
    AvgPool2d, Conv2d, Flatten, LeakyReLU, Linear, MaxPool2d, Module, NearestUpsampling, ReLU,
    Sequential, Sigmoid, Tanh,
};
use crate::backend::{Backend, Conv2dSpec, Pool2dSpec};
use crate::error::{Error, Result};

/// One layer of a model list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerSpec {
    /// `conv(OUT,K[,stride=S][,padding=P][,dilation=D][,bias=false])`: a [`Conv2d`]
    /// to `OUT` channels (the input channels come from the shape before); each size is
    /// (height, width).
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: (usize, usize),
        /// Stride (default 1).
        stride: (usize, usize),
        /// Zero padding on both sides (default 0).
        padding: (usize, usize),
        /// Dilation (default 1).
        dilation: (usize, usize),
        /// Whether the layer has a bias (default true).
        bias: bool,
    },
    /// `maxpool(K[,stride=S][,padding=P])`: a [`MaxPool2d`] over `K` windows, stride
    /// `K` unless given, padding 0 unless given; each size is (height, width).
    MaxPool {
        /// Window size.
        kernel: (usize, usize),
        /// Stride.
        stride: (usize, usize),
        /// Padding on both sides (at most half the window, as PyTorch's).
        padding: (usize, usize),
    },
    /// `avgpool(K[,stride=S][,padding=P])`: an [`AvgPool2d`] over `K` windows (padded
    /// positions count in the divisor, as PyTorch's default), stride `K` unless given,
    /// padding 0 unless given; each size is (height, width).
    AvgPool {
        /// Window size.
        kernel: (usize, usize),
        /// Stride.
        stride: (usize, usize),
        /// Zero padding on both sides (at most half the window, as PyTorch's).
        padding: (usize, usize),
    },
    /// `upsample(S)`: a [`NearestUpsampling`] by `S`.
    Upsample(usize),
    /// `flatten`: a [`Flatten`].
    Flatten,
    /// `linear(OUT)`: a [`Linear`] to `OUT` features.
    Linear(usize),
    /// `relu`.
    Relu,
    /// `tanh`.
    Tanh,
    /// `sigmoid`.
    Sigmoid,
    /// `leakyrelu[(SLOPE)]` (PyTorch's default slope 0.01).
    LeakyRelu(f32),
}

/// Why a model list does not parse: the offending token and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelListError {
    /// The layer as written (or the whole list where it is empty or unbalanced).
    pub token: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ModelListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {:?}", self.reason, self.token)
    }
}

impl std::error::Error for ModelListError {}

/// The shape of the rows flowing between layers: images or flat features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowShape {
    /// Images of `channels × height × width`, one per row in (C, H, W) order.
    Image {
        /// Channels.
        channels: usize,
        /// Height.
        height: usize,
        /// Width.
        width: usize,
    },
    /// Rows of this many features.
    Flat(usize),
}

impl RowShape {
    /// The values in one row.
    pub fn width(&self) -> usize {
        match *self {
            RowShape::Image {
                channels,
                height,
                width,
            } => channels.saturating_mul(height).saturating_mul(width),
            RowShape::Flat(n) => n,
        }
    }
}

impl fmt::Display for RowShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowShape::Image {
                channels,
                height,
                width,
            } => write!(f, "{channels}×{height}×{width} images"),
            RowShape::Flat(n) => write!(f, "rows of {n} features"),
        }
    }
}

/// Splits `list` at the commas outside parentheses.
fn split_top(list: &str) -> std::result::Result<Vec<&str>, ModelListError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(ModelListError {
                token: list.into(),
                reason: "a ')' without its '('".into(),
            });
        }
    }
    if depth != 0 {
        return Err(ModelListError {
            token: list.into(),
            reason: "a '(' without its ')'".into(),
        });
    }
    parts.push(&list[start..]);
    Ok(parts)
}

/// Parses a model list: comma-separated layers, each a [`LayerSpec`] as its
/// documentation writes it (`conv(6,5,padding=2),relu,maxpool(2),flatten,linear(10)`).
/// Never panics; every error names the offending token.
pub fn parse_model(list: &str) -> std::result::Result<Vec<LayerSpec>, ModelListError> {
    if list.trim().is_empty() {
        return Err(ModelListError {
            token: list.into(),
            reason: "the model list is empty".into(),
        });
    }
    split_top(list)?.into_iter().map(parse_layer).collect()
}

/// One layer's arguments: positional values and `key=value` pairs.
struct Arguments<'a> {
    token: &'a str,
    positional: Vec<&'a str>,
    named: Vec<(&'a str, &'a str)>,
}

impl<'a> Arguments<'a> {
    fn error(&self, reason: impl Into<String>) -> ModelListError {
        ModelListError {
            token: self.token.into(),
            reason: reason.into(),
        }
    }

    /// Positional argument `i` (named `what` in errors) as a whole number ≥ 1.
    fn count(&self, i: usize, what: &str) -> std::result::Result<usize, ModelListError> {
        match self.positional.get(i) {
            Some(v) => self.parse_count(what, v, 1),
            None => Err(self.error(format!("missing {what}"))),
        }
    }

    /// The value of positional argument `i` or, where there are fewer, of the named
    /// argument `key` (PyTorch's keyword for it); an error naming `what` where neither
    /// or both are given.
    fn positional_or(
        &self,
        i: usize,
        key: &str,
        what: &str,
    ) -> std::result::Result<&'a str, ModelListError> {
        let named = self.named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        match (self.positional.get(i).copied(), named) {
            (Some(v), None) | (None, Some(v)) => Ok(v),
            (Some(_), Some(_)) => Err(self.error(format!("{what} given twice (and as {key})"))),
            (None, None) => Err(self.error(format!("missing {what}"))),
        }
    }

    /// `v` as a size: one whole number ≥ `least` for both sides, or a pair
    /// `(HEIGHT,WIDTH)` of them.
    fn parse_pair(
        &self,
        what: &str,
        v: &str,
        least: usize,
    ) -> std::result::Result<(usize, usize), ModelListError> {
        let v = v.trim();
        match v.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) => match inner.split(',').collect::<Vec<_>>()[..] {
                [h, w] => Ok((
                    self.parse_count(what, h, least)?,
                    self.parse_count(what, w, least)?,
                )),
                _ => Err(self.error(format!(
                    "{what} must be one number or a pair (HEIGHT,WIDTH), got {v:?}"
                ))),
            },
            None => self.parse_count(what, v, least).map(|n| (n, n)),
        }
    }

    /// Named argument `key` as a size ≥ `least` (see [`Arguments::parse_pair`]), else
    /// `default`.
    fn named_pair(
        &self,
        key: &str,
        least: usize,
        default: (usize, usize),
    ) -> std::result::Result<(usize, usize), ModelListError> {
        match self.named.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => self.parse_pair(key, v, least),
            None => Ok(default),
        }
    }

    /// Named argument `key` as `true` or `false` (any case), else `default`.
    fn named_flag(&self, key: &str, default: bool) -> std::result::Result<bool, ModelListError> {
        match self.named.iter().find(|(k, _)| *k == key) {
            None => Ok(default),
            Some((_, v)) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(self.error(format!("{key} must be true or false, got {v:?}"))),
            },
        }
    }

    fn parse_count(
        &self,
        what: &str,
        v: &str,
        least: usize,
    ) -> std::result::Result<usize, ModelListError> {
        match v.trim().parse::<usize>() {
            Ok(n) if n >= least => Ok(n),
            _ => Err(self.error(format!(
                "{what} must be a whole number of at least {least}, got {:?}",
                v.trim()
            ))),
        }
    }

    /// Fails on more than `positional` positional arguments or a key not in `keys`.
    fn only(&self, positional: usize, keys: &[&str]) -> std::result::Result<(), ModelListError> {
        if self.positional.len() > positional {
            return Err(self.error(format!(
                "takes at most {positional} positional argument(s), got {}",
                self.positional.len()
            )));
        }
        for (k, _) in &self.named {
            if !keys.contains(k) {
                return Err(self.error(format!("unknown argument {k:?}")));
            }
            if self.named.iter().filter(|(j, _)| j == k).count() > 1 {
                return Err(self.error(format!("{k} given twice")));
            }
        }
        Ok(())
    }
}

/// Parses one layer token.
fn parse_layer(token: &str) -> std::result::Result<LayerSpec, ModelListError> {
    let t = token.trim();
    let error = |reason: &str| ModelListError {
        token: token.into(),
        reason: reason.into(),
    };
    let (name, inner) = match t.find('(') {
        Some(open) => {
            if !t.ends_with(')') {
                return Err(error("text after the closing ')'"));
            }
            (t[..open].trim(), Some(&t[open + 1..t.len() - 1]))
        }
        None => (t, None),
    };
    let mut args = Arguments {
        token,
        positional: Vec::new(),
        named: Vec::new(),
    };
    if let Some(inner) = inner.filter(|s| !s.trim().is_empty()) {
        // Split at the commas outside the pairs' parentheses.
        let parts = split_top(inner).map_err(|e| error(&e.reason))?;
        for part in parts {
            match part.split_once('=') {
                Some((k, v)) => args.named.push((k.trim(), v.trim())),
                None if args.named.is_empty() => args.positional.push(part.trim()),
                None => return Err(error("a positional argument after a key=value one")),
            }
        }
    }
    let plain = |spec: LayerSpec| -> std::result::Result<LayerSpec, ModelListError> {
        args.only(0, &[])?;
        Ok(spec)
    };
    match name.to_ascii_lowercase().as_str() {
        "conv" | "conv2d" => {
            args.only(
                2,
                &["kernel_size", "stride", "padding", "dilation", "bias"],
            )?;
            let kernel = args.positional_or(1, "kernel_size", "the kernel size")?;
            Ok(LayerSpec::Conv {
                out: args.count(0, "the output channels")?,
                kernel: args.parse_pair("the kernel size", kernel, 1)?,
                stride: args.named_pair("stride", 1, (1, 1))?,
                padding: args.named_pair("padding", 0, (0, 0))?,
                dilation: args.named_pair("dilation", 1, (1, 1))?,
                bias: args.named_flag("bias", true)?,
            })
        }
        "maxpool" | "maxpool2d" | "avgpool" | "avgpool2d" => {
            args.only(1, &["kernel_size", "stride", "padding"])?;
            let kernel = args.positional_or(0, "kernel_size", "the window size")?;
            let kernel = args.parse_pair("the window size", kernel, 1)?;
            let stride = args.named_pair("stride", 1, kernel)?;
            let padding = args.named_pair("padding", 0, (0, 0))?;
            Ok(match name.to_ascii_lowercase().starts_with("max") {
                true => LayerSpec::MaxPool {
                    kernel,
                    stride,
                    padding,
                },
                false => LayerSpec::AvgPool {
                    kernel,
                    stride,
                    padding,
                },
            })
        }
        "upsample" => {
            args.only(1, &["scale_factor"])?;
            let scale = args.positional_or(0, "scale_factor", "the scale")?;
            Ok(LayerSpec::Upsample(args.parse_count("the scale", scale, 1)?))
        }
        "linear" => {
            args.only(1, &[])?;
            Ok(LayerSpec::Linear(args.count(0, "the output width")?))
        }
        "flatten" => plain(LayerSpec::Flatten),
        "relu" => plain(LayerSpec::Relu),
        "tanh" => plain(LayerSpec::Tanh),
        "sigmoid" => plain(LayerSpec::Sigmoid),
        "leakyrelu" => {
            args.only(1, &[])?;
            let slope = match args.positional.first() {
                None => 0.01,
                Some(v) => match v.parse::<f32>() {
                    Ok(s) if s.is_finite() && s >= 0.0 => s,
                    _ => return Err(error("the slope must be a finite number of at least 0")),
                },
            };
            Ok(LayerSpec::LeakyRelu(slope))
        }
        "" => Err(error("an empty layer")),
        _ => Err(error(
            "unknown layer (conv, maxpool, avgpool, upsample, flatten, linear, relu, tanh, sigmoid, leakyrelu)",
        )),
    }
}

/// Whether the network `layers` takes images: its first layer that is not an
/// activation is a convolution, a pooling (max or average), an upsampling or a
/// flatten. A data set that knows its rows' image shape
/// ([`Dataset::image_shape`](crate::data::Dataset::image_shape)) gives such a network
/// its input shape.
pub fn takes_images(layers: &[LayerSpec]) -> bool {
    let first = layers.iter().find(|l| {
        !matches!(
            l,
            LayerSpec::Relu | LayerSpec::Tanh | LayerSpec::Sigmoid | LayerSpec::LeakyRelu(_)
        )
    });
    matches!(
        first,
        Some(
            LayerSpec::Conv { .. }
                | LayerSpec::MaxPool { .. }
                | LayerSpec::AvgPool { .. }
                | LayerSpec::Upsample(_)
                | LayerSpec::Flatten
        )
    )
}

/// Builds the network `layers` for rows of shape `input`, initialising each layer as
/// PyTorch does from `rng` in order, and returns it with the shape of its output
/// rows. Fails where a layer cannot take the shape before it, naming the layer
/// (`layer 3 (conv(16,5))`) and the shapes: a convolution, pooling or upsampling on
/// flat rows, a `Linear` on images (flatten first), a kernel larger than the padded
/// image, an output of size 0.
pub fn build_model<B: Backend>(
    backend: &B,
    layers: &[LayerSpec],
    input: RowShape,
    rng: &mut impl Rng,
) -> Result<(Sequential<B>, RowShape)> {
    let mut shape = input;
    let mut built: Vec<Box<dyn Module<B>>> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let context = format!("layer {i} ({})", describe(layer));
        let wrap = |e: Error| match e {
            Error::Shape { detail, .. } => Error::shape(context.clone(), detail),
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{context}: {m}")),
            other => other,
        };
        let image = |shape: RowShape| {
            match shape {
            RowShape::Image {
                channels,
                height,
                width,
            } => Ok((channels, height, width)),
            RowShape::Flat(n) => Err(Error::shape(
                context.clone(),
                format!("takes images but gets rows of {n} features (give --image C,H,W, and put it before flatten)"),
            )),
        }
        };
        let (module, next): (Box<dyn Module<B>>, RowShape) = match *layer {
            LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                dilation,
                bias,
            } => {
                let (c, h, w) = image(shape)?;
                let spec = Conv2dSpec::new(c, out, kernel)
                    .with_stride(stride)
                    .with_padding(padding)
                    .with_dilation(dilation);
                let conv = if bias {
                    Conv2d::new(backend, spec, (h, w), rng)
                } else {
                    Conv2d::without_bias(backend, spec, (h, w), rng)
                }
                .map_err(wrap)?;
                let (channels, height, width) = conv.output_shape();
                (
                    Box::new(conv),
                    RowShape::Image {
                        channels,
                        height,
                        width,
                    },
                )
            }
            LayerSpec::MaxPool {
                kernel,
                stride,
                padding,
            }
            | LayerSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => {
                let (c, h, w) = image(shape)?;
                let spec = Pool2dSpec::new(kernel)
                    .with_stride(stride)
                    .with_padding(padding);
                let (pool, (channels, height, width)): (Box<dyn Module<B>>, _) = match layer {
                    LayerSpec::MaxPool { .. } => {
                        let pool = MaxPool2d::new(spec, c, (h, w)).map_err(wrap)?;
                        let out = pool.output_shape();
                        (Box::new(pool), out)
                    }
                    _ => {
                        let pool = AvgPool2d::new(spec, c, (h, w)).map_err(wrap)?;
                        let out = pool.output_shape();
                        (Box::new(pool), out)
                    }
                };
                (
                    pool,
                    RowShape::Image {
                        channels,
                        height,
                        width,
                    },
                )
            }
            LayerSpec::Upsample(scale) => {
                let (c, h, w) = image(shape)?;
                let up = NearestUpsampling::new(scale, c, (h, w)).map_err(wrap)?;
                let (channels, height, width) = up.output_shape();
                (
                    Box::new(up),
                    RowShape::Image {
                        channels,
                        height,
                        width,
                    },
                )
            }
            LayerSpec::Flatten => (Box::new(Flatten::new()), RowShape::Flat(shape.width())),
            LayerSpec::Linear(out) => {
                let RowShape::Flat(n) = shape else {
                    return Err(Error::shape(
                        context,
                        format!("takes flat rows but gets {shape}: put flatten before it"),
                    ));
                };
                let linear = Linear::new(backend, n, out, rng).map_err(wrap)?;
                (Box::new(linear), RowShape::Flat(out))
            }
            LayerSpec::Relu => (Box::new(ReLU::new()), shape),
            LayerSpec::Tanh => (Box::new(Tanh::new()), shape),
            LayerSpec::Sigmoid => (Box::new(Sigmoid::new()), shape),
            LayerSpec::LeakyRelu(slope) => (Box::new(LeakyReLU::with_slope(slope)?), shape),
        };
        built.push(module);
        shape = next;
    }
    Ok((Sequential::new(built)?, shape))
}

/// A size as a model list writes it: `3` where both sides agree, else `(3,5)`.
fn size(pair: (usize, usize)) -> String {
    if pair.0 == pair.1 {
        pair.0.to_string()
    } else {
        format!("({},{})", pair.0, pair.1)
    }
}

/// A layer as a model list writes it (what [`parse_model`] reads back to `layer`).
pub fn describe(layer: &LayerSpec) -> String {
    match *layer {
        LayerSpec::Conv {
            out,
            kernel,
            stride,
            padding,
            dilation,
            bias,
        } => {
            let mut s = format!("conv({out},{}", size(kernel));
            for (k, v, default) in [
                ("stride", stride, (1, 1)),
                ("padding", padding, (0, 0)),
                ("dilation", dilation, (1, 1)),
            ] {
                if v != default {
                    s.push_str(&format!(",{k}={}", size(v)));
                }
            }
            if !bias {
                s.push_str(",bias=false");
            }
            s + ")"
        }
        LayerSpec::MaxPool {
            kernel,
            stride,
            padding,
        }
        | LayerSpec::AvgPool {
            kernel,
            stride,
            padding,
        } => {
            let name = match layer {
                LayerSpec::MaxPool { .. } => "maxpool",
                _ => "avgpool",
            };
            let mut s = format!("{name}({}", size(kernel));
            if stride != kernel {
                s.push_str(&format!(",stride={}", size(stride)));
            }
            if padding != (0, 0) {
                s.push_str(&format!(",padding={}", size(padding)));
            }
            s + ")"
        }
        LayerSpec::Upsample(s) => format!("upsample({s})"),
        LayerSpec::Flatten => "flatten".into(),
        LayerSpec::Linear(n) => format!("linear({n})"),
        LayerSpec::Relu => "relu".into(),
        LayerSpec::Tanh => "tanh".into(),
        LayerSpec::Sigmoid => "sigmoid".into(),
        LayerSpec::LeakyRelu(s) => format!("leakyrelu({s})"),
    }
}
