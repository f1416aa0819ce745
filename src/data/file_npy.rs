//! NumPy `.npy` files read into a [`Table`]: a 2-D array (or a 1-D one, as one column)
//! of any real or integer dtype.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use npyz::{NpyFile, Order};

use super::Table;
use crate::error::{Error, Result};

/// Reads a `.npy` array of floats or integers (any byte order, C or Fortran order),
/// `[rows, cols]` or `[rows]` (one column). Fails on another dtype or rank, an empty
/// array, and a value that is NaN or infinite (naming its row and column).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::data(path, format!("cannot open: {e}")))?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::data(path, format!("not a valid .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let order = npy.order();
    let dtype = npy.dtype().descr();
    let (rows, cols) = match shape[..] {
        [r] => (r as usize, 1),
        [r, c] => (r as usize, c as usize),
        _ => {
            return Err(Error::data(
                path,
                format!("the array has shape {shape:?}; expected [rows, columns] or [rows]"),
            ))
        }
    };
    if rows == 0 || cols == 0 {
        return Err(Error::data(
            path,
            format!("the array is empty (shape {shape:?})"),
        ));
    }
    let stored = read_as_f64(npy).map_err(|e| match e {
        Some(e) => Error::data(path, format!("reading failed: {e}")),
        None => Error::data(
            path,
            format!("dtype {dtype} is not a real or integer number type"),
        ),
    })?;
    let values = match order {
        Order::C => stored,
        Order::Fortran => (0..rows * cols)
            .map(|i| stored[(i % cols) * rows + i / cols])
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(
            path,
            format!(
                "row {}, column {}: {} is not a finite number",
                i / cols,
                i % cols,
                values[i]
            ),
        ));
    }
    Ok(Table {
        source: path.to_path_buf(),
        names: None,
        rows,
        cols,
        values,
        lines: None,
    })
}

/// A number type a `.npy` array may hold, as `f64` (64-bit integers round above 2⁵³,
/// as NumPy's `astype(float)` does).
trait Number: npyz::Deserialize {
    fn to_f64(self) -> f64;
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
numbers!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);

/// The array's values as `f64`, whatever its numeric dtype; `Err(None)` for a dtype
/// that is not a number.
fn read_as_f64(npy: NpyFile<BufReader<File>>) -> std::result::Result<Vec<f64>, Option<String>> {
    fn all<T: Number>(
        reader: npyz::NpyReader<T, BufReader<File>>,
    ) -> std::result::Result<Vec<f64>, Option<String>> {
        reader
            .map(|v| v.map(T::to_f64))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Some(e.to_string()))
    }
    macro_rules! first_that_reads {
        ($npy:ident; $($t:ty),*) => {$(
            let $npy = match $npy.try_data::<$t>() {
                Ok(reader) => return all(reader),
                Err(npy) => npy,
            };
        )*};
    }
    first_that_reads!(npy; f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);
    drop(npy);
    Err(None)
}
