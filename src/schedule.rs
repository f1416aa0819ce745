//! Learning-rate schedules, as PyTorch's `lr_scheduler` defines them, applied once per
//! epoch by [`fit`](crate::train::fit) to any optimizer, on the step-by-step and the
//! fused path alike.

use crate::error::{Error, Result};

/// How the learning rate changes from epoch to epoch after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LrSchedule {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// PyTorch's `CosineAnnealingLR` with `T_max` = the epochs after the warm-up:
    /// `η_t = η_min + (η − η_min)(1 + cos(π t / T_max)) / 2` at epoch `t` (from 0).
    Cosine {
        /// The rate at the end (`eta_min`).
        eta_min: f32,
    },
    /// PyTorch's `StepLR`: `η_t = η · γ^⌊t / step_size⌋`.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// The factor of each decay.
        gamma: f32,
    },
}

/// A schedule with an optional linear warm-up in front, as PyTorch's `SequentialLR` of
/// `LinearLR(start_factor = 1 / warmup, total_iters = warmup)` and the schedule, with
/// the milestone at `warmup`: epoch `t < warmup` trains at
/// `η (1 / warmup + (1 − 1 / warmup) t / warmup)`, and epoch `t ≥ warmup` at the
/// schedule's rate for epoch `t − warmup` of `epochs − warmup`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Schedule {
    /// The schedule after the warm-up.
    pub kind: LrSchedule,
    /// Epochs of linear warm-up (0 for none).
    pub warmup: usize,
}

impl Schedule {
    /// The constant rate, with no warm-up: the report's recipe.
    pub fn constant() -> Self {
        Schedule::default()
    }

    /// Checks the parameters: a finite, non-negative `eta_min`; a step size of at least
    /// 1 and a finite, non-negative `gamma`.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Cosine { eta_min } if eta_min.is_finite() && eta_min >= 0.0 => Ok(()),
            LrSchedule::Cosine { eta_min } => Err(Error::InvalidArgument(format!(
                "the cosine schedule's eta_min must be a non-negative finite number, got {eta_min}"
            ))),
            LrSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(Error::InvalidArgument(
                        "the step schedule's step size must be at least 1".into(),
                    ));
                }
                if !(gamma.is_finite() && gamma >= 0.0) {
                    return Err(Error::InvalidArgument(format!(
                        "the step schedule's gamma must be a non-negative finite number, got {gamma}"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The learning rate of epoch `epoch` (from 0) of `epochs`, for the base rate `lr`.
    pub fn lr(&self, lr: f32, epoch: usize, epochs: usize) -> f32 {
        let base = lr as f64;
        if epoch < self.warmup {
            let start = 1.0 / self.warmup as f64;
            return (base * (start + (1.0 - start) * epoch as f64 / self.warmup as f64)) as f32;
        }
        let t = (epoch - self.warmup) as f64;
        let rate = match self.kind {
            LrSchedule::Constant => base,
            LrSchedule::Cosine { eta_min } => {
                let t_max = epochs.saturating_sub(self.warmup).max(1) as f64;
                let eta_min = eta_min as f64;
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t / t_max).cos()) / 2.0
            }
            LrSchedule::Step { step_size, gamma } => {
                base * (gamma as f64).powi((t as usize / step_size.max(1)) as i32)
            }
        };
        rate as f32
    }
}
