//! The GPU runtime: the adapter and device, buffers and transfers, recording and
//! launching kernels, timers, the pipeline cache on disk, and the scratch buffers ops
//! share (the workspace). It knows the calling
//! convention and the built-in kernels, not the ops built on them.

pub mod adapter;
pub mod buffer;
pub mod compile;
pub mod context;
pub mod device;
pub mod device_timer;
pub mod launch;
pub mod pipeline_cache;
pub mod recorder;
pub mod timestamps;
pub mod transfer;
pub mod workspace;
