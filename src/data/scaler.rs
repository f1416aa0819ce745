//! [`Standardizer`]: inputs centred and scaled per column, with the statistics of the
//! training part only, kept with the model so that prediction applies the same.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Per input column, `x' = (x − mean) / scale`, as scikit-learn's `StandardScaler`:
/// `mean` and the population standard deviation of the training rows, with a scale
/// of 1 for a column that does not vary.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Vec<f32>,
    scale: Vec<f32>,
}

impl Standardizer {
    /// The name of the mean's tensor in a checkpoint.
    pub const MEAN: &'static str = "scaler.mean";
    /// The name of the scale's tensor in a checkpoint.
    pub const SCALE: &'static str = "scaler.scale";

    /// The mean and standard deviation of each column of `inputs` (`[n, features]`,
    /// `n ≥ 1`, finite), summed in `f64`. A column whose deviation is below 10⁻¹² of
    /// its magnitude gets scale 1.
    pub fn fit(inputs: &Tensor) -> Result<Self> {
        let (n, cols) = inputs.matrix_dims()?;
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a scaler needs at least one row".into(),
            ));
        }
        crate::data::check_finite("Standardizer::fit", inputs)?;
        let rows = || inputs.data().chunks_exact(cols);
        let mut mean = vec![0f64; cols];
        for row in rows() {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0f64; cols];
        for row in rows() {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m) * (v as f64 - m);
            }
        }
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let std = (s / n as f64).sqrt();
                match std > 1e-12 * m.abs().max(1.0) {
                    true => std as f32,
                    false => 1.0,
                }
            })
            .collect();
        Ok(Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        })
    }

    /// One mean and one population standard deviation over every value of `inputs`
    /// (`[n, features]`, `n ≥ 1`, finite; summed in `f64`), applied to every column:
    /// images scaled as torchvision's `Normalize` with the data set's statistics. A
    /// deviation below 10⁻¹² of the mean's magnitude gives scale 1.
    pub fn fit_global(inputs: &Tensor) -> Result<Self> {
        let (n, cols) = inputs.matrix_dims()?;
        if n == 0 || cols == 0 {
            return Err(Error::InvalidArgument(
                "a scaler needs at least one row and one column".into(),
            ));
        }
        crate::data::check_finite("Standardizer::fit_global", inputs)?;
        let count = inputs.data().len() as f64;
        let mean = inputs.data().iter().map(|&v| v as f64).sum::<f64>() / count;
        let var = inputs
            .data()
            .iter()
            .map(|&v| (v as f64 - mean) * (v as f64 - mean))
            .sum::<f64>()
            / count;
        let std = var.sqrt();
        let scale = match std > 1e-12 * mean.abs().max(1.0) {
            true => std as f32,
            false => 1.0,
        };
        Standardizer::new(vec![mean as f32; cols], vec![scale; cols])
    }

    /// A standardizer with the given per-column mean and scale (finite, scales above 0,
    /// as many of each).
    pub fn new(mean: Vec<f32>, scale: Vec<f32>) -> Result<Self> {
        if mean.len() != scale.len() || mean.is_empty() {
            return Err(Error::shape(
                "Standardizer",
                format!("{} means and {} scales", mean.len(), scale.len()),
            ));
        }
        let ok =
            mean.iter().all(|m| m.is_finite()) && scale.iter().all(|s| s.is_finite() && *s > 0.0);
        match ok {
            true => Ok(Standardizer { mean, scale }),
            false => Err(Error::InvalidArgument(
                "a scaler's means must be finite and its scales finite and above 0".into(),
            )),
        }
    }

    /// The number of columns it scales.
    pub fn features(&self) -> usize {
        self.mean.len()
    }

    /// The per-column means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-column scales.
    pub fn scale(&self) -> &[f32] {
        &self.scale
    }

    /// `inputs` (`[n, features]`) centred and scaled, computed in `f32` as
    /// `(x − mean) / scale`.
    pub fn transform(&self, inputs: &Tensor) -> Result<Tensor> {
        let (n, cols) = inputs.matrix_dims()?;
        if cols != self.features() {
            return Err(Error::shape(
                "Standardizer::transform",
                format!(
                    "the scaler was fitted to {} columns, the inputs have {cols}",
                    self.features()
                ),
            ));
        }
        let data = inputs
            .data()
            .chunks_exact(cols.max(1))
            .flat_map(|row| {
                row.iter()
                    .zip(&self.mean)
                    .zip(&self.scale)
                    .map(|((&x, &m), &s)| (x - m) / s)
            })
            .collect();
        Tensor::new(&[n, cols], data)
    }

    /// Its mean and scale as tensors named [`Standardizer::MEAN`] and
    /// [`Standardizer::SCALE`], for a checkpoint.
    pub fn tensors(&self) -> Result<BTreeMap<String, Tensor>> {
        let n = self.features();
        Ok(BTreeMap::from([
            (
                Self::MEAN.to_string(),
                Tensor::new(&[n], self.mean.clone())?,
            ),
            (
                Self::SCALE.to_string(),
                Tensor::new(&[n], self.scale.clone())?,
            ),
        ]))
    }

    /// The standardizer held in `tensors` (as [`Standardizer::tensors`] writes it),
    /// `None` when they hold none.
    pub fn from_tensors(tensors: &BTreeMap<String, Tensor>) -> Result<Option<Self>> {
        match (tensors.get(Self::MEAN), tensors.get(Self::SCALE)) {
            (None, None) => Ok(None),
            (Some(mean), Some(scale)) => {
                Self::new(mean.data().to_vec(), scale.data().to_vec()).map(Some)
            }
            _ => Err(Error::InvalidArgument(format!(
                "a scaler needs both {:?} and {:?}",
                Self::MEAN,
                Self::SCALE
            ))),
        }
    }
}
