//! The fit loop's fully fused path: recognising a model that [`Backend::mlp_epoch`]
//! can train, and moving its parameters into and out of the packed tensor that op
//! updates.

use crate::backend::{Backend, DeviceTensor, MlpLayer, MlpSpec};
use crate::error::Result;
use crate::nn::{LayerKind, Module};

/// The [`MlpSpec`] of `model` when it is a chain of `Linear` layers, each followed by
/// at most one ReLU or Tanh (and nothing else), whose parameters are the layers'
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
                    act: crate::backend::Act::Identity,
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

/// A model's parameters packed for [`Backend::mlp_epoch`], with views of the packed
/// tensor shaped like each parameter.
pub(crate) struct Packed<B: Backend> {
    pub spec: MlpSpec,
    pub params: DeviceTensor<B>,
    views: Vec<DeviceTensor<B>>,
}

impl<B: Backend> Packed<B> {
    /// The packed form of `model` when it qualifies and the backend can train its spec
    /// in batches of `batch_size`; its contents are undefined until [`Packed::pack`].
    pub fn plan<M: Module<B> + ?Sized>(
        backend: &B,
        model: &M,
        batch_size: usize,
    ) -> Result<Option<Self>> {
        let Some(spec) = mlp_spec(model) else {
            return Ok(None);
        };
        if !backend.mlp_fits(&spec, batch_size) {
            return Ok(None);
        }
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
            spec,
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
