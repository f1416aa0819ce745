//! Training checkpoints: the parameters (as in a plain checkpoint, so PyTorch's
//! `load_state_dict(..., strict=False)` reads them), the optimizer's state tensors
//! (`optimizer.state.0`, …), the input scaler (`scaler.mean`, `scaler.scale`), and the
//! number of epochs trained (metadata `minidl.epoch`). The extra tensors are names
//! PyTorch's non-strict load ignores.

use std::collections::BTreeMap;
use std::path::Path;

use super::{
    error, parse, parse_metadata, refuse_mismatch, serialize_with, state_dict, take_parameters,
    write_atomically, write_parameters,
};
use crate::backend::{Backend, DeviceTensor, Ops};
use crate::data::Standardizer;
use crate::error::Result;
use crate::nn::Module;
use crate::tensor::Tensor;

/// The metadata key of the epochs trained.
const EPOCH: &str = "minidl.epoch";

/// The prefix of the optimizer's state tensors' names.
const OPTIMIZER: &str = "optimizer.state.";

/// What a training checkpoint holds beside the parameters and the optimizer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingState {
    /// Epochs trained so far; a resumed run continues with the next one (the
    /// shuffling stream's position follows from it: one shuffle per epoch, see
    /// [`FitConfig::start_epoch`](crate::train::FitConfig::start_epoch)).
    pub epoch: usize,
    /// The scaler the inputs went through, if any.
    pub scaler: Option<Standardizer>,
}

/// Writes a training checkpoint to `path`, atomically (as [`save`](super::save)): the
/// model's parameters, `optimizer_state` (an optimizer's
/// [`state`](crate::optim::Optimizer::state), downloaded now), and `state`.
pub fn save_training<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    optimizer_state: &[&DeviceTensor<B>],
    state: &TrainingState,
    path: impl AsRef<Path>,
) -> Result<()> {
    let mut tensors = state_dict(backend, model)?;
    for (i, t) in optimizer_state.iter().enumerate() {
        let values = backend.download(t)?.into_data();
        tensors.insert(
            format!("{OPTIMIZER}{i}"),
            Tensor::new(&[t.rows(), t.cols()], values)?,
        );
    }
    if let Some(scaler) = &state.scaler {
        tensors.extend(scaler.tensors()?);
    }
    let metadata = BTreeMap::from([(EPOCH.to_string(), state.epoch.to_string())]);
    write_atomically(path.as_ref(), &serialize_with(&tensors, &metadata)?)
}

/// Loads a checkpoint written by [`save_training`] (or a plain one, as epoch 0) into
/// `model` and, unless `optimizer_state` is `None`, into those tensors (an
/// optimizer's [`state`](crate::optim::Optimizer::state) after
/// [`prepare`](crate::optim::Optimizer::prepare)); returns the epoch and the scaler.
/// With `None` the file's optimizer state is ignored (to predict with a checkpoint).
/// Every mismatch is named in the error, and on any error nothing is changed.
pub fn load_training<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    optimizer_state: Option<&[&DeviceTensor<B>]>,
    path: impl AsRef<Path>,
) -> Result<TrainingState> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| error(path, format!("reading failed: {e}")))?;
    let metadata = parse_metadata(&bytes, path)?;
    let mut tensors = parse(&bytes, path)?;
    let epoch = match metadata.get(EPOCH) {
        None => 0,
        Some(e) => e.parse().map_err(|_| {
            error(
                path,
                format!("metadata {EPOCH:?} is {e:?}, not an epoch count"),
            )
        })?,
    };
    let mut problems = Vec::new();
    let values = take_parameters(model, &mut tensors, &mut problems);
    let scaler = Standardizer::from_tensors(&tensors).map_err(|e| error(path, e.to_string()))?;
    tensors.remove(Standardizer::MEAN);
    tensors.remove(Standardizer::SCALE);
    let saved_state = tensors
        .keys()
        .filter(|name| name.starts_with(OPTIMIZER))
        .count();
    let mut state_values = Vec::new();
    match optimizer_state {
        None => tensors.retain(|name, _| !name.starts_with(OPTIMIZER)),
        Some(state) => {
            if saved_state != state.len() {
                problems.push(format!(
                    "the checkpoint holds {saved_state} optimizer state tensors, the optimizer has {} (was it saved with another optimizer?)",
                    state.len()
                ));
            }
            for (i, t) in state.iter().enumerate() {
                let name = format!("{OPTIMIZER}{i}");
                match tensors.remove(&name) {
                    None => {}
                    Some(v) if v.shape() != [t.rows(), t.cols()] => problems.push(format!(
                        "tensor {name:?} has shape {:?}, the optimizer's state is {:?}",
                        v.shape(),
                        [t.rows(), t.cols()]
                    )),
                    Some(v) if v.data().iter().any(|x| !x.is_finite()) => {
                        problems.push(format!("tensor {name:?} holds a value that is not finite"))
                    }
                    Some(v) => state_values.push(v),
                }
            }
            // State beyond the optimizer's is named by the count above.
            tensors.retain(|name, _| !name.starts_with(OPTIMIZER));
        }
    }
    refuse_mismatch(path, model, problems, &tensors)?;
    write_parameters(backend, model, &values)?;
    for (t, v) in optimizer_state.unwrap_or(&[]).iter().zip(&state_values) {
        backend.write(t, v.data())?;
    }
    Ok(TrainingState { epoch, scaler })
}
