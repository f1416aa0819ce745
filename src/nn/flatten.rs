//! `Flatten`: PyTorch's `nn.Flatten` for minidl's layout. A batch of images is already
//! stored one image per row in (C, H, W) order, which is exactly what PyTorch's
//! flattening gives, so the layer passes its input and gradient through unchanged; it
//! exists so that a model reads, and its layers are numbered, as PyTorch's.

use super::module::Module;
use crate::backend::{Backend, DeviceTensor};
use crate::error::Result;

/// The identity on minidl's `N × C·H·W` rows, in PyTorch's place for `nn.Flatten`.
pub struct Flatten<B: Backend> {
    input: Option<DeviceTensor<B>>,
    grad: Option<DeviceTensor<B>>,
}

impl<B: Backend> Flatten<B> {
    /// The layer.
    pub fn new() -> Self {
        Flatten {
            input: None,
            grad: None,
        }
    }
}

impl<B: Backend> Default for Flatten<B> {
    fn default() -> Self {
        Flatten::new()
    }
}

impl<B: Backend> Module<B> for Flatten<B> {
    fn name(&self) -> String {
        "Flatten".into()
    }

    fn widths(&self) -> Option<(usize, usize)> {
        None
    }

    fn forward(&mut self, _backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        Ok(self.input.insert(input.clone()))
    }

    fn backward(
        &mut self,
        _backend: &B,
        grad_output: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>> {
        Ok(self.grad.insert(grad_output.clone()))
    }
}
