//! The fit loop's fully fused path: deciding, once per run, whether a model, loss and
//! optimizer have a fused form the backend's [`MlpTrainer`] takes, and moving the
//! parameters into and out of the packed tensor its epochs update.

use crate::backend::{
    Act, Backend, DeviceTensor, LossKind, MlpEpoch, MlpLayer, MlpSpec, MlpTrainer, Ops,
};
use crate::error::Result;
use crate::nn::{LayerKind, Loss, Module};
use crate::optim::Optimizer;

/// The [`MlpSpec`] of `model` when it is a chain of `Linear` layers, each followed by
/// at most one activation (and nothing else), whose parameters are the layers'
/// weights and biases in order; `None` otherwise.
pub fn mlp_spec<B: Backend, M: Module<B> + ?Sized>(model: &M) -> Option<MlpSpec> {
    let mut layers: Vec<MlpLayer> = Vec::new();
    let mut last_was_linear = false;
    for kind in model.kinds() {
        match kind {
            LayerKind::Linear { inputs, outputs } => {
                layers.push(MlpLayer {
                    inputs,
                    outputs,
                    act: Act::Identity,
                });
                last_was_linear = true;
            }
            LayerKind::Activation(act) if last_was_linear => {
                layers.last_mut().expect("after a linear layer").act = act;
                last_was_linear = false;
            }
            _ => return None,
        }
    }
    let spec = MlpSpec::new(layers).ok()?;
    let params = model.parameters();
    let expected = spec
        .layers()
        .iter()
        .flat_map(|l| [[l.outputs, l.inputs], [1, l.outputs]]);
    (params.len() == 2 * spec.layers().len()
        && params
            .iter()
            .zip(expected)
            .all(|(p, s)| p.value.shape() == s))
    .then_some(spec)
}

/// The fused form of a run: the backend's trainer, the spec and the epoch's
/// hyperparameters, and the model's parameters packed for it, with views of the packed
/// tensor shaped like each parameter.
pub(crate) struct Packed<'a, B: Backend> {
    pub trainer: &'a dyn MlpTrainer<B>,
    pub spec: MlpSpec,
    pub hyper: MlpEpoch,
    pub params: DeviceTensor<B>,
    views: Vec<DeviceTensor<B>>,
}

impl<'a, B: Backend> Packed<'a, B> {
    /// The fused form of training `model` with `loss` and `optimizer` in batches of
    /// `batch_size`, asked once: the model is an MLP ([`mlp_spec`]), the loss is MSE,
    /// the optimizer plain SGD, and the backend has a trainer that takes the spec.
    /// `None` where any of these fails. Its contents are undefined until
    /// [`Packed::pack`].
    pub fn plan<M, L, O>(
        backend: &'a B,
        model: &M,
        loss: &L,
        optimizer: &O,
        batch_size: usize,
    ) -> Result<Option<Self>>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        let (Some((LossKind::Mse, reduction)), Some(lr)) = (loss.kind(), optimizer.plain_sgd_lr())
        else {
            return Ok(None);
        };
        let (Some(spec), Some(trainer)) = (mlp_spec(model), backend.mlp_trainer()) else {
            return Ok(None);
        };
        if !trainer.mlp_fits(&spec, batch_size) {
            return Ok(None);
        }
        // Before the first epoch, whose time would otherwise include the build.
        trainer.prepare(&spec, batch_size)?;
        let params = backend.alloc(1, spec.param_count())?;
        let column = params.reshape(spec.param_count(), 1)?;
        let mut views = Vec::new();
        for (l, (w, b)) in spec.layers().iter().zip(spec.offsets()) {
            views.push(
                column
                    .slice_rows(w, l.outputs * l.inputs)?
                    .reshape(l.outputs, l.inputs)?,
            );
            views.push(column.slice_rows(b, l.outputs)?.reshape(1, l.outputs)?);
        }
        Ok(Some(Packed {
            trainer,
            spec,
            hyper: MlpEpoch {
                batch_size,
                lr,
                reduction,
            },
            params,
            views,
        }))
    }

    /// Copies the model's parameters into the packed tensor.
    pub fn pack<M: Module<B> + ?Sized>(&self, backend: &B, model: &M) -> Result<()> {
        for (p, view) in model.parameters().iter().zip(&self.views) {
            backend.copy(p.value, view)?;
        }
        Ok(())
    }

    /// Copies the packed tensor back into the model's parameters.
    pub fn unpack<M: Module<B> + ?Sized>(&self, backend: &B, model: &M) -> Result<()> {
        for (p, view) in model.parameters().iter().zip(&self.views) {
            backend.copy(view, p.value)?;
        }
        Ok(())
    }
}
