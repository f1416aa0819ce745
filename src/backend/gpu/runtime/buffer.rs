//! The GPU backend's storage handle: a wgpu storage buffer with its capacity and a
//! process-unique id (the key of the bind-group cache and of the aliasing checks).
//! When the last handle to a buffer is dropped, its id goes to the recorder's list of
//! dropped buffers, so that the cached bind groups that hold the buffer are dropped
//! too and its memory is freed.

use std::sync::{Arc, Mutex};

use crate::backend::BufferHandle;

/// Ids of buffers whose last handle was dropped, not yet evicted from the caches.
pub(crate) type DroppedBuffers = Arc<Mutex<Vec<u64>>>;

/// A wgpu storage buffer of `f32`s. Clones share the buffer.
#[derive(Debug, Clone)]
pub struct GpuBuffer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    raw: wgpu::Buffer,
    len: usize,
    id: u64,
    device: u64,
    dropped: DroppedBuffers,
}

impl GpuBuffer {
    /// Wraps `raw`, holding `len` elements, as the buffer `id` of `device`; its drop is
    /// reported to `dropped`.
    pub(crate) fn new(
        raw: wgpu::Buffer,
        len: usize,
        id: u64,
        device: u64,
        dropped: DroppedBuffers,
    ) -> Self {
        GpuBuffer {
            inner: Arc::new(Inner {
                raw,
                len,
                id,
                device,
                dropped,
            }),
        }
    }
}

impl GpuBuffer {
    /// The wgpu buffer.
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        &self.inner.raw
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.dropped.lock() {
            ids.push(self.id);
        }
    }
}

impl BufferHandle for GpuBuffer {
    fn id(&self) -> u64 {
        self.inner.id
    }
    fn len(&self) -> usize {
        self.inner.len
    }
    fn device(&self) -> u64 {
        self.inner.device
    }
}

/// The usages every tensor buffer gets: bound as storage, copied from (downloads) and
/// to (uploads, clears).
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
