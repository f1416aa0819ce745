//! The hyperparameters the optimizer ops ([`Ops::momentum_step`] and
//! [`Ops::adam_step`]) take, as PyTorch's `torch.optim.SGD` and `torch.optim.Adam`
//! name them.
//!
//! [`Ops::momentum_step`]: crate::Ops::momentum_step
//! [`Ops::adam_step`]: crate::Ops::adam_step

use crate::backend::StateLayout;
use crate::error::{check_non_negative, Error, Result};

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

/// An update rule with its hyperparameters: one of the optimizers of
/// [`optim`](crate::optim), as the update ops compute it; what an optimizer hands the
/// whole-epoch trainer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpdateRule {
    /// Plain SGD with this learning rate: `p −= lr · ∇p`.
    Sgd {
        /// Learning rate.
        lr: f32,
    },
    /// SGD with momentum, Nesterov momentum and weight decay
    /// ([`Ops::momentum_step`](crate::Ops::momentum_step)); its state is one velocity
    /// per parameter.
    Momentum(MomentumStep),
    /// Adam ([`Ops::adam_step`](crate::Ops::adam_step)); its state
    /// ([`StateLayout::ADAM`]) is the two running moments per parameter and the two
    /// bias corrections `1 − β₁ᵗ`, `1 − β₂ᵗ`, which all parameters share (they take
    /// every step together).
    Adam(AdamStep),
}

impl UpdateRule {
    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            UpdateRule::Sgd { lr } => *lr,
            UpdateRule::Momentum(h) => h.lr,
            UpdateRule::Adam(h) => h.lr,
        }
    }

    /// The same rule with learning rate `lr` (a schedule's rate for an epoch).
    pub fn with_lr(self, lr: f32) -> Self {
        match self {
            UpdateRule::Sgd { .. } => UpdateRule::Sgd { lr },
            UpdateRule::Momentum(h) => UpdateRule::Momentum(MomentumStep { lr, ..h }),
            UpdateRule::Adam(h) => UpdateRule::Adam(AdamStep { lr, ..h }),
        }
    }

    /// The layout of the rule's state: of each parameter's state tensor in
    /// [`optim`](crate::optim), and of the state after the parameters in the packed
    /// tensor.
    pub fn state(&self) -> StateLayout {
        match self {
            UpdateRule::Sgd { .. } => StateLayout::SGD,
            UpdateRule::Momentum(_) => StateLayout::MOMENTUM,
            UpdateRule::Adam(_) => StateLayout::ADAM,
        }
    }

    /// Rows of per-parameter state after the parameters ([`StateLayout::rows`]): 0
    /// for SGD, 1 (the velocities) with momentum, 2 (the first and second moments)
    /// for Adam.
    pub fn state_rows(&self) -> usize {
        self.state().rows()
    }

    /// Checks the hyperparameters as the optimizers do, except that the learning rate
    /// may be 0 (a schedule's last rate may be) but must be finite.
    pub fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "mlp_epoch: learning rate must be finite and at least 0, got {lr}"
            )));
        }
        match self.with_lr(1.0) {
            UpdateRule::Sgd { .. } => Ok(()),
            UpdateRule::Momentum(h) => h.validate(),
            UpdateRule::Adam(h) => h.validate(),
        }
    }
}
