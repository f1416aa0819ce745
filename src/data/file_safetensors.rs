//! safetensors files read into a [`Table`]: their 1-D and 2-D tensors side by side as
//! named columns.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use super::Table;
use crate::error::{Error, Result};

/// Reads a safetensors file whose tensors all have the same number of rows, as one
/// table: the tensors in name order, a 1-D tensor `name` as the column `name`, a 2-D
/// tensor `name` of `k` columns as the columns `name.0` … `name.{k−1}`. So a file with
/// `inputs` (`[n, f]`) and `labels` (`[n]`) is read with the label column `labels`.
/// Floats and integers of any width but 16-bit floats are accepted. Fails on another
/// dtype or rank, on row counts that differ, on no rows, and on a NaN or infinite value
/// (naming the tensor, row and column).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let bytes = super::compressed::read_bytes(path)?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::data(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    if tensors.is_empty() {
        return Err(Error::data(path, "the file holds no tensors"));
    }
    let mut rows = None;
    let mut columns: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, view) in &tensors {
        let (n, k) = match view.shape() {
            [n] => (*n, None),
            [n, k] => (*n, Some(*k)),
            shape => {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor {name:?} has shape {shape:?}; expected [rows] or [rows, columns]"
                    ),
                ))
            }
        };
        match rows {
            None => rows = Some(n),
            Some(r) if r != n => {
                return Err(Error::data(
                    path,
                    format!("tensor {name:?} has {n} rows, the tensors before it {r}"),
                ))
            }
            Some(_) => {}
        }
        let values = decode(view.dtype(), view.data()).ok_or_else(|| {
            Error::data(
                path,
                format!(
                    "tensor {name:?} has dtype {}; expected a float (F32, F64) or integer type",
                    view.dtype()
                ),
            )
        })?;
        let width = k.unwrap_or(1);
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::data(
                path,
                format!(
                    "tensor {name:?}, row {}, column {}: {} is not a finite number",
                    i / width.max(1),
                    i % width.max(1),
                    values[i]
                ),
            ));
        }
        match k {
            None => columns.push((name.clone(), values)),
            Some(k) => {
                for j in 0..k {
                    let column = (0..n).map(|r| values[r * k + j]).collect();
                    columns.push((format!("{name}.{j}"), column));
                }
            }
        }
    }
    let rows = rows.unwrap_or(0);
    if rows == 0 || columns.is_empty() {
        return Err(Error::data(path, "the tensors have no rows or no columns"));
    }
    let cols = columns.len();
    let values = (0..rows)
        .flat_map(|r| columns.iter().map(move |(_, c)| c[r]))
        .collect();
    Ok(Table {
        source: path.to_path_buf(),
        names: Some(columns.into_iter().map(|(name, _)| name).collect()),
        rows,
        cols,
        values,
        lines: None,
    })
}

/// Little-endian `data` of `dtype` as `f64`; `None` for a dtype that is not a float of
/// 32 or 64 bits or an integer.
fn decode(dtype: Dtype, data: &[u8]) -> Option<Vec<f64>> {
    macro_rules! each {
        ($t:ty) => {
            data.chunks_exact(std::mem::size_of::<$t>())
                .map(|b| {
                    <$t>::from_le_bytes(b.try_into().expect("chunk of the type's size")) as f64
                })
                .collect()
        };
    }
    Some(match dtype {
        Dtype::F32 => each!(f32),
        Dtype::F64 => each!(f64),
        Dtype::I8 => each!(i8),
        Dtype::U8 => each!(u8),
        Dtype::I16 => each!(i16),
        Dtype::U16 => each!(u16),
        Dtype::I32 => each!(i32),
        Dtype::U32 => each!(u32),
        Dtype::I64 => each!(i64),
        Dtype::U64 => each!(u64),
        _ => return None,
    })
}
