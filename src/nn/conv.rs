//! `Conv2d`: the 2-D convolution layer, as PyTorch's `nn.Conv2d` (zero padding, stride,
//! dilation, with or without a bias), its weight stored `[out, in, kh, kw]` and
//! initialised as PyTorch's. Its geometry is fixed when it is built, so that a kernel that does not
//! fit the image is an error then, naming the layer.

use rand::{Rng, RngExt};

use super::module::{Module, Parameter};
use super::scratch::Scratch;
use crate::backend::{Backend, Conv2dGeometry, Conv2dSpec, DeviceTensor, GradMode, Ops};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A 2-D convolution over images of a fixed size: input rows of `C·H·W` values (one
/// image in (C, H, W) order), output rows of `O·OH·OW`.
pub struct Conv2d<B: Backend> {
    /// The geometry for one image; a batch's is derived from it.
    geometry: Conv2dGeometry,
    weight: DeviceTensor<B>,
    /// The bias; zeros, never trained and not a parameter, where `has_bias` is false
    /// (the backend's ops always add one).
    bias: DeviceTensor<B>,
    weight_grad: DeviceTensor<B>,
    /// The bias gradient; computed and dropped where `has_bias` is false.
    bias_grad: DeviceTensor<B>,
    has_bias: bool,
    input: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad_input: Scratch<B>,
    grad_input_view: Option<DeviceTensor<B>>,
    grad_mode: GradMode,
    input_grad: bool,
}

/// The name of a convolution layer, e.g. `Conv2d(1→6, 5×5, stride 2, padding 1)`,
/// `Conv2d(1→6, 5×5, no bias)`.
fn layer_name(spec: &Conv2dSpec, has_bias: bool) -> String {
    let mut s = format!(
        "Conv2d({}→{}, {}×{}",
        spec.in_channels, spec.out_channels, spec.kernel.0, spec.kernel.1
    );
    for (what, (a, b), default) in [
        ("stride", spec.stride, 1),
        ("padding", spec.padding, 0),
        ("dilation", spec.dilation, 1),
    ] {
        if (a, b) != (default, default) {
            if a == b {
                s.push_str(&format!(", {what} {a}"));
            } else {
                s.push_str(&format!(", {what} ({a}, {b})"));
            }
        }
    }
    if !has_bias {
        s.push_str(", no bias");
    }
    s.push(')');
    s
}

impl<B: Backend> Conv2d<B> {
    /// A layer initialised as PyTorch's `nn.Conv2d`, for images of `input = (H, W)`
    /// pixels: weight and bias uniform in ±1/√(C·kh·kw), drawn from `rng` (the weight
    /// first, in `[out, in, kh, kw]` order, then the bias). Fails, naming the layer,
    /// where the geometry cannot work (a size, stride or dilation of 0, a kernel
    /// larger than the padded image).
    pub fn new(
        backend: &B,
        spec: Conv2dSpec,
        input: (usize, usize),
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (weight, bound) = Self::draw_weight(spec, input, true, rng)?;
        let bias = Tensor::new(
            &[spec.out_channels],
            (0..spec.out_channels)
                .map(|_| rng.random_range(-bound..bound))
                .collect(),
        )?;
        Self::from_tensors(backend, spec, input, &weight, &bias)
    }

    /// A layer without a bias, as PyTorch's `nn.Conv2d(..., bias=False)`: the weight
    /// drawn as [`Conv2d::new`] draws it (the same values from the same `rng`), no
    /// bias drawn. Its only parameter is `weight`. Fails as [`Conv2d::new`].
    pub fn without_bias(
        backend: &B,
        spec: Conv2dSpec,
        input: (usize, usize),
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (weight, _) = Self::draw_weight(spec, input, false, rng)?;
        Self::from_weight(backend, spec, input, &weight)
    }

    /// PyTorch's initial weight for `spec` (uniform in ±1/√(C·kh·kw), in
    /// `[out, in, kh, kw]` order) and the bound, after checking the geometry.
    fn draw_weight(
        spec: Conv2dSpec,
        input: (usize, usize),
        has_bias: bool,
        rng: &mut impl Rng,
    ) -> Result<(Tensor, f32)> {
        let geometry = Conv2dGeometry::new(&layer_name(&spec, has_bias), &spec, 1, input)?;
        let bound = 1.0 / (geometry.im2col_depth() as f32).sqrt();
        let (kh, kw) = spec.kernel;
        let shape = [spec.out_channels, spec.in_channels, kh, kw];
        let values = (0..geometry.weight_len())
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok((Tensor::new(&shape, values)?, bound))
    }

    /// A layer with the given `[out, in, kh, kw]` weight and `[out]` bias, whose sizes
    /// must match `spec`.
    pub fn from_tensors(
        backend: &B,
        spec: Conv2dSpec,
        input: (usize, usize),
        weight: &Tensor,
        bias: &Tensor,
    ) -> Result<Self> {
        Self::build(backend, spec, input, weight, Some(bias))
    }

    /// A layer without a bias with the given `[out, in, kh, kw]` weight, whose size
    /// must match `spec`.
    pub fn from_weight(
        backend: &B,
        spec: Conv2dSpec,
        input: (usize, usize),
        weight: &Tensor,
    ) -> Result<Self> {
        Self::build(backend, spec, input, weight, None)
    }

    /// A layer from its weight and, where it has one, its bias.
    fn build(
        backend: &B,
        spec: Conv2dSpec,
        input: (usize, usize),
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Self> {
        let name = layer_name(&spec, bias.is_some());
        let geometry = Conv2dGeometry::new(&name, &spec, 1, input)?;
        let (kh, kw) = spec.kernel;
        let want = [spec.out_channels, spec.in_channels, kh, kw];
        let has_bias = bias.is_some();
        let zeros = Tensor::zeros(&[spec.out_channels]);
        let bias = bias.unwrap_or(&zeros);
        if weight.shape() != want || bias.shape() != [spec.out_channels] {
            return Err(Error::shape(
                name,
                format!(
                    "weight must be {want:?} and bias [{}], got {:?} and {:?}",
                    spec.out_channels,
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        for (what, t) in [("weight", weight), ("bias", bias)] {
            if let Some(i) = t.data().iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "{name}: {what} element {i} is {}",
                    t.data()[i]
                )));
            }
        }
        let depth = geometry.im2col_depth();
        let weight = backend.upload(&Tensor::new(
            &[spec.out_channels, depth],
            weight.data().to_vec(),
        )?)?;
        Ok(Conv2d {
            geometry,
            weight,
            bias: backend.upload(bias)?,
            weight_grad: backend.alloc(spec.out_channels, depth)?,
            bias_grad: backend.alloc(1, spec.out_channels)?,
            has_bias,
            input: None,
            output: Scratch::new(),
            output_view: None,
            grad_input: Scratch::new(),
            grad_input_view: None,
            grad_mode: GradMode::Accumulate,
            input_grad: true,
        })
    }

    /// The layer's configuration.
    pub fn spec(&self) -> Conv2dSpec {
        self.geometry.spec()
    }

    /// The geometry for one image (input and output sizes, taps).
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geometry
    }

    /// The output image shape `(O, OH, OW)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.geometry.output_size();
        (self.geometry.out_channels(), h, w)
    }

    /// The weight, `O × C·kh·kw` (PyTorch's `[O, C, kh, kw]`, row-major).
    pub fn weight(&self) -> &DeviceTensor<B> {
        &self.weight
    }

    /// The bias, a `1 × O` row; `None` for a layer without one.
    pub fn bias(&self) -> Option<&DeviceTensor<B>> {
        self.has_bias.then_some(&self.bias)
    }

    /// The geometry of a batch of `rows` images.
    fn batch_geometry(&self, rows: usize) -> Result<Conv2dGeometry> {
        self.geometry.with_batch("Conv2d", rows)
    }
}

