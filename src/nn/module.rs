//! The [`Module`] trait: a layer with its own `forward` and `backward` (no autograd),
//! written once over any [`Backend`].

use crate::backend::{Backend, DeviceTensor};
use crate::error::Result;

/// A trainable parameter and its accumulated gradient, both on the backend.
pub struct Parameter<'a, B: Backend> {
    /// The name in a PyTorch-style state dict (`"weight"`, `"0.bias"`, ...).
    pub name: String,
    /// The values.
    pub value: &'a DeviceTensor<B>,
    /// The gradient, accumulated by `backward` until [`Module::zero_grad`].
    pub grad: &'a DeviceTensor<B>,
}

/// A layer of a network. `forward` keeps what `backward` needs; `backward` takes the
/// gradient of the loss with respect to the last forward output, accumulates the
/// parameter gradients and returns the gradient with respect to the forward input.
/// Outputs are owned by the module and reused from step to step.
pub trait Module<B: Backend>: Send {
    /// A short description, e.g. `Linear(2→25)`, used in error messages.
    fn name(&self) -> String;

    /// `(in_features, out_features)` for layers with fixed widths; `None` for layers
    /// that keep the width of their input.
    fn widths(&self) -> Option<(usize, usize)>;

    /// Computes the output for a `batch × in_features` input.
    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>>;

    /// Back-propagates `grad_output` (shaped like the last output) through the layer.
    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>>;

    /// The trainable parameters, in a stable order.
    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        Vec::new()
    }

    /// Sets every parameter gradient to zero.
    fn zero_grad(&self, backend: &B) -> Result<()> {
        for p in self.parameters() {
            backend.zero(p.grad)?;
        }
        Ok(())
    }
}
