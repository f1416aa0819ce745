//! Buffers and transfers: allocation within the adapter's limits, uploads, queue
//! writes, copies, clears, and downloads through one reused staging buffer.

use wgpu::util::DeviceExt;

use super::buffer::{GpuBuffer, TENSOR_USAGE};
use super::context::{lock, to_u32, Gpu};
use super::launch::Grid;
use crate::backend::gpu::kernels::params::FillParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::{next_buffer_id, DeviceTensor};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Gpu {
    fn check_size(&self, what: &str, elements: usize) -> Result<u64> {
        let bytes = (elements.max(1) as u64).saturating_mul(4);
        // Kernels index elements with u32: no buffer may hold more than u32::MAX.
        let limit = self
            .ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size)
            .min(u32::MAX as u64 * 4);
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
            });
        }
        Ok(bytes)
    }

    fn wrap(
        &self,
        raw: wgpu::Buffer,
        len: usize,
        rows: usize,
        cols: usize,
    ) -> Result<DeviceTensor<Gpu>> {
        let dropped = {
            let mut recorder = lock(&self.ctx.recorder);
            recorder.stats.buffers += 1;
            recorder.dropped.clone()
        };
        DeviceTensor::new(
            GpuBuffer::new(raw, len, next_buffer_id(), self.ctx.id, dropped),
            0,
            rows,
            cols,
        )
    }

    /// Runs `create` (a buffer's creation) inside an out-of-memory error scope, so that
    /// a failed allocation is this call's error, naming `what`, rather than a later and
    /// unrelated op's.
    fn out_of_memory_scope<T>(&self, what: &str, create: impl FnOnce() -> T) -> Result<T> {
        let scope = self
            .ctx
            .device
            .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let made = create();
        match pollster::block_on(scope.pop()) {
            None => Ok(made),
            Some(e) => Err(Error::Gpu(format!("allocating {what}: {e}"))),
        }
    }

    pub(crate) fn alloc_tensor(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Gpu>> {
        self.health()?;
        let len = rows.saturating_mul(cols);
        let what = format!("a {rows}×{cols} tensor");
        let bytes = self.check_size(&what, len)?;
        let raw = self.out_of_memory_scope(&what, || {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes,
                usage: TENSOR_USAGE,
                mapped_at_creation: false,
            })
        })?;
        self.wrap(raw, len, rows, cols)
    }

    pub(crate) fn upload_tensor(&self, tensor: &Tensor) -> Result<DeviceTensor<Gpu>> {
        self.health()?;
        let (rows, cols) = tensor.matrix_dims()?;
        let what = format!("a {rows}×{cols} tensor");
        self.check_size(&what, tensor.len())?;
        if tensor.is_empty() {
            return self.alloc_tensor(rows, cols);
        }
        let raw = self.out_of_memory_scope(&what, || {
            self.ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytemuck::cast_slice(tensor.data()),
                    usage: TENSOR_USAGE,
                })
        })?;
        self.wrap(raw, tensor.len(), rows, cols)
    }

    pub(crate) fn write_data(&self, dst: &DeviceTensor<Gpu>, data: &[f32]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // Queue writes run before the next submission: submit what reads the old
        // contents first.
        self.submit(&mut lock(&self.ctx.recorder))?;
        self.ctx.queue.write_buffer(
            dst.buffer().raw(),
            dst.offset() as u64 * 4,
            bytemuck::cast_slice(data),
        );
        Ok(())
    }

    pub(crate) fn download_tensor(&self, src: &DeviceTensor<Gpu>) -> Result<Tensor> {
        self.health()?;
        let bytes = src.len() as u64 * 4;
        if bytes == 0 {
            return Tensor::new(&src.shape(), Vec::new());
        }
        let mut staging_slot = lock(&self.ctx.staging);
        if staging_slot.as_ref().is_none_or(|s| s.size() < bytes) {
            *staging_slot = Some(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("minidl staging"),
                size: staging_size(bytes, self.ctx.limits.max_buffer_size),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = staging_slot.as_ref().expect("created above");
        {
            let mut recorder = lock(&self.ctx.recorder);
            recorder.encoder(&self.ctx.device).copy_buffer_to_buffer(
                src.buffer().raw(),
                src.offset() as u64 * 4,
                staging,
                0,
                bytes,
            );
            self.submit(&mut recorder)?;
        }
        let data = self.read_back::<f32>(staging, bytes, "a download");
        if data.is_err() {
            // A buffer whose mapping failed or never completed would poison every
            // later submission: drop it.
            *staging_slot = None;
        }
        Tensor::new(&src.shape(), data?)
    }

    pub(crate) fn zero_tensor(&self, dst: &DeviceTensor<Gpu>) -> Result<()> {
        self.health()?;
        if dst.is_empty() {
            return Ok(());
        }
        // A kernel rather than a buffer clear: it stays in the open compute pass, so
        // that zeroing gradients between steps does not split the recording.
        let count = dst.len();
        self.launch(
            Kernel::Fill,
            &[],
            dst,
            FillParams {
                count: to_u32("elements", count)?,
                value: 0.0,
                ..Default::default()
            },
            Grid::Flat(count),
        )
    }

    pub(crate) fn copy_data(&self, src: &DeviceTensor<Gpu>, dst: &DeviceTensor<Gpu>) -> Result<()> {
        self.health()?;
        if src.is_empty() {
            return Ok(());
        }
        let ctx = &self.ctx;
        let mut recorder = lock(&ctx.recorder);
        recorder.encoder(&ctx.device).copy_buffer_to_buffer(
            src.buffer().raw(),
            src.offset() as u64 * 4,
            dst.buffer().raw(),
            dst.offset() as u64 * 4,
            src.len() as u64 * 4,
        );
        recorder.recorded(&ctx.queue);
        Ok(())
    }
}

/// The staging buffer for a download of `bytes`: the next power of two (so that growing
/// downloads reallocate rarely), but never over the adapter's `max_buffer_size`, which
/// a tensor that passed the size check fits within.
fn staging_size(bytes: u64, max_buffer_size: u64) -> u64 {
    bytes
        .next_power_of_two()
        .min(max_buffer_size & !3)
        .max(bytes)
}

#[cfg(test)]
mod tests {
    use super::staging_size;

    #[test]
    fn the_staging_buffer_stays_within_the_adapters_buffer_limit() {
        assert_eq!(staging_size(12, 1 << 30), 16);
        assert_eq!(staging_size(1 << 20, 1 << 30), 1 << 20);
        // 100 MiB rounds to 128 MiB, over a 120 MiB limit: the limit instead.
        let limit = 120 << 20;
        assert_eq!(staging_size(100 << 20, limit), limit);
        assert_eq!(staging_size(100 << 20, limit + 2), limit);
        assert_eq!(staging_size(limit, limit), limit);
    }
}
