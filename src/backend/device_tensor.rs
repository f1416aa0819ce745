//! A matrix resident on a backend: a shared buffer handle plus an element offset and a
//! `rows × cols` shape, so that a mini-batch is a view into a larger buffer, not a copy.

use crate::backend::{Backend, BufferHandle};
use crate::error::{Error, Result};

/// A row-major `rows × cols` matrix stored in a backend buffer, starting `offset`
/// elements into it. Cloning copies the handle, not the data: clones share storage.
/// Vectors are `1 × n` matrices.
pub struct DeviceTensor<B: Backend> {
    buffer: B::Buffer,
    offset: usize,
    rows: usize,
    cols: usize,
}

impl<B: Backend> Clone for DeviceTensor<B> {
    fn clone(&self) -> Self {
        DeviceTensor {
            buffer: self.buffer.clone(),
            offset: self.offset,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

impl<B: Backend> std::fmt::Debug for DeviceTensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceTensor({}×{} at {} in buffer #{})",
            self.rows,
            self.cols,
            self.offset,
            self.buffer.id()
        )
    }
}

impl<B: Backend> DeviceTensor<B> {
    /// A view of `rows × cols` elements of `buffer` starting at element `offset`.
    /// Fails when the view does not fit in the buffer.
    pub fn new(buffer: B::Buffer, offset: usize, rows: usize, cols: usize) -> Result<Self> {
        let end = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| Error::InvalidArgument(format!("{rows}×{cols} overflows")))?;
        if end > buffer.len() {
            return Err(Error::shape(
                "DeviceTensor::new",
                format!(
                    "a {rows}×{cols} view at offset {offset} needs {end} elements, the buffer has {}",
                    buffer.len()
                ),
            ));
        }
        Ok(DeviceTensor {
            buffer,
            offset,
            rows,
            cols,
        })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The number of elements (`rows * cols`).
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the view holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element offset of the view in its buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The backend buffer behind the view.
    pub fn buffer(&self) -> &B::Buffer {
        &self.buffer
    }

    /// Rows `start..start + count` as a view sharing this tensor's buffer.
    pub fn slice_rows(&self, start: usize, count: usize) -> Result<Self> {
        if start.checked_add(count).is_none_or(|end| end > self.rows) {
            return Err(Error::shape(
                "DeviceTensor::slice_rows",
                format!(
                    "rows {start}..{} of a {}×{} tensor",
                    start.saturating_add(count),
                    self.rows,
                    self.cols
                ),
            ));
        }
        DeviceTensor::new(
            self.buffer.clone(),
            self.offset + start * self.cols,
            count,
            self.cols,
        )
    }

    /// The same elements seen as a `rows × cols` tensor (row-major, so the element
    /// order is unchanged); fails unless `rows × cols` is this tensor's length.
    pub fn reshape(&self, rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols) != Some(self.len()) {
            return Err(Error::shape(
                "DeviceTensor::reshape",
                format!(
                    "a {}×{} tensor cannot be seen as {rows}×{cols}",
                    self.rows, self.cols
                ),
            ));
        }
        DeviceTensor::new(self.buffer.clone(), self.offset, rows, cols)
    }

    /// Whether this view and `other` live in the same buffer.
    pub fn shares_buffer(&self, other: &Self) -> bool {
        self.buffer.id() == other.buffer.id()
    }
}
