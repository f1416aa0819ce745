//! The pooling layers over windows of images of a fixed size: `MaxPool2d`, as
//! PyTorch's `nn.MaxPool2d` (`dilation = 1`, `ceil_mode = False`; the gradient goes
//! to the first maximum of each window, as PyTorch's), and `AvgPool2d`, as PyTorch's
//! `nn.AvgPool2d` (`ceil_mode = False`, `count_include_pad = True`: each output is its
//! window's sum over `kh·kw`). Both share one geometry and one layer body.

use super::module::Module;
use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Ops, Pool2dGeometry, Pool2dSpec};
use crate::error::{Error, Result};

/// Which pooling a layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    /// The maximum of each window.
    Max,
    /// The mean of each window, padding included.
    Average,
}

impl PoolKind {
    /// PyTorch's name of the layer.
    fn layer(self) -> &'static str {
        match self {
            PoolKind::Max => "MaxPool2d",
            PoolKind::Average => "AvgPool2d",
        }
    }
}

/// The body both pooling layers share: the geometry, the saved input and the
/// buffers of the output and the input gradient.
struct Pooling<B: Backend> {
    kind: PoolKind,
    /// The geometry for one image.
    geometry: Pool2dGeometry,
    input: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad_input: Scratch<B>,
    grad_input_view: Option<DeviceTensor<B>>,
}

/// The name of a pooling layer, e.g. `MaxPool2d(2×2, stride (2, 2))`,
/// `AvgPool2d(3×3, stride (2, 2), padding (1, 1))`.
fn layer_name(
    kind: PoolKind,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> String {
    let ((kh, kw), (sh, sw), (ph, pw)) = (kernel, stride, padding);
    let mut s = format!("{}({kh}×{kw}, stride ({sh}, {sw})", kind.layer());
    if padding != (0, 0) {
        s.push_str(&format!(", padding ({ph}, {pw})"));
    }
    s + ")"
}

impl<B: Backend> Pooling<B> {
    fn new(
        kind: PoolKind,
        spec: Pool2dSpec,
        channels: usize,
        input: (usize, usize),
    ) -> Result<Self> {
        let name = layer_name(kind, spec.kernel, spec.stride, spec.padding);
        Ok(Pooling {
            kind,
            geometry: Pool2dGeometry::new(&name, &spec, 1, channels, input)?,
            input: None,
            output: Scratch::new(),
            output_view: None,
            grad_input: Scratch::new(),
            grad_input_view: None,
        })
    }

    fn output_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.geometry.output_size();
        (self.geometry.channels(), h, w)
    }

    fn name(&self) -> String {
        let g = &self.geometry;
        layer_name(self.kind, g.kernel(), g.stride(), g.padding())
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
            return Err(Error::shape(
                self.name(),
                format!(
                    "expected rows of {width} values, got a {}×{} input",
                    input.rows(),
                    input.cols()
                ),
            ));
        }
        let g = self.geometry.with_batch(self.kind.layer(), input.rows())?;
        let y = self
            .output
            .get(backend, input.rows(), self.geometry.output_sample_len())?;
        match self.kind {
            PoolKind::Max => backend.max_pool2d_forward(&g, input, &y)?,
            PoolKind::Average => backend.avg_pool2d_forward(&g, input, &y)?,
        }
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
        let g = self.geometry.with_batch(self.kind.layer(), x.rows())?;
        let dx = self.grad_input.get(backend, x.rows(), x.cols())?;
        match self.kind {
            PoolKind::Max => backend.max_pool2d_backward(&g, x, grad_output, &dx)?,
            PoolKind::Average => backend.avg_pool2d_backward(&g, grad_output, &dx)?,
        }
        Ok(self.grad_input_view.insert(dx))
    }
}

/// Max pooling: input rows of `C·H·W` values, output rows of `C·OH·OW`.
pub struct MaxPool2d<B: Backend>(Pooling<B>);

/// Average pooling (PyTorch's `nn.AvgPool2d` with its defaults): input rows of
/// `C·H·W` values, output rows of `C·OH·OW`, each output its window's sum over `kh·kw`.
pub struct AvgPool2d<B: Backend>(Pooling<B>);

impl<B: Backend> MaxPool2d<B> {
    /// Pooling `spec` over images of `channels × input.0 × input.1`. Fails, naming the
    /// layer, where the window does not fit (see [`Pool2dGeometry::new`]).
    pub fn new(spec: Pool2dSpec, channels: usize, input: (usize, usize)) -> Result<Self> {
        Pooling::new(PoolKind::Max, spec, channels, input).map(MaxPool2d)
    }

    /// The output image shape `(C, OH, OW)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        self.0.output_shape()
    }
}

impl<B: Backend> AvgPool2d<B> {
    /// Pooling `spec` over images of `channels × input.0 × input.1` (padding at most
    /// half the window, as PyTorch requires). Fails, naming the layer, where the window
    /// does not fit (see [`Pool2dGeometry::new`]).
    pub fn new(spec: Pool2dSpec, channels: usize, input: (usize, usize)) -> Result<Self> {
        Pooling::new(PoolKind::Average, spec, channels, input).map(AvgPool2d)
    }

    /// The output image shape `(C, OH, OW)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        self.0.output_shape()
    }
}

/// `Module` for a pooling layer: its body does the work.
macro_rules! pooling_module {
    ($layer:ident) => {
        impl<B: Backend> Module<B> for $layer<B> {
            fn name(&self) -> String {
                self.0.name()
            }

            fn widths(&self) -> Option<(usize, usize)> {
                self.0.widths()
            }

            fn forward(
                &mut self,
                backend: &B,
                input: &DeviceTensor<B>,
            ) -> Result<&DeviceTensor<B>> {
                self.0.forward(backend, input)
            }

            fn backward(
                &mut self,
                backend: &B,
                grad_output: &DeviceTensor<B>,
            ) -> Result<&DeviceTensor<B>> {
                self.0.backward(backend, grad_output)
            }
        }
    };
}

pooling_module!(MaxPool2d);
pooling_module!(AvgPool2d);
