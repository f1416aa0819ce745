//! Optimizers: they update a model's parameters from its accumulated gradients, with
//! PyTorch's formulas and defaults. [`Sgd`] is plain SGD or SGD with momentum,
//! Nesterov momentum and weight decay; [`Adam`] is Adam with bias correction.
//!
//! An optimizer's state (velocities, running moments) lives on the backend, one tensor
//! per parameter, allocated by [`Optimizer::prepare`] or on the first step.

pub use crate::backend::{AdamStep, MomentumStep};
pub use crate::schedule::{LrSchedule, Schedule};

use crate::backend::{Backend, BufferHandle, DeviceTensor, Ops, StateLayout, UpdateRule};
use crate::error::{Error, Result};
use crate::nn::Parameter;

/// An update rule for a model's parameters.
pub trait Optimizer<B: Backend>: Send {
    /// Applies one update to each of `params` (a model's
    /// [`Module::parameters`](crate::nn::Module::parameters), always in the same order)
    /// from its accumulated gradient.
    fn step(&mut self, backend: &B, params: &[Parameter<'_, B>]) -> Result<()>;

    /// Allocates the state for `params` now instead of on the first step (so that
    /// [`Optimizer::state`] is complete before training starts).
    fn prepare(&mut self, _backend: &B, _params: &[Parameter<'_, B>]) -> Result<()> {
        Ok(())
    }

    /// The tensors holding the optimizer's state, for a caller that saves and restores
    /// it (empty for a stateless optimizer or before [`Optimizer::prepare`]).
    fn state(&self) -> Vec<&DeviceTensor<B>> {
        Vec::new()
    }

    /// The learning rate the next steps use.
    fn lr(&self) -> f32;

    /// Sets the learning rate of the next steps (a schedule's rate for an epoch); the
    /// other hyperparameters and the state stay.
    fn set_lr(&mut self, lr: f32) -> Result<()>;

    /// The update rule with its current hyperparameters, when the fully fused trainers
    /// ([`MlpTrainer`](crate::backend::MlpTrainer)) implement it; `None` (the default)
    /// keeps a model trained with this optimizer on the step-by-step path. Where it is
    /// not plain SGD, [`Optimizer::state`] holds the rule's state as the fused trainer
    /// packs it: one tensor per parameter, laid out as [`UpdateRule::state`] says.
    fn update_rule(&self) -> Option<UpdateRule> {
        None
    }
}

/// One state tensor per parameter, each `shape(param)` and zero to begin with, bound
/// to the parameters it was made for (their buffers and offsets).
struct PerParameter<B: Backend> {
    tensors: Vec<DeviceTensor<B>>,
    owners: Vec<(u64, usize)>,
}

/// Where a parameter's values live: its buffer and offset.
fn place<B: Backend>(p: &Parameter<'_, B>) -> (u64, usize) {
    (p.value.buffer().id(), p.value.offset())
}

impl<B: Backend> PerParameter<B> {
    fn new() -> Self {
        PerParameter {
            tensors: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// Allocates the tensors on first use; afterwards checks that `params` are the
    /// ones they were made for.
    fn ensure(
        &mut self,
        backend: &B,
        params: &[Parameter<'_, B>],
        shape: impl Fn(&DeviceTensor<B>) -> [usize; 2],
    ) -> Result<()> {
        if self.tensors.is_empty() {
            for p in params {
                let [rows, cols] = shape(p.value);
                self.tensors.push(backend.alloc(rows, cols)?);
                self.owners.push(place(p));
            }
            return Ok(());
        }
        if self.tensors.len() != params.len()
            || params
                .iter()
                .zip(&self.tensors)
                .any(|(p, t)| shape(p.value) != t.shape())
        {
            return Err(Error::InvalidArgument(format!(
                "the optimizer's state was made for {} parameters of other shapes than the {} given: use one optimizer per model",
                self.tensors.len(),
                params.len()
            )));
        }
        if let Some(i) = params
            .iter()
            .zip(&self.owners)
            .position(|(p, owner)| place(p) != *owner)
        {
            return Err(Error::InvalidArgument(format!(
                "the optimizer's state was made for another model's parameters (parameter {i}, {:?}, is not the one it was made for): use one optimizer per model",
                params[i].name
            )));
        }
        Ok(())
    }
}

/// Stochastic gradient descent, as PyTorch's `torch.optim.SGD` with `dampening = 0`:
/// plain (`p −= lr · ∇p`) by default, with momentum, Nesterov momentum and weight decay
/// through [`Sgd::with`].
pub struct Sgd<B: Backend> {
    hyper: MomentumStep,
    velocity: PerParameter<B>,
}

impl<B: Backend> Sgd<B> {
    /// Plain SGD with learning rate `lr`, which must be finite and positive.
    pub fn new(lr: f32) -> Result<Self> {
        Self::with(MomentumStep {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        })
    }

    /// SGD with the given momentum, Nesterov flag and weight decay (see
    /// [`MomentumStep::validate`] for what is accepted).
    pub fn with(hyper: MomentumStep) -> Result<Self> {
        hyper.validate()?;
        Ok(Sgd {
            hyper,
            velocity: PerParameter::new(),
        })
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.hyper.lr
    }

    /// The hyperparameters.
    pub fn hyper(&self) -> &MomentumStep {
        &self.hyper
    }

    fn is_plain(&self) -> bool {
        self.hyper.momentum == 0.0 && self.hyper.weight_decay == 0.0
    }
}

impl<B: Backend> Optimizer<B> for Sgd<B> {
    fn lr(&self) -> f32 {
        self.hyper.lr
    }

    fn set_lr(&mut self, lr: f32) -> Result<()> {
        let hyper = MomentumStep { lr, ..self.hyper };
        hyper.validate()?;
        self.hyper = hyper;
        Ok(())
    }

    fn step(&mut self, backend: &B, params: &[Parameter<'_, B>]) -> Result<()> {
        if self.is_plain() {
            for p in params {
                backend.sgd_step(p.value, p.grad, self.hyper.lr)?;
            }
            return Ok(());
        }
        self.prepare(backend, params)?;
        for (p, v) in params.iter().zip(&self.velocity.tensors) {
            backend.momentum_step(p.value, p.grad, v, &self.hyper)?;
        }
        Ok(())
    }

    fn prepare(&mut self, backend: &B, params: &[Parameter<'_, B>]) -> Result<()> {
        if self.is_plain() {
            return Ok(());
        }
        self.velocity.ensure(backend, params, |p| p.shape())
    }

    fn state(&self) -> Vec<&DeviceTensor<B>> {
        self.velocity.tensors.iter().collect()
    }

    fn update_rule(&self) -> Option<UpdateRule> {
        Some(match self.is_plain() {
            true => UpdateRule::Sgd { lr: self.hyper.lr },
            false => UpdateRule::Momentum(self.hyper),
        })
    }
}

/// Adam, as PyTorch's `torch.optim.Adam` (`amsgrad = False`, weight decay as an L2
/// penalty): running means of the gradient and of its square with bias correction.
/// Each parameter's state is one `1 × len` tensor laid out as [`StateLayout::ADAM`]
/// says: `[m | v | 1 − β₁ᵗ | 1 − β₂ᵗ]`.
pub struct Adam<B: Backend> {
    hyper: AdamStep,
    state: PerParameter<B>,
}

impl<B: Backend> Adam<B> {
    /// Adam with learning rate `lr` and PyTorch's defaults: β = (0.9, 0.999),
    /// ε = 1e-8, no weight decay.
    pub fn new(lr: f32) -> Result<Self> {
        Self::with(AdamStep::with_lr(lr))
    }

    /// Adam with the given hyperparameters (see [`AdamStep::validate`]).
    pub fn with(hyper: AdamStep) -> Result<Self> {
        hyper.validate()?;
        Ok(Adam {
            hyper,
            state: PerParameter::new(),
        })
    }

    /// The hyperparameters.
    pub fn hyper(&self) -> &AdamStep {
        &self.hyper
    }
}

impl<B: Backend> Optimizer<B> for Adam<B> {
    fn lr(&self) -> f32 {
        self.hyper.lr
    }

    fn set_lr(&mut self, lr: f32) -> Result<()> {
        let hyper = AdamStep { lr, ..self.hyper };
        hyper.validate()?;
        self.hyper = hyper;
        Ok(())
    }

    fn step(&mut self, backend: &B, params: &[Parameter<'_, B>]) -> Result<()> {
        self.prepare(backend, params)?;
        for (p, s) in params.iter().zip(&self.state.tensors) {
            backend.adam_step(p.value, p.grad, s, &self.hyper)?;
        }
        Ok(())
    }

    fn prepare(&mut self, backend: &B, params: &[Parameter<'_, B>]) -> Result<()> {
        self.state
            .ensure(backend, params, |p| [1, StateLayout::ADAM.len(p.len())])
    }

    fn state(&self) -> Vec<&DeviceTensor<B>> {
        self.state.tensors.iter().collect()
    }

    fn update_rule(&self) -> Option<UpdateRule> {
        Some(UpdateRule::Adam(self.hyper))
    }
}
