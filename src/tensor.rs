//! Host tensor: a shape and a row-major `Vec<f32>`, the currency between user code and
//! a [`Backend`](crate::Backend).

use crate::error::{Error, Result};

/// A dense, row-major `f32` tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of `shape` holding `data` (row-major). Fails when the lengths disagree.
    pub fn new(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let Some(numel) = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
            return Err(Error::shape(
                "Tensor::new",
                format!("shape {shape:?} holds more values than an index can count"),
            ));
        };
        if numel != data.len() {
            return Err(Error::shape(
                "Tensor::new",
                format!(
                    "shape {shape:?} holds {numel} values, data has {}",
                    data.len()
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of `shape` filled with zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The values, consuming the tensor.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tensor seen as a matrix: `[n]` is one row of `n`, `[r, c]` is itself.
    /// Other ranks are an error.
    pub fn matrix_dims(&self) -> Result<(usize, usize)> {
        match self.shape[..] {
            [n] => Ok((1, n)),
            [r, c] => Ok((r, c)),
            _ => Err(Error::shape(
                "Tensor::matrix_dims",
                format!("expected rank 1 or 2, got shape {:?}", self.shape),
            )),
        }
    }

    /// Row `i` of a matrix (`[r, c]`) as a slice.
    pub fn row(&self, i: usize) -> Result<&[f32]> {
        let (rows, cols) = self.matrix_dims()?;
        if i >= rows {
            return Err(Error::InvalidArgument(format!(
                "row {i} of a tensor with {rows} rows"
            )));
        }
        Ok(&self.data[i * cols..(i + 1) * cols])
    }

    /// The values of the rows `rows` of a matrix, in that order (repeats allowed), row
    /// after row. Fails for a tensor that is not a matrix or a row out of range.
    pub fn gather_rows(&self, rows: &[usize]) -> Result<Vec<f32>> {
        let (n, cols) = self.matrix_dims()?;
        if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
            return Err(Error::InvalidArgument(format!(
                "row {bad} of a tensor with {n} rows"
            )));
        }
        Ok(rows
            .iter()
            .flat_map(|&r| &self.data[r * cols..(r + 1) * cols])
            .copied()
            .collect())
    }
}
