//! Metrics beside the loss: accuracy, per-class accuracy and the confusion matrix for
//! classification; mean-squared error and R² for regression.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    counts: Vec<usize>,
}

impl Confusion {
    /// The confusion matrix of `predicted` against `labels` (as many of each, every
    /// value below `classes`).
    pub fn new(labels: &[usize], predicted: &[usize], classes: usize) -> Result<Self> {
        if labels.len() != predicted.len() {
            return Err(Error::shape(
                "Confusion",
                format!(
                    "{} labels but {} predictions",
                    labels.len(),
                    predicted.len()
                ),
            ));
        }
        let mut counts = vec![0; classes * classes];
        for (i, (&l, &p)) in labels.iter().zip(predicted).enumerate() {
            if l >= classes || p >= classes {
                return Err(Error::InvalidArgument(format!(
                    "point {i}: label {l} or prediction {p} is not below {classes} classes"
                )));
            }
            counts[l * classes + p] += 1;
        }
        Ok(Confusion { classes, counts })
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many points of class `truth` were predicted as `predicted` (0 outside the
    /// classes).
    pub fn count(&self, truth: usize, predicted: usize) -> usize {
        match truth < self.classes && predicted < self.classes {
            true => self.counts[truth * self.classes + predicted],
            false => 0,
        }
    }

    /// The counts row by row: row = true class, column = predicted class.
    pub fn rows(&self) -> Vec<Vec<usize>> {
        self.counts
            .chunks(self.classes.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The number of points.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The fraction of points predicted right (0 for no points).
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.classes).map(|c| self.count(c, c)).sum();
        right as f64 / self.total().max(1) as f64
    }

    /// Per class, the fraction of its points predicted right (`None` for a class with
    /// no points): the recall of each class.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| {
                let row: usize = (0..self.classes).map(|p| self.count(c, p)).sum();
                (row > 0).then(|| self.count(c, c) as f64 / row as f64)
            })
            .collect()
    }
}

/// The mean of the squared differences between `predicted` and `targets` (same shape,
/// at least one value), summed in `f64`.
pub fn mean_squared_error(predicted: &Tensor, targets: &Tensor) -> Result<f64> {
    same_shape("mean_squared_error", predicted, targets)?;
    let sum: f64 = predicted
        .data()
        .iter()
        .zip(targets.data())
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum();
    Ok(sum / targets.len() as f64)
}

/// The coefficient of determination of `predicted` for `targets` (`[n, k]`, same
/// shape), as scikit-learn's `r2_score` with its default uniform average: per column
/// `1 − Σ(t − p)² / Σ(t − mean t)²`, averaged over the columns. A column whose targets
/// do not vary scores 1 when predicted exactly and 0 otherwise (scikit-learn's rule).
pub fn r2_score(predicted: &Tensor, targets: &Tensor) -> Result<f64> {
    same_shape("r2_score", predicted, targets)?;
    let (n, k) = targets.matrix_dims()?;
    let at = |t: &Tensor, r: usize, c: usize| t.data()[r * k + c] as f64;
    let mut total = 0.0;
    for c in 0..k {
        let mean = (0..n).map(|r| at(targets, r, c)).sum::<f64>() / n as f64;
        let residual: f64 = (0..n)
            .map(|r| (at(targets, r, c) - at(predicted, r, c)).powi(2))
            .sum();
        let spread: f64 = (0..n).map(|r| (at(targets, r, c) - mean).powi(2)).sum();
        total += match (spread > 0.0, residual > 0.0) {
            (true, _) => 1.0 - residual / spread,
            (false, false) => 1.0,
            (false, true) => 0.0,
        };
    }
    Ok(total / k as f64)
}

fn same_shape(what: &str, predicted: &Tensor, targets: &Tensor) -> Result<()> {
    if predicted.shape() != targets.shape() || targets.is_empty() {
        return Err(Error::shape(
            what,
            format!(
                "predictions {:?} and targets {:?} must have one equal, non-empty shape",
                predicted.shape(),
                targets.shape()
            ),
        ));
    }
    Ok(())
}
