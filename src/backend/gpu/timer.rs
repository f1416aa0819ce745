//! GPU time between two points of the recorded work, from timestamp queries written
//! into the command encoder, where the device has them (`TIMESTAMP_QUERY` and
//! `TIMESTAMP_QUERY_INSIDE_ENCODERS`).

use super::recorder::Timing;
use super::{lock, Gpu};
use crate::backend::{Backend, DeviceTimer};
use crate::error::Result;

/// A query set of two timestamps and the buffers that bring them back.
pub(super) struct Timer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period: f32,
    /// Whether a start and a stop have been recorded since the last read.
    pending: bool,
}

/// Bytes of the two resolved timestamps.
pub(super) const BYTES: u64 = 16;

impl Timer {
    /// A timer, or `None` where `features` lack encoder timestamps.
    pub(super) fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        features: wgpu::Features,
    ) -> Option<Timer> {
        let needed =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        if !features.contains(needed) {
            return None;
        }
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: BYTES,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(Timer {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("minidl timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: buffer(
                "minidl timer resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "minidl timer readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            period: queue.get_timestamp_period(),
            pending: false,
        })
    }

    /// Records the start timestamp.
    pub(super) fn start(&mut self, encoder: &mut wgpu::CommandEncoder) {
        encoder.write_timestamp(&self.queries, 0);
        self.pending = false;
    }

    /// Records the stop timestamp and the copies that bring both back.
    pub(super) fn stop(&mut self, encoder: &mut wgpu::CommandEncoder) {
        encoder.write_timestamp(&self.queries, 1);
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, BYTES);
        self.pending = true;
    }

    /// Whether a stop was recorded since the last read.
    pub(super) fn pending(&self) -> bool {
        self.pending
    }

    /// The readback buffer, to map once the stop has been submitted.
    pub(super) fn readback(&self) -> &wgpu::Buffer {
        &self.readback
    }

    /// Milliseconds between the two timestamps read back from the readback buffer.
    pub(super) fn elapsed_ms(&mut self, ticks: &[u64]) -> f64 {
        self.pending = false;
        ticks[1].saturating_sub(ticks[0]) as f64 * self.period as f64 / 1e6
    }
}

impl Gpu {
    /// Device milliseconds of the work `run` records, between timestamps of `timer`,
    /// a timer apart from the device timer (which a `fit` may be using meanwhile).
    /// Waits for the device.
    pub(super) fn device_millis(
        &self,
        timer: &mut Timer,
        run: impl FnOnce() -> Result<()>,
    ) -> Result<f64> {
        {
            let mut recorder = lock(&self.ctx.recorder);
            timer.start(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        run()?;
        {
            let mut recorder = lock(&self.ctx.recorder);
            timer.stop(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        self.flush()?;
        let ticks = self.read_back::<u64>(timer.readback(), BYTES, "the timestamps")?;
        Ok(timer.elapsed_ms(&ticks))
    }
}

/// The device timer of a `Gpu` is one per device: one thread's measurement runs at a
/// time (another thread's start is refused and its read gives `None`), and a
/// measurement during which another thread recorded work reads `None` too, since the
/// device time would include that work.
impl DeviceTimer for Gpu {
    fn timer_start(&self) -> Result<()> {
        let me = std::thread::current().id();
        if let Some(timer) = lock(&self.ctx.timer).as_mut() {
            let mut recorder = lock(&self.ctx.recorder);
            if recorder.timing.is_some_and(|t| t.owner != me) {
                return Ok(());
            }
            recorder.timing = Some(Timing {
                owner: me,
                stopped: false,
                shared: false,
            });
            timer.start(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        Ok(())
    }

    fn timer_stop(&self) -> Result<()> {
        let me = std::thread::current().id();
        if let Some(timer) = lock(&self.ctx.timer).as_mut() {
            let mut recorder = lock(&self.ctx.recorder);
            match recorder.timing.as_mut() {
                Some(t) if t.owner == me && !t.stopped => t.stopped = true,
                _ => return Ok(()),
            }
            timer.stop(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        Ok(())
    }

    fn timer_read(&self) -> Result<Option<f64>> {
        let me = std::thread::current().id();
        let mut slot = lock(&self.ctx.timer);
        let timing = {
            let mut recorder = lock(&self.ctx.recorder);
            match recorder.timing {
                Some(t) if t.owner == me => recorder.timing.take(),
                _ => None,
            }
        };
        let Some(timing) = timing else {
            return Ok(None);
        };
        let Some(timer) = slot.as_mut().filter(|t| t.pending()) else {
            return Ok(None);
        };
        self.flush()?;
        let ticks = self.read_back::<u64>(timer.readback(), BYTES, "the timestamps")?;
        let ms = timer.elapsed_ms(&ticks);
        Ok((!timing.shared).then_some(ms))
    }
}
