//! Data: labelled data sets with one-hot targets, the seed's disc task, and mini-batch
//! ranges.

use std::ops::Range;

use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Radius of the disc of area 1/2: 1/√(2π).
pub const DISC_RADIUS: f64 = 0.398_942_280_401_432_7;

/// Points per set in the seed workload.
pub const DISC_POINTS: usize = 1000;

/// Inputs with class labels and their one-hot targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    inputs: Tensor,
    labels: Vec<usize>,
    targets: Tensor,
}

impl Dataset {
    /// A data set of `inputs` (`[n, features]`) labelled with `labels` (`n` values below
    /// `classes`). Fails when it is empty, when the lengths differ, when a label is out
    /// of range, or when an input is not finite.
    pub fn new(inputs: Tensor, labels: Vec<usize>, classes: usize) -> Result<Self> {
        let [n, _] = inputs.shape()[..] else {
            return Err(Error::shape(
                "Dataset",
                format!("inputs must be [n, features], got {:?}", inputs.shape()),
            ));
        };
        if n == 0 {
            return Err(Error::InvalidArgument("the data set is empty".into()));
        }
        if labels.len() != n {
            return Err(Error::shape(
                "Dataset",
                format!("{n} inputs but {} labels", labels.len()),
            ));
        }
        check_finite("Dataset", &inputs)?;
        let targets = one_hot(&labels, classes)?;
        Ok(Dataset {
            inputs,
            labels,
            targets,
        })
    }

    /// The inputs, `[n, features]`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The class of each point.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The one-hot targets, `[n, classes]`.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// The labels as an `n × 1` column of floats, the targets of a cross-entropy loss
    /// (exact: labels are far below 2²⁴).
    pub fn class_indices(&self) -> Tensor {
        let column = self.labels.iter().map(|&l| l as f32).collect();
        Tensor::new(&[self.labels.len(), 1], column).expect("one value per label")
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no points (never true for a constructed data set).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.targets.shape()[1]
    }
}

/// `Ok` when every value of the matrix `inputs` is finite, else an
/// [`Error::InvalidArgument`] naming `what`, the first bad value and its row and column.
pub fn check_finite(what: &str, inputs: &Tensor) -> Result<()> {
    let Some(i) = inputs.data().iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let cols = inputs.shape().last().copied().unwrap_or(1).max(1);
    Err(Error::InvalidArgument(format!(
        "{what}: input row {}, column {} is {}",
        i / cols,
        i % cols,
        inputs.data()[i]
    )))
}

/// `labels` as rows of `classes` values, 1 at the label and 0 elsewhere.
pub fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor> {
    let mut t = Tensor::zeros(&[labels.len(), classes]);
    for (i, &l) in labels.iter().enumerate() {
        if l >= classes {
            return Err(Error::InvalidArgument(format!(
                "label {l} of point {i} is not below {classes} classes"
            )));
        }
        t.data_mut()[i * classes + l] = 1.0;
    }
    Ok(t)
}

/// `n` points uniform in the unit square `[0,1]²`, labelled 1 inside the disc of centre (0.5, 0.5) and
/// radius [`DISC_RADIUS`], else 0.
pub fn disc(n: usize, rng: &mut impl Rng) -> Result<Dataset> {
    let mut inputs = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let (x, y): (f32, f32) = (rng.random(), rng.random());
        let (dx, dy) = (x as f64 - 0.5, y as f64 - 0.5);
        labels.push(usize::from(dx * dx + dy * dy < DISC_RADIUS * DISC_RADIUS));
        inputs.extend([x, y]);
    }
    Dataset::new(Tensor::new(&[n, 2], inputs)?, labels, 2)
}

/// The seed workload's train and test sets, [`DISC_POINTS`] each, drawn in that order
/// from a ChaCha8 stream seeded with `seed` (portable: the same points everywhere).
pub fn disc_train_test(seed: u64) -> Result<(Dataset, Dataset)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((disc(DISC_POINTS, &mut rng)?, disc(DISC_POINTS, &mut rng)?))
}

/// The row ranges of consecutive mini-batches of `batch_size` over `len` rows (the
/// last one may be shorter). Fails for a batch size of 0.
pub fn batches(len: usize, batch_size: usize) -> Result<impl Iterator<Item = Range<usize>>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    Ok((0..len)
        .step_by(batch_size)
        .map(move |s| s..(s + batch_size).min(len)))
}
