//! Optimizers: they update a module's parameters from its accumulated gradients.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::nn::Module;

/// Plain stochastic gradient descent: `p -= lr · ∇p` for every parameter.
#[derive(Debug, Clone, Copy)]
pub struct Sgd {
    lr: f32,
}

impl Sgd {
    /// SGD with learning rate `lr`, which must be finite and positive.
    pub fn new(lr: f32) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "learning rate must be a positive finite number, got {lr}"
            )));
        }
        Ok(Sgd { lr })
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Applies one update to every parameter of `model`.
    pub fn step<B: Backend, M: Module<B> + ?Sized>(&self, backend: &B, model: &M) -> Result<()> {
        for p in model.parameters() {
            backend.sgd_step(p.value, p.grad, self.lr)?;
        }
        Ok(())
    }
}