impl<B: Backend> Module<B> for Conv2d<B> {
    fn name(&self) -> String {
        layer_name(&self.geometry.spec(), self.has_bias)
    }

    fn widths(&self) -> Option<(usize, usize)> {
        Some((
            self.geometry.input_sample_len(),
            self.geometry.output_sample_len(),
        ))
    }

    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let width = self.geometry.input_sample_len();
        if input.cols() != width || input.rows() == 0 {
            let (h, w) = self.geometry.input_size();
            return Err(Error::shape(
                self.name(),
                format!(
                    "expected rows of {width} values ({}×{h}×{w} images), got a {}×{} input",
                    self.geometry.in_channels(),
                    input.rows(),
                    input.cols()
                ),
            ));
        }
        let g = self.batch_geometry(input.rows())?;
        let y = self
            .output
            .get(backend, input.rows(), g.output_sample_len())?;
        backend.conv2d_forward(&g, input, &self.weight, &self.bias, &y)?;
        self.input = Some(input.clone());
        Ok(self.output_view.insert(y))
    }

    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let Some(x) = &self.input else {
            return Err(Error::InvalidArgument(format!(
                "{}: backward called before forward",
                self.name()
            )));
        };
        let g = self.batch_geometry(x.rows())?;
        if grad_output.shape() != [x.rows(), g.output_sample_len()] {
            return Err(Error::shape(
                self.name(),
                format!(
                    "output gradient should be {}×{}, got {}×{}",
                    x.rows(),
                    g.output_sample_len(),
                    grad_output.rows(),
                    grad_output.cols()
                ),
            ));
        }
        let dx = self
            .grad_input
            .get(backend, x.rows(), g.input_sample_len())?;
        backend.conv2d_backward(
            &g,
            x,
            &self.weight,
            grad_output,
            self.input_grad.then_some(&dx),
            &self.weight_grad,
            &self.bias_grad,
            self.grad_mode,
        )?;
        Ok(self.grad_input_view.insert(dx))
    }

    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        let spec = self.geometry.spec();
        let mut parameters = vec![Parameter {
            name: "weight".into(),
            shape: vec![
                spec.out_channels,
                spec.in_channels,
                spec.kernel.0,
                spec.kernel.1,
            ],
            value: &self.weight,
            grad: &self.weight_grad,
        }];
        if self.has_bias {
            parameters.push(Parameter {
                name: "bias".into(),
                shape: vec![spec.out_channels],
                value: &self.bias,
                grad: &self.bias_grad,
            });
        }
        parameters
    }

    fn set_grad_mode(&mut self, mode: GradMode) -> bool {
        self.grad_mode = mode;
        true
    }

    fn set_input_grad(&mut self, needed: bool) -> bool {
        self.input_grad = needed;
        !needed
    }

    fn zero_grad(&self, backend: &B) -> Result<()> {
        backend.zero(&self.weight_grad)?;
        backend.zero(&self.bias_grad)
    }
}
