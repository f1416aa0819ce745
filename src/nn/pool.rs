//! `MaxPool2d`: max pooling over windows of images of a fixed size, as PyTorch's
//! `nn.MaxPool2d` (`dilation = 1`, `ceil_mode = False`); the gradient goes to the
//! first maximum of each window, as PyTorch's.

use super::module::Module;
use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Ops, Pool2dGeometry, Pool2dSpec};
use crate::error::{Error, Result};

/// Max pooling: input rows of `C·H·W` values, output rows of `C·OH·OW`.
pub struct MaxPool2d<B: Backend> {
    /// The geometry for one image.
    geometry: Pool2dGeometry,
    input: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad_input: Scratch<B>,
    grad_input_view: Option<DeviceTensor<B>>,
}

/// The name of a pooling layer, e.g. `MaxPool2d(2×2, stride (2, 2))`,
/// `MaxPool2d(3×3, stride (2, 2), padding (1, 1))`.
fn layer_name(kernel: (usize, usize), stride: (usize, usize), padding: (usize, usize)) -> String {
    let ((kh, kw), (sh, sw), (ph, pw)) = (kernel, stride, padding);
    let mut s = format!("MaxPool2d({kh}×{kw}, stride ({sh}, {sw})");
    if padding != (0, 0) {
        s.push_str(&format!(", padding ({ph}, {pw})"));
    }
    s + ")"
}

impl<B: Backend> MaxPool2d<B> {
    /// Pooling `spec` over images of `channels × input.0 × input.1`. Fails, naming the
    /// layer, where the window does not fit (see [`Pool2dGeometry::new`]).
    pub fn new(spec: Pool2dSpec, channels: usize, input: (usize, usize)) -> Result<Self> {
        let name = layer_name(spec.kernel, spec.stride, spec.padding);
        Ok(MaxPool2d {
            geometry: Pool2dGeometry::new(&name, &spec, 1, channels, input)?,
            input: None,
            output: Scratch::new(),
            output_view: None,
            grad_input: Scratch::new(),
            grad_input_view: None,
        })
    }

    /// The output image shape `(C, OH, OW)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.geometry.output_size();
        (self.geometry.channels(), h, w)
    }
}

impl<B: Backend> Module<B> for MaxPool2d<B> {
    fn name(&self) -> String {
        let g = &self.geometry;
        layer_name(g.kernel(), g.stride(), g.padding())
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
        let g = self.geometry.with_batch("MaxPool2d", input.rows())?;
        let y = self
            .output
            .get(backend, input.rows(), self.geometry.output_sample_len())?;
        backend.max_pool2d_forward(&g, input, &y)?;
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
        let g = self.geometry.with_batch("MaxPool2d", x.rows())?;
        let dx = self.grad_input.get(backend, x.rows(), x.cols())?;
        backend.max_pool2d_backward(&g, x, grad_output, &dx)?;
        Ok(self.grad_input_view.insert(dx))
    }
}
