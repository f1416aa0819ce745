//! The fit loop's fully fused path: deciding, once per run, whether a model, loss and
//! optimizer have a fused form the backend's [`MlpTrainer`] takes, and moving the
//! parameters into and out of the packed tensor its epochs update.

use crate::backend::{Act, Backend, DeviceTensor, MlpLayer, MlpRecipe, MlpSpec, MlpTrainer, Ops};
use crate::error::Result;
use crate::nn::{LayerKind, Loss, Module};
use crate::optim::Optimizer;
use crate::train::Fusion;

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

/// The fused form of a run, decided once: the backend's trainer, the spec and the
/// epoch's hyperparameters.
pub(crate) struct Form<'a, B: Backend> {
    pub trainer: &'a dyn MlpTrainer<B>,
    pub spec: MlpSpec,
    pub hyper: MlpRecipe,
}

impl<'a, B: Backend> Form<'a, B> {
    /// The fused form of training `model` with `loss` and `optimizer` in batches of
    /// `batch_size`: the model is an MLP ([`mlp_spec`]), the loss MSE or
    /// cross-entropy, the optimizer one whose rule the fused trainers run
    /// ([`Optimizer::update_rule`]), and the backend has a trainer that takes the spec,
    /// as `fusion` asks for a run of `steps` steps: not with [`Fusion::Never`], and
    /// with [`Fusion::Auto`] only where the trainer says the steps pay for its build
    /// ([`MlpTrainer::pays`]). `None` where any of these fails. Builds the trainer's
    /// kernel for it before the first epoch, whose time would otherwise include the
    /// build.
    pub fn of<M, L, O>(
        backend: &'a B,
        model: &M,
        loss: &L,
        optimizer: &O,
        batch_size: usize,
        (fusion, steps): (Fusion, usize),
    ) -> Result<Option<Self>>
    where
        M: Module<B> + ?Sized,
        L: Loss<B> + ?Sized,
        O: Optimizer<B> + ?Sized,
    {
        if fusion == Fusion::Never {
            return Ok(None);
        }
        let (Some((loss_kind, reduction)), Some(rule)) = (loss.kind(), optimizer.update_rule())
        else {
            return Ok(None);
        };
        let (Some(spec), Some(trainer)) = (mlp_spec(model), backend.mlp_trainer()) else {
            return Ok(None);
        };
        let hyper = MlpRecipe {
            batch_size,
            loss: loss_kind,
            reduction,
            rule,
        };
        if !trainer.mlp_fits(&spec, batch_size)
            || (fusion == Fusion::Auto && !trainer.pays(&spec, &hyper, steps))
        {
            return Ok(None);
        }
        trainer.prepare(&spec, &hyper)?;
        Ok(Some(Form {
            trainer,
            spec,
            hyper,
        }))
    }

    /// How many `f32`s the packed tensor holds ([`UpdateRule::packed_len`]).
    ///
    /// [`UpdateRule::packed_len`]: crate::backend::UpdateRule::packed_len
    pub fn packed_len(&self) -> usize {
        self.hyper.rule.packed_len(&self.spec)
    }

    /// Whether runs of this form and of `other` can train in one op: the same spec and
    /// the same hyperparameters but for the learning rate.
    pub fn alike(&self, other: &Self) -> bool {
        let without_lr = |epoch: &MlpRecipe| MlpRecipe {
            rule: epoch.rule.with_lr(0.0),
            ..*epoch
        };
        self.spec == other.spec && without_lr(&self.hyper) == without_lr(&other.hyper)
    }
}

/// A run's fused form with the model's parameters and the optimizer's state packed
/// for it, with views of the packed tensor shaped like each parameter and state
/// tensor.
pub(crate) struct Packed<'a, B: Backend> {
    pub trainer: &'a dyn MlpTrainer<B>,
    pub spec: MlpSpec,
    pub hyper: MlpRecipe,
    pub params: DeviceTensor<B>,
    /// Each parameter's view.
    views: Vec<DeviceTensor<B>>,
    state: Vec<StateView<B>>,
}

