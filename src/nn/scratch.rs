//! A device buffer a module reuses across steps: grown when a batch needs more rows
//! than it holds, otherwise handed out again as a view, so that steady-state training
//! allocates nothing.

use crate::backend::{Backend, BufferHandle, DeviceTensor};
use crate::error::Result;

/// A reusable `rows × cols` workspace with a capacity in rows.
pub(crate) struct Scratch<B: Backend> {
    buffer: Option<DeviceTensor<B>>,
}

impl<B: Backend> Scratch<B> {
    pub(crate) fn new() -> Self {
        Scratch { buffer: None }
    }

    /// A `rows × cols` view, reallocating only when the held buffer is too small, its
    /// width differs, or it lives on another device than `backend`'s.
    pub(crate) fn get(&mut self, backend: &B, rows: usize, cols: usize) -> Result<DeviceTensor<B>> {
        match &self.buffer {
            Some(buf)
                if buf.cols() == cols
                    && buf.rows() >= rows
                    && buf.buffer().device() == backend.device_id() =>
            {
                buf.slice_rows(0, rows)
            }
            _ => {
                let buf = backend.alloc(rows, cols)?;
                self.buffer = Some(buf.clone());
                Ok(buf)
            }
        }
    }
}
