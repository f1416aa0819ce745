//! The GPU backend's storage handle: a wgpu storage buffer with its capacity and a
//! process-unique id (the key of the bind-group cache and of the aliasing checks).

use crate::backend::BufferHandle;

/// A wgpu storage buffer of `f32`s. Clones share the buffer.
#[derive(Debug, Clone)]
pub struct GpuBuffer {
    pub(crate) raw: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) id: u64,
}

impl BufferHandle for GpuBuffer {
    fn id(&self) -> u64 {
        self.id
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// The usages every tensor buffer gets: bound as storage, copied from (downloads) and
/// to (uploads, clears).
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
