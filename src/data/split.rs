//! A seeded split of a data set into training, validation and test parts.

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::Dataset;
use crate::error::{Error, Result};

/// The fractions of the rows that go to the training and validation parts; the test
/// part gets the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// The training part's fraction, in (0, 1].
    pub train: f64,
    /// The validation part's fraction, in [0, 1 − train].
    pub validation: f64,
}

impl SplitFractions {
    /// The test part's fraction: what the other two leave.
    pub fn test(&self) -> f64 {
        (1.0 - self.train - self.validation).max(0.0)
    }

    /// Fails unless both fractions are finite, the training one above 0, the
    /// validation one at least 0, and their sum at most 1.
    pub fn validate(&self) -> Result<()> {
        let ok = self.train.is_finite()
            && self.validation.is_finite()
            && self.train > 0.0
            && self.validation >= 0.0
            && self.train + self.validation <= 1.0 + 1e-9;
        match ok {
            true => Ok(()),
            false => Err(Error::InvalidArgument(format!(
                "split fractions train {} and validation {} must be finite, train above 0, validation at least 0, and sum to at most 1",
                self.train, self.validation
            ))),
        }
    }
}

/// A data set's rows dealt into three parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The training part.
    pub train: Dataset,
    /// The validation part (`None` when its fraction gave it no row).
    pub validation: Option<Dataset>,
    /// The test part (`None` when no row was left for it).
    pub test: Option<Dataset>,
    /// The rows of the original data set in each part, in the order of the parts'
    /// rows: training, validation, test.
    pub rows: [Vec<usize>; 3],
}

/// Deals the rows of `data` into training, validation and test parts: a permutation
/// drawn from a ChaCha8 stream seeded with `seed` (the same everywhere), whose first
/// `round(n · train)` rows are the training part, the next `round(n · validation)` the
/// validation part, and the rest the test part. Fails on bad fractions and when the
/// training part would be empty.
pub fn split(data: &Dataset, fractions: SplitFractions, seed: u64) -> Result<Split> {
    fractions.validate()?;
    let n = data.len();
    let train = ((n as f64 * fractions.train).round() as usize).min(n);
    let validation = ((n as f64 * fractions.validation).round() as usize).min(n - train);
    if train == 0 {
        return Err(Error::InvalidArgument(format!(
            "a training fraction of {} leaves no training row of {n}",
            fractions.train
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test_rows = order.split_off(train + validation);
    let validation_rows = order.split_off(train);
    let part = |rows: &[usize]| match rows.is_empty() {
        true => Ok(None),
        false => data.select(rows).map(Some),
    };
    Ok(Split {
        train: data.select(&order)?,
        validation: part(&validation_rows)?,
        test: part(&test_rows)?,
        rows: [order, validation_rows, test_rows],
    })
}
