//! `CrossEntropyLoss`: PyTorch's `CrossEntropyLoss` on class indices, softmax and
//! negative log-likelihood fused in one op.

use super::loss::Loss;
use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, Reduction};
use crate::data::Dataset;
use crate::error::Result;
use crate::tensor::Tensor;

/// Softmax cross-entropy of raw scores (logits) against class indices: per row,
/// `ln Σ_j e^(z_j) − z_label`, computed with the stable log-sum-exp. `Mean` (PyTorch's
/// default) divides the sum by the number of rows. Its targets are the labels as one
/// `n × 1` column of floats ([`Dataset::class_indices`]).
pub struct CrossEntropyLoss<B: Backend> {
    reduction: Reduction,
    grad: Scratch<B>,
    grad_view: Option<DeviceTensor<B>>,
}

impl<B: Backend> CrossEntropyLoss<B> {
    /// A loss with the given reduction.
    pub fn new(reduction: Reduction) -> Self {
        CrossEntropyLoss {
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

impl<B: Backend> Default for CrossEntropyLoss<B> {
    /// PyTorch's default, the mean over the rows.
    fn default() -> Self {
        Self::new(Reduction::Mean)
    }
}

impl<B: Backend> Loss<B> for CrossEntropyLoss<B> {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn targets(&self, data: &Dataset) -> Result<Tensor> {
        Ok(data.class_indices())
    }

    fn forward(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
        out: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.cross_entropy_loss(pred, target, self.reduction, out)
    }

    fn backward(
        &mut self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>> {
        let grad = self.grad.get(backend, pred.rows(), pred.cols())?;
        backend.cross_entropy_grad(pred, target, self.reduction, &grad)?;
        Ok(self.grad_view.insert(grad))
    }
}
