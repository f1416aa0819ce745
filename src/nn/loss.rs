//! The [`Loss`] trait and `MseLoss`, PyTorch's `MSELoss` with `Sum` or `Mean` reduction.

use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Reduction};
use crate::data::Dataset;
use crate::error::Result;
use crate::tensor::Tensor;

/// A loss function: its value into a device slot, and its gradient with respect to the
/// predictions. Each loss says which target tensor it compares predictions with.
pub trait Loss<B: Backend>: Send {
    /// A short name for messages (`"MSE"`, `"cross-entropy"`).
    fn name(&self) -> &'static str;

    /// The targets this loss compares predictions with, for every point of `data`:
    /// one-hot rows for [`MseLoss`], one class index per row for cross-entropy.
    fn targets(&self, data: &Dataset) -> Result<Tensor>;

    /// Writes the loss of `pred` against `target` into `out`, a `1 × 1` view (for
    /// instance one row of a per-epoch vector of batch losses).
    fn forward(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
        out: &DeviceTensor<B>,
    ) -> Result<()>;

    /// The gradient of the loss with respect to `pred`.
    fn backward(
        &mut self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>>;

    /// The reduction, when this is the MSE loss that [`Backend::mlp_epoch`] fuses;
    /// `None` for any other loss.
    fn fused_mse(&self) -> Option<Reduction> {
        None
    }

    /// The loss as a number: computes it into a fresh slot and waits for it.
    fn value(&self, backend: &B, pred: &DeviceTensor<B>, target: &DeviceTensor<B>) -> Result<f32> {
        let out = backend.alloc(1, 1)?;
        self.forward(backend, pred, target, &out)?;
        Ok(backend.download(&out)?.data()[0])
    }
}

/// Mean-squared-error loss against one-hot targets. The gradient is kept in a buffer
/// reused across steps.
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
}

impl<B: Backend> Loss<B> for MseLoss<B> {
    fn name(&self) -> &'static str {
        "MSE"
    }

    fn targets(&self, data: &Dataset) -> Result<Tensor> {
        Ok(data.targets().clone())
    }

    fn forward(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
        out: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.mse_loss(pred, target, self.reduction, out)
    }

    fn backward(
        &mut self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>> {
        let grad = self.grad.get(backend, pred.rows(), pred.cols())?;
        backend.mse_grad(pred, target, self.reduction, &grad)?;
        Ok(self.grad_view.insert(grad))
    }

    fn fused_mse(&self) -> Option<Reduction> {
        Some(self.reduction)
    }
}
