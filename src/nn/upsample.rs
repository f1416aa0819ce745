//! `NearestUpsampling`: nearest-neighbour upsampling of images of a fixed size by an
//! integer scale, as PyTorch's `nn.Upsample(scale_factor = s, mode = "nearest")`.

use super::module::Module;
use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Ops, UpsampleGeometry};
use crate::error::{Error, Result};

/// Upsampling: input rows of `C·H·W` values, output rows of `C·sH·sW`.
pub struct NearestUpsampling<B: Backend> {
    /// The geometry for one image.
    geometry: UpsampleGeometry,
    rows: usize,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad_input: Scratch<B>,
    grad_input_view: Option<DeviceTensor<B>>,
}

impl<B: Backend> NearestUpsampling<B> {
    /// Upsampling by `scale` of images of `channels × input.0 × input.1`. Fails on a
    /// scale, channel count or size of 0.
    pub fn new(scale: usize, channels: usize, input: (usize, usize)) -> Result<Self> {
        let name = format!("NearestUpsampling(×{scale})");
        Ok(NearestUpsampling {
            geometry: UpsampleGeometry::new(&name, 1, channels, input, scale)?,
            rows: 0,
            output: Scratch::new(),
            output_view: None,
            grad_input: Scratch::new(),
            grad_input_view: None,
        })
    }

    /// The output image shape `(C, sH, sW)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        let (h, w) = self.geometry.output_size();
        (self.geometry.channels(), h, w)
    }
}

impl<B: Backend> Module<B> for NearestUpsampling<B> {
    fn name(&self) -> String {
        format!("NearestUpsampling(×{})", self.geometry.scale())
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
        let g = self
            .geometry
            .with_batch("NearestUpsampling", input.rows())?;
        let y = self
            .output
            .get(backend, input.rows(), self.geometry.output_sample_len())?;
        backend.upsample_nearest_forward(&g, input, &y)?;
        self.rows = input.rows();
        Ok(self.output_view.insert(y))
    }

    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        if self.rows == 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: backward called before forward",
                self.name()
            )));
        }
        let g = self.geometry.with_batch("NearestUpsampling", self.rows)?;
        let dx = self
            .grad_input
            .get(backend, self.rows, self.geometry.input_sample_len())?;
        backend.upsample_nearest_backward(&g, grad_output, &dx)?;
        Ok(self.grad_input_view.insert(dx))
    }
}
