//! Prediction and error counting: a model's class (or its raw outputs) for each row,
//! in chunks of rows, and the check that a data set's classes fit the model's outputs.

use crate::backend::{Backend, LossKind, Ops};
use crate::data::{check_finite, Dataset};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;

/// Rows [`predict`] runs through the model at once; fewer where a layer's output for
/// that many rows is more than the backend can hold in one tensor.
const PREDICT_ROWS: usize = 65_536;

/// The predicted class of each row of `inputs`: the arg-max of the model's outputs
/// (the first one on ties, as `torch.argmax`). Runs in chunks of rows, so that any
/// number of rows works where one row does. Fails on a NaN or infinite input, and on a
/// NaN output.
pub fn predict<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    inputs: &Tensor,
) -> Result<Vec<usize>> {
    let (rows, _) = inputs.matrix_dims()?;
    let mut predicted = Vec::with_capacity(rows);
    in_chunks(backend, model, inputs, |out, first| {
        let classes = out.shape()[1];
        if classes == 0 {
            return Err(Error::InvalidArgument("the model has no outputs".into()));
        }
        if let Some(i) = out.data().iter().position(|v| v.is_nan()) {
            return Err(Error::InvalidArgument(format!(
                "predict: the model's output for row {}, column {} is NaN (have its parameters diverged?)",
                first + i / classes,
                i % classes
            )));
        }
        predicted.extend(out.data().chunks(classes).map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        }));
        Ok(())
    })?;
    Ok(predicted)
}

/// The model's outputs for each row of `inputs` (`[n, outputs]`), for regression or
/// to look at the scores. Runs in chunks of rows as [`predict`] does; fails on a NaN
/// or infinite input.
pub fn outputs<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    inputs: &Tensor,
) -> Result<Tensor> {
    let (rows, _) = inputs.matrix_dims()?;
    let mut values = Vec::new();
    let mut width = 0;
    in_chunks(backend, model, inputs, |out, _| {
        width = out.shape()[1];
        values.extend_from_slice(out.data());
        Ok(())
    })?;
    Tensor::new(&[rows, width], values)
}

/// Runs the model over `inputs` in chunks of rows and hands each chunk's outputs to
/// `each`, with the index of the chunk's first row. A chunk too large for the backend
/// is halved until it fits.
fn in_chunks<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    inputs: &Tensor,
    mut each: impl FnMut(&Tensor, usize) -> Result<()>,
) -> Result<()> {
    check_finite("predict", inputs)?;
    let (rows, cols) = inputs.matrix_dims()?;
    let mut chunk = PREDICT_ROWS.min(rows).max(1);
    let mut first = 0;
    while first < rows {
        let n = chunk.min(rows - first);
        // One chunk of all rows is the input itself, uploaded without a host copy.
        let copy;
        let part = if n == rows {
            inputs
        } else {
            copy = Tensor::new(
                &[n, cols],
                inputs.data()[first * cols..(first + n) * cols].to_vec(),
            )?;
            &copy
        };
        let out = backend
            .upload(part)
            .and_then(|x| backend.download(model.forward(backend, &x)?));
        match out {
            Ok(out) => each(&out, first)?,
            Err(Error::TooLarge { .. }) if chunk > 1 => {
                chunk /= 2;
                continue;
            }
            Err(e) => return Err(e),
        }
        first += n;
    }
    Ok(())
}

/// Fails where `data`'s classes cannot be compared with the `outputs` of a model
/// trained with the loss `kind`: MSE compares one-hot rows of `data.classes()` values
/// with the outputs, so the two widths must be equal; cross-entropy needs an output per
/// class. `what` names the caller in the message.
pub(super) fn check_classes(
    what: &str,
    kind: Option<LossKind>,
    outputs: usize,
    data: &Dataset,
) -> Result<()> {
    if data.is_regression() {
        let width = data.targets().shape()[1];
        return match kind {
            Some(LossKind::Mse) if width == outputs => Ok(()),
            Some(LossKind::Mse) => Err(Error::shape(
                what,
                format!(
                    "the data has {width} target columns but the model outputs {outputs} values"
                ),
            )),
            _ => Err(Error::InvalidArgument(format!(
                "{what}: the data set holds regression targets; this needs class labels"
            ))),
        };
    }
    let classes = data.classes();
    let fits = match kind {
        Some(LossKind::Mse) => classes == outputs,
        _ => classes <= outputs,
    };
    if fits {
        return Ok(());
    }
    Err(Error::shape(
        what,
        format!(
            "the data has {classes} classes but the model outputs {outputs} values{}",
            match kind {
                Some(LossKind::Mse) =>
                    " (MSE compares one-hot targets with the outputs: they must be as many)",
                _ => " (each class needs an output)",
            }
        ),
    ))
}

/// How many points of `data` the model classifies wrongly. Fails where the data has
/// more classes than the model has outputs.
pub fn count_errors<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &mut M,
    data: &Dataset,
) -> Result<usize> {
    if data.is_regression() {
        return Err(Error::InvalidArgument(
            "count_errors: the data set holds regression targets; this needs class labels".into(),
        ));
    }
    if let Some((_, outputs)) = model.widths() {
        check_classes("count_errors", None, outputs, data)?;
    }
    let predicted = predict(backend, model, data.inputs())?;
    Ok(predicted
        .iter()
        .zip(data.labels())
        .filter(|(p, l)| p != l)
        .count())
}
