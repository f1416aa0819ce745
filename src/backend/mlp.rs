//! The description of a narrow multi-layer perceptron that a backend can train a
//! whole epoch of in one op ([`MlpTrainer::mlp_epoch`](super::MlpTrainer::mlp_epoch)):
//! its layers, the activation after each, the packed parameter layout, and the loss
//! and update rule of an epoch.

use crate::backend::{Act, LossKind, Reduction, UpdateRule};
use crate::error::{Error, Result};

/// One linear layer of an [`MlpSpec`] and the activation that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MlpLayer {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// The activation applied to the layer's output.
    pub act: Act,
}

/// A chain of linear layers with activations.
///
/// Its parameters travel packed in one tensor, layer by layer: the `[out, in]` weight
/// row by row, then the bias (the order of a `Sequential`'s parameters); after the
/// `P` parameters, the update rule's state (see [`UpdateRule::packed_len`] and
/// [`StateLayout`](crate::backend::StateLayout)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MlpSpec {
    layers: Vec<MlpLayer>,
}

impl MlpSpec {
    /// A spec of `layers`; fails when there are none, when a width is 0, or when a
    /// layer's input width is not the previous layer's output width.
    pub fn new(layers: Vec<MlpLayer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::InvalidArgument(
                "an MLP needs at least one layer".into(),
            ));
        }
        for (i, l) in layers.iter().enumerate() {
            if l.inputs == 0 || l.outputs == 0 {
                return Err(Error::InvalidArgument(format!(
                    "MLP layer {i} is {}→{}: widths must be at least 1",
                    l.inputs, l.outputs
                )));
            }
            if i > 0 && layers[i - 1].outputs != l.inputs {
                return Err(Error::shape(
                    "MlpSpec",
                    format!(
                        "layer {} outputs width {} but layer {i} takes width {}",
                        i - 1,
                        layers[i - 1].outputs,
                        l.inputs
                    ),
                ));
            }
        }
        Ok(MlpSpec { layers })
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[MlpLayer] {
        &self.layers
    }

    /// The input width of the first layer.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// The output width of the last layer.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// The widest layer input or output.
    pub fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.inputs.max(l.outputs))
            .max()
            .unwrap_or(0)
    }

    /// Element offsets of each layer's weight and bias in the packed parameters.
    pub fn offsets(&self) -> Vec<(usize, usize)> {
        let mut at = 0;
        self.layers
            .iter()
            .map(|l| {
                let w = at;
                at += l.outputs * l.inputs;
                let b = at;
                at += l.outputs;
                (w, b)
            })
            .collect()
    }

    /// How many `f32`s the packed parameters hold.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.outputs * (l.inputs + 1)).sum()
    }

    /// Σ of the layers' output widths: the activations one row of a batch produces.
    pub fn activation_width(&self) -> usize {
        self.layers.iter().map(|l| l.outputs).sum()
    }
}

/// The packed tensor of an update rule for an MLP.
impl UpdateRule {
    /// How many `f32`s the packed tensor holds for `spec` with this rule: the `P`
    /// parameters, then the rule's state laid out as for one parameter of `P` values
    /// ([`UpdateRule::state`]): [`UpdateRule::state_rows`] rows of `P` state values laid
    /// out as the parameters, and for Adam the two bias corrections.
    pub fn packed_len(&self, spec: &MlpSpec) -> usize {
        let count = spec.param_count();
        count + self.state().len(count)
    }
}

/// What one epoch of [`MlpTrainer::mlp_epoch`](super::MlpTrainer::mlp_epoch) trains
/// with: batch size, loss and its reduction, update rule and hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpRecipe {
    /// Rows per mini-batch (the last one may be smaller).
    pub batch_size: usize,
    /// The loss: MSE against targets of the output's width, or cross-entropy against
    /// one class index per row.
    pub loss: LossKind,
    /// How the loss is reduced.
    pub reduction: Reduction,
    /// The update rule and its hyperparameters.
    pub rule: UpdateRule,
}

impl MlpRecipe {
    /// Plain SGD with learning rate `lr` on the MSE loss reduced by `reduction`.
    pub fn sgd_mse(batch_size: usize, lr: f32, reduction: Reduction) -> Self {
        MlpRecipe {
            batch_size,
            loss: LossKind::Mse,
            reduction,
            rule: UpdateRule::Sgd { lr },
        }
    }

    /// The factor of the loss of a batch of `rows` rows and `outputs` outputs, and
    /// the factor of its gradient (MSE's `2 (p − t)`, cross-entropy's
    /// `softmax − onehot`), as the loss ops compute them.
    pub fn loss_factors(&self, rows: usize, outputs: usize) -> (f32, f32) {
        match self.loss {
            LossKind::Mse => (
                self.reduction.loss_scale(rows * outputs),
                self.reduction.mse_grad_scale(rows * outputs),
            ),
            LossKind::CrossEntropy => (
                self.reduction.loss_scale(rows),
                self.reduction.loss_scale(rows),
            ),
        }
    }

    /// The width of a row of targets for `spec`: the outputs for MSE, one class index
    /// for cross-entropy.
    pub fn target_width(&self, spec: &MlpSpec) -> usize {
        match self.loss {
            LossKind::Mse => spec.outputs(),
            LossKind::CrossEntropy => 1,
        }
    }
}
