//! The hyperparameters the optimizer ops ([`Ops::momentum_step`] and
//! [`Ops::adam_step`]) take, as PyTorch's `torch.optim.SGD` and `torch.optim.Adam`
//! name them.
//!
//! [`Ops::momentum_step`]: crate::Ops::momentum_step
//! [`Ops::adam_step`]: crate::Ops::adam_step

use crate::error::{Error, Result};

/// One step of SGD with momentum, Nesterov momentum and weight decay (PyTorch's `SGD`
/// with `dampening = 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MomentumStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 for none).
    pub momentum: f32,
    /// L2 penalty added to the gradient: `g = grad + weight_decay · param`.
    pub weight_decay: f32,
    /// Nesterov momentum: step along `g + momentum · velocity` instead of `velocity`.
    pub nesterov: bool,
}

/// One step of Adam (PyTorch's `Adam` with `amsgrad = False`, weight decay as an L2
/// penalty added to the gradient).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the running mean of the gradient (PyTorch's default 0.9).
    pub beta1: f32,
    /// Decay of the running mean of its square (PyTorch's default 0.999).
    pub beta2: f32,
    /// Added to the denominator for stability (PyTorch's default 1e-8).
    pub eps: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
}

/// `Ok` when `value` is finite and at least 0 (and above 0 where `positive`), else an
/// [`Error::InvalidArgument`] naming `what`.
pub(crate) fn check_non_negative(what: &str, value: f32, positive: bool) -> Result<()> {
    if value.is_finite() && value >= 0.0 && (!positive || value > 0.0) {
        return Ok(());
    }
    let want = if positive { "positive" } else { "non-negative" };
    Err(Error::InvalidArgument(format!(
        "{what} must be a {want} finite number, got {value}"
    )))
}

impl MomentumStep {
    /// Checks the hyperparameters: a positive learning rate; momentum and weight decay
    /// finite and non-negative; Nesterov only with momentum (as PyTorch requires).
    pub fn validate(&self) -> Result<()> {
        check_non_negative("learning rate", self.lr, true)?;
        check_non_negative("momentum", self.momentum, false)?;
        check_non_negative("weight decay", self.weight_decay, false)?;
        if self.nesterov && self.momentum == 0.0 {
            return Err(Error::InvalidArgument(
                "Nesterov momentum requires a momentum above 0".into(),
            ));
        }
        Ok(())
    }
}

impl AdamStep {
    /// PyTorch's defaults with learning rate `lr`: β = (0.9, 0.999), ε = 1e-8, no
    /// weight decay.
    pub fn with_lr(lr: f32) -> Self {
        AdamStep {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Checks the hyperparameters: a positive learning rate, betas in `[0, 1)`, ε and
    /// weight decay finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        check_non_negative("learning rate", self.lr, true)?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be in [0, 1), got {beta}"
                )));
            }
        }
        check_non_negative("eps", self.eps, false)?;
        check_non_negative("weight decay", self.weight_decay, false)
    }
}
