//! [`DeviceTimer`]: device time between two points of the recorded work, for the
//! backends that can measure it (see [`Backend::timer`](super::Backend::timer)).

use crate::error::Result;

/// Times recorded device work with device timestamps.
pub trait DeviceTimer {
    /// Marks the start of the device work to time.
    fn timer_start(&self) -> Result<()>;

    /// Marks the end of the work begun by [`DeviceTimer::timer_start`], without waiting.
    fn timer_stop(&self) -> Result<()>;

    /// The device time between the last start and stop, in milliseconds, waiting for
    /// it; `None` when no stop was recorded since the last read.
    fn timer_read(&self) -> Result<Option<f64>>;
}
