//! The device's workspace: a few flat buffers that an op uses as scratch while it is
//! recorded (the convolution's unfolded input, say), kept and reused so that
//! steady-state training allocates nothing. Each slot holds one buffer per size class
//! (a power of two of elements): a request takes its class's buffer, made on the
//! class's first request, so that a launch binds the same buffer on every step, however
//! the ops' requests came in order (a later, larger request does not replace the buffer
//! an earlier, smaller one bound, which would make a bind group again on the next
//! step). A slot's buffers are of distinct powers of two, so together they hold less
//! than twice its largest. An op holds the workspace, locked, from its first launch to
//! its last, so that two threads recording on one device never interleave writes to
//! the same scratch buffer.

use std::sync::{Mutex, MutexGuard};

use super::context::{lock, Gpu};
use crate::backend::{Backend, BufferHandle, DeviceTensor};
use crate::error::Result;

/// How many scratch slots the workspace holds.
pub(crate) const SLOTS: usize = 3;

/// One slot's buffers, one per size class.
type Slot = Vec<DeviceTensor<Gpu>>;

/// The workspace's slots (a [`Gpu::state`]), each filled on demand.
#[derive(Default)]
pub(crate) struct Workspace {
    slots: Mutex<[Slot; SLOTS]>,
}

/// The workspace, locked for one op.
pub(crate) struct Held<'a> {
    gpu: &'a Gpu,
    slots: MutexGuard<'a, [Slot; SLOTS]>,
}

/// The size class of a request for `len` elements: the power of two at or above it,
/// but no more than the device's largest binding (`binding` elements) where `len` fits
/// within that.
fn size_class(len: usize, binding: usize) -> usize {
    len.checked_next_power_of_two()
        .unwrap_or(len)
        .min(binding)
        .max(len)
        .max(1)
}

impl Held<'_> {
    /// A `rows × cols` view at the start of slot `slot`'s buffer of the size class of
    /// `rows · cols` elements, allocated on that class's first request.
    pub(crate) fn view(
        &mut self,
        slot: usize,
        rows: usize,
        cols: usize,
    ) -> Result<DeviceTensor<Gpu>> {
        let binding = (self.gpu.limits().max_storage_buffer_binding_size / 4) as usize;
        let class = size_class(rows.saturating_mul(cols), binding);
        let held = &mut self.slots[slot % SLOTS];
        let buffer = match held.iter().find(|t| t.buffer().len() == class) {
            Some(t) => t.buffer().clone(),
            None => {
                let t = self.gpu.alloc(1, class)?;
                let buffer = t.buffer().clone();
                held.push(t);
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
            slots: lock(&state.slots),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn a_request_takes_the_power_of_two_at_or_above_it_within_the_binding() {
        assert_eq!(size_class(0, 1 << 20), 1);
        assert_eq!(size_class(1, 1 << 20), 1);
        assert_eq!(size_class(36_864, 1 << 20), 65_536);
        assert_eq!(size_class(65_536, 1 << 20), 65_536);
        // Rounding up stops at the largest binding, never below the request.
        assert_eq!(size_class(600_000, 1 << 19 | 1 << 18), 786_432);
        assert_eq!(size_class(900_000, 1 << 19), 900_000);
    }
}
