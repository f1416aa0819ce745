//! The device timer of a [`Gpu`]: device time between two points of the recorded
//! work, from the timestamp queries of [`Timestamps`], and the timing of one piece of work
//! on a timer of its own.

use super::context::{lock, Gpu};
use super::recorder::Timing;
use super::timestamps::{Timestamps, BYTES};
use crate::backend::{Backend, DeviceTimer};
use crate::error::Result;

impl Gpu {
    /// Device milliseconds of the work `run` records, between timestamps of `timer`,
    /// a timer apart from the device timer (which a `fit` may be using meanwhile).
    /// Waits for the device.
    pub(crate) fn device_millis(
        &self,
        timer: &mut Timestamps,
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
