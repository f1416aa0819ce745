//! The [`Module`] trait: a layer with its own `forward` and `backward` (no autograd),
//! written once over any [`Backend`].

use crate::backend::{Act, Backend, DeviceTensor, GradMode, Ops};
use crate::error::Result;

/// A trainable parameter and its accumulated gradient, both on the backend.
pub struct Parameter<'a, B: Backend> {
    /// The name in a PyTorch-style state dict (`"weight"`, `"0.bias"`, ...).
    pub name: String,
    /// The shape in a PyTorch state dict (`[out, in]` for a linear weight, `[out]` for
    /// its bias, which `value` holds as a `1 × out` row); its product is
    /// `value.len()`.
    pub shape: Vec<usize>,
    /// The values.
    pub value: &'a DeviceTensor<B>,
    /// The gradient, accumulated by `backward` until [`Module::zero_grad`].
    pub grad: &'a DeviceTensor<B>,
}

/// What a layer is, as far as a trainer that fuses known layers needs to know
/// (see [`crate::train::mlp_spec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// A fully connected layer whose parameters are its `[out, in]` weight, then its
    /// `1 × out` bias.
    Linear {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
    },
    /// A parameter-free elementwise activation.
    Activation(Act),
    /// Anything else.
    Other,
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

    /// The layers this module is made of, in order (a single layer describes itself).
    fn kinds(&self) -> Vec<LayerKind> {
        vec![LayerKind::Other]
    }

    /// [`Module::forward`] followed by the activation `act`, in one op where the layer
    /// can fuse it (a `Linear`); `None`, having done nothing, where it cannot. A
    /// `Sequential` uses it for a layer followed by an activation layer.
    fn forward_with_activation(
        &mut self,
        _backend: &B,
        _input: &DeviceTensor<B>,
        _act: Act,
    ) -> Result<Option<&DeviceTensor<B>>> {
        Ok(None)
    }

    /// The backward of the last [`Module::forward_with_activation`]: `grad_output` is the
    /// gradient with respect to the activation's output.
    fn backward_with_activation(
        &mut self,
        _backend: &B,
        _grad_output: &DeviceTensor<B>,
        _act: Act,
    ) -> Result<Option<&DeviceTensor<B>>> {
        Ok(None)
    }

    /// The trainable parameters, in a stable order.
    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        Vec::new()
    }

    /// Sets whether [`Module::backward`] adds the parameter gradients it computes to
    /// what they hold ([`GradMode::Accumulate`], the default, as PyTorch) or writes over
    /// them ([`GradMode::Overwrite`]: a loop with one backward per step then needs no
    /// [`Module::zero_grad`]). Returns whether the module now works in `mode`. The
    /// default, for modules without the choice, takes `Overwrite` only where there are
    /// no parameters.
    fn set_grad_mode(&mut self, mode: GradMode) -> bool {
        mode == GradMode::Accumulate || self.parameters().is_empty()
    }

    /// Sets whether [`Module::backward`] computes the gradient with respect to the
    /// input (the default). A training loop that discards the network's input gradient
    /// turns it off, which spares the first layer a matrix product; `backward` then
    /// returns a tensor of the right shape whose values are unspecified. Returns
    /// whether the module now skips it; the default, for modules without the choice,
    /// never does.
    fn set_input_grad(&mut self, needed: bool) -> bool {
        let _ = needed;
        false
    }

    /// Sets every parameter gradient to zero. The default asks [`Module::parameters`];
    /// layers override it to clear their gradients without building that list (a
    /// training step calls it and allocates nothing).
    fn zero_grad(&self, backend: &B) -> Result<()> {
        for p in self.parameters() {
            backend.zero(p.grad)?;
        }
        Ok(())
    }
}
