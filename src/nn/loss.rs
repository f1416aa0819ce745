//! `MseLoss`: PyTorch's `MSELoss` with `Sum` or `Mean` reduction.

use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Reduction};
use crate::error::Result;

/// Mean-squared-error loss. The value is written to a device slot (read back when the
/// caller chooses); the gradient is kept in a buffer reused across steps.
pub struct MseLoss<B: Backend> {
    reduction: Reduction,
    grad: Scratch<B>,
    grad_view: Option<DeviceTensor<B>>,
}

impl<B: Backend> MseLoss<B> {
    /// A loss with the given reduction.
    pub fn new(reduction: Reduction) -> Self {
        MseLoss {
            reduction,
            grad: Scratch::new(),
            grad_view: None,
        }
    }

    /// The reduction in use.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// Writes the loss of `pred` against `target` into `out`, a `1 × 1` view (for
    /// instance one row of a per-epoch vector of batch losses).
    pub fn forward(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
        out: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.mse_loss(pred, target, self.reduction, out)
    }

    /// The loss as a number: computes it into a fresh slot and waits for it.
    pub fn value(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<f32> {
        let out = backend.alloc(1, 1)?;
        self.forward(backend, pred, target, &out)?;
        Ok(backend.download(&out)?.data()[0])
    }

    /// The gradient of the loss with respect to `pred`.
    pub fn backward(
        &mut self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>> {
        let grad = self.grad.get(backend, pred.rows(), pred.cols())?;
        backend.mse_grad(pred, target, self.reduction, &grad)?;
        Ok(self.grad_view.insert(grad))
    }
}