/// A part of an optimizer's state tensor and where it lives in the packed tensor.
struct StateView<B: Backend> {
    packed: DeviceTensor<B>,
    own: DeviceTensor<B>,
    /// The state's shared values (Adam's bias corrections), which every parameter's
    /// state holds a copy of.
    shared: bool,
}

impl<'a, B: Backend> Packed<'a, B> {
    /// `form` packed in `params` (`1 ×` [`Form::packed_len`]), with `optimizer`'s state
    /// (prepared) laid out as the form's rule says, or `None` where it is not. The
    /// contents of `params` are undefined until [`Packed::pack`].
    pub fn new<O: Optimizer<B> + ?Sized>(
        form: Form<'a, B>,
        optimizer: &O,
        params: DeviceTensor<B>,
    ) -> Result<Option<Self>> {
        let Form {
            trainer,
            spec,
            hyper,
        } = form;
        let count = spec.param_count();
        let column = params.reshape(params.cols(), 1)?;
        let mut views = Vec::new();
        for (l, (w, b)) in spec.layers().iter().zip(spec.offsets()) {
            views.push((w, l.outputs * l.inputs));
            views.push((b, l.outputs));
        }
        // Each state tensor laid out as the rule's state of its parameter, the packed
        // state as the rule's state of all `count` of them (see `StateLayout`): row r
        // of a parameter's state is row r of the packed state at the parameter's
        // offset; the shared values are every parameter's copy of the packed ones.
        let layout = hyper.rule.state();
        let tensors = optimizer.state();
        if tensors.len() != if layout.is_empty() { 0 } else { views.len() } {
            return Ok(None);
        }
        let mut state = Vec::new();
        for (t, &(at, len)) in tensors.iter().zip(&views) {
            if t.len() != layout.len(len) {
                return Ok(None);
            }
            let own = t.reshape(t.len(), 1)?;
            for r in 0..layout.rows() {
                state.push(StateView {
                    packed: column.slice_rows(count + layout.row(r, count).start + at, len)?,
                    own: own.slice_rows(layout.row(r, len).start, len)?,
                    shared: false,
                });
            }
            if layout.shared() > 0 {
                let (packed, own_values) = (layout.shared_values(count), layout.shared_values(len));
                state.push(StateView {
                    packed: column.slice_rows(count + packed.start, packed.len())?,
                    own: own.slice_rows(own_values.start, own_values.len())?,
                    shared: true,
                });
            }
        }
        let views = spec
            .layers()
            .iter()
            .flat_map(|l| [[l.outputs, l.inputs], [1, l.outputs]])
            .zip(&views)
            .map(|([r, c], &(at, len))| column.slice_rows(at, len)?.reshape(r, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Packed {
            trainer,
            spec,
            hyper,
            params,
            views,
            state,
        }))
    }

    /// Copies the model's parameters and the optimizer's state into the packed tensor
    /// (the state's shared values, Adam's bias corrections, from the first
    /// parameter's state).
    pub fn pack<M: Module<B> + ?Sized>(&self, backend: &B, model: &M) -> Result<()> {
        for (p, view) in model.parameters().iter().zip(&self.views) {
            backend.copy(p.value, view)?;
        }
        let mut shared_packed = false;
        for s in &self.state {
            if s.shared {
                if shared_packed {
                    continue;
                }
                shared_packed = true;
            }
            backend.copy(&s.own, &s.packed)?;
        }
        Ok(())
    }

    /// Copies the packed tensor back into the model's parameters and the optimizer's
    /// state.
    pub fn unpack<M: Module<B> + ?Sized>(&self, backend: &B, model: &M) -> Result<()> {
        for (p, view) in model.parameters().iter().zip(&self.views) {
            backend.copy(view, p.value)?;
        }
        for s in &self.state {
            backend.copy(&s.packed, &s.own)?;
        }
        Ok(())
    }
}
