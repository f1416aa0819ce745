//! The device's workspace: a few flat buffers that an op uses as scratch while it is
//! recorded (the convolution's unfolded input, say), grown when an op needs more and
//! otherwise reused, so that steady-state training allocates nothing. An op holds the
//! workspace, locked, from its first launch to its last, so that two threads recording
//! on one device never interleave writes to the same scratch buffer.

use std::sync::{Mutex, MutexGuard};

use super::context::{lock, Gpu};
use crate::backend::{Backend, BufferHandle, DeviceTensor};
use crate::error::Result;

/// How many scratch buffers the workspace holds.
pub(crate) const SLOTS: usize = 3;

/// The workspace's buffers (a [`Gpu::state`]), each grown on demand.
#[derive(Default)]
pub(crate) struct Workspace {
    buffers: Mutex<[Option<DeviceTensor<Gpu>>; SLOTS]>,
}

/// The workspace, locked for one op.
pub(crate) struct Held<'a> {
    gpu: &'a Gpu,
    buffers: MutexGuard<'a, [Option<DeviceTensor<Gpu>>; SLOTS]>,
}

impl Held<'_> {
    /// A `rows × cols` view at the start of scratch buffer `slot`, which is reallocated
    /// (larger) only where it holds fewer elements.
    pub(crate) fn view(
        &mut self,
        slot: usize,
        rows: usize,
        cols: usize,
    ) -> Result<DeviceTensor<Gpu>> {
        let len = rows.saturating_mul(cols);
        let held = &mut self.buffers[slot % SLOTS];
        let buffer = match held {
            Some(t) if t.buffer().len() >= len => t.buffer().clone(),
            _ => {
                let t = self.gpu.alloc(1, len.max(1))?;
                let buffer = t.buffer().clone();
                *held = Some(t);
                buffer
            }
        };
        DeviceTensor::new(buffer, 0, rows, cols)
    }
}

impl Gpu {
    /// This device's workspace, locked until the returned guard is dropped.
    pub(crate) fn workspace<'a>(&'a self, state: &'a Workspace) -> Held<'a> {
        Held {
            gpu: self,
            buffers: lock(&state.buffers),
        }
    }
}
