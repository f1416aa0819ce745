//! Losses: the [`Loss`] trait, and one [`Reduced`] loss per [`LossFunction`]:
//! [`MseLoss`] (PyTorch's `MSELoss`) and [`CrossEntropyLoss`] (PyTorch's
//! `CrossEntropyLoss` on class indices, softmax and negative log-likelihood fused).

use std::marker::PhantomData;

use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor, LossKind, Ops, Reduction};
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

    /// The backend's loss family member and reduction this loss computes, when it is
    /// one of them (a trainer that fuses known losses asks this); `None` for any other
    /// loss.
    fn kind(&self) -> Option<(LossKind, Reduction)> {
        None
    }

    /// The loss as a number: computes it into a fresh slot and waits for it.
    fn value(&self, backend: &B, pred: &DeviceTensor<B>, target: &DeviceTensor<B>) -> Result<f32> {
        let out = backend.alloc(1, 1)?;
        self.forward(backend, pred, target, &out)?;
        Ok(backend.download(&out)?.data()[0])
    }
}

/// What a [`Reduced`] loss computes: its member of the loss family and its targets.
pub trait LossFunction: Send + 'static {
    /// The name in messages.
    const NAME: &'static str;
    /// The loss family member whose ops compute it.
    const KIND: LossKind;
    /// The targets for `data`.
    fn targets(data: &Dataset) -> Result<Tensor>;
}

/// Mean-squared error against one-hot targets ([`Dataset::targets`]); `Mean` divides
/// by the element count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mse;

impl LossFunction for Mse {
    const NAME: &'static str = "MSE";
    const KIND: LossKind = LossKind::Mse;
    fn targets(data: &Dataset) -> Result<Tensor> {
        Ok(data.targets().clone())
    }
}

/// Softmax cross-entropy of raw scores (logits) against class indices: per row,
/// `ln Σ_j e^(z_j) − z_label`, computed with the stable log-sum-exp; `Mean` divides
/// by the number of rows. Its targets are the labels as one `n × 1` column of floats
/// ([`Dataset::class_indices`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossEntropy;

impl LossFunction for CrossEntropy {
    const NAME: &'static str = "cross-entropy";
    const KIND: LossKind = LossKind::CrossEntropy;
    fn targets(data: &Dataset) -> Result<Tensor> {
        data.class_indices()
    }
}

/// The loss function `F` with a reduction. The gradient is kept in a buffer reused
/// across steps.
pub struct Reduced<B: Backend, F: LossFunction> {
    reduction: Reduction,
    grad: Scratch<B>,
    grad_view: Option<DeviceTensor<B>>,
    function: PhantomData<F>,
}

/// PyTorch's `MSELoss`.
pub type MseLoss<B> = Reduced<B, Mse>;

/// PyTorch's `CrossEntropyLoss` on class indices.
pub type CrossEntropyLoss<B> = Reduced<B, CrossEntropy>;

impl<B: Backend, F: LossFunction> Reduced<B, F> {
    /// A loss with the given reduction.
    pub fn new(reduction: Reduction) -> Self {
        Reduced {
            reduction,
            grad: Scratch::new(),
            grad_view: None,
            function: PhantomData,
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

impl<B: Backend, F: LossFunction> Loss<B> for Reduced<B, F> {
    fn name(&self) -> &'static str {
        F::NAME
    }

    fn targets(&self, data: &Dataset) -> Result<Tensor> {
        F::targets(data)
    }

    fn forward(
        &self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
        out: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.loss(F::KIND, pred, target, self.reduction, out)
    }

    fn backward(
        &mut self,
        backend: &B,
        pred: &DeviceTensor<B>,
        target: &DeviceTensor<B>,
    ) -> Result<&DeviceTensor<B>> {
        let grad = self.grad.get(backend, pred.rows(), pred.cols())?;
        backend.loss_grad(F::KIND, pred, target, self.reduction, &grad)?;
        Ok(self.grad_view.insert(grad))
    }

    fn kind(&self) -> Option<(LossKind, Reduction)> {
        Some((F::KIND, self.reduction))
    }
}
