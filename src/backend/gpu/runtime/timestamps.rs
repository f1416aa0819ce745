//! GPU time between two points of the recorded work, from timestamp queries written
//! into the command encoder, where the device has them (`TIMESTAMP_QUERY` and
//! `TIMESTAMP_QUERY_INSIDE_ENCODERS`).

/// A query set of two timestamps and the buffers that bring them back.
pub(crate) struct Timestamps {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period: f32,
    /// Whether a start and a stop have been recorded since the last read.
    pending: bool,
}

/// Bytes of the two resolved timestamps.
pub(crate) const BYTES: u64 = 16;

impl Timestamps {
    /// A timer, or `None` where `features` lack encoder timestamps.
    pub(crate) fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        features: wgpu::Features,
    ) -> Option<Timestamps> {
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
        Some(Timestamps {
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
    pub(crate) fn start(&mut self, encoder: &mut wgpu::CommandEncoder) {
        encoder.write_timestamp(&self.queries, 0);
        self.pending = false;
    }

    /// Records the stop timestamp and the copies that bring both back.
    pub(crate) fn stop(&mut self, encoder: &mut wgpu::CommandEncoder) {
        encoder.write_timestamp(&self.queries, 1);
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, BYTES);
        self.pending = true;
    }

    /// Whether a stop was recorded since the last read.
    pub(crate) fn pending(&self) -> bool {
        self.pending
    }

    /// The readback buffer, to map once the stop has been submitted.
    pub(crate) fn readback(&self) -> &wgpu::Buffer {
        &self.readback
    }

    /// Milliseconds between the two timestamps read back from the readback buffer.
    pub(crate) fn elapsed_ms(&mut self, ticks: &[u64]) -> f64 {
        self.pending = false;
        ticks[1].saturating_sub(ticks[0]) as f64 * self.period as f64 / 1e6
    }
}
