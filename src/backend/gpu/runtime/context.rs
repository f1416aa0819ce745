//! The GPU backend's handle, [`Gpu`], and the state of its device that every part of
//! the backend shares: the device and queue, the built-in kernels' pipelines, the
//! recorder, health, and per-device state kept by type for the parts above the
//! runtime ([`Gpu::state`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::adapter::AdapterSummary;
use super::pipeline_cache::DiskCache;
use super::recorder::Recorder;
use super::timestamps::Timestamps;
use crate::backend::gpu::kernels::table::Pipelines;
use crate::backend::gpu::ops::conv_lowering::ConvLowering;
use crate::error::{Error, Result};

/// Native features used where the adapter has them (each with a path without it):
/// subgroups for the fused trainer, timestamps for GPU time per epoch.
pub(crate) const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// The loop iterations per invocation ops keep within on llvmpipe (see
/// [`Gpu::loop_budget`]): half of its limit of 65 535. The fused trainer's dispatches
/// keep within it too.
pub const LOOP_BUDGET: usize = 32_768;

/// How long a download waits for its mapping once the device is idle.
pub(crate) const MAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The wgpu backend. Cloning is cheap and clones share the device.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) ctx: Arc<Context>,
    /// [`Gpu::loop_budget`]: the adapter's, unless [`Gpu::with_loop_budget`] set another.
    pub(crate) loop_budget: Option<usize>,
    /// The lowering every convolution takes where [`Gpu::with_conv_lowering`] forced
    /// one; `None`: the measured choice.
    pub(crate) forced_conv: Option<ConvLowering>,
}

/// The state of one device, shared by every clone of its [`Gpu`].
pub(crate) struct Context {
    /// A process-unique number for this device, which its buffers carry.
    pub(crate) id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) adapter: AdapterSummary,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: Pipelines,
    pub(crate) recorder: Mutex<Recorder>,
    /// The first error the device reported outside an error scope, if any.
    pub(crate) device_error: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it has been.
    pub(crate) lost: Arc<Mutex<Option<String>>>,
    pub(crate) staging: Mutex<Option<wgpu::Buffer>>,
    /// The state that parts of the backend above the runtime keep per device (the
    /// products' kernels and choices, the whole-epoch trainers), by type: see
    /// [`Gpu::state`].
    pub(crate) states: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    /// The subgroup size, where the device has subgroups of one fixed size.
    pub(crate) subgroup_size: Option<u32>,
    /// Whether the adapter is a CPU (llvmpipe), decided once: it gets a loop budget
    /// and the fused trainer's CPU workgroup shape.
    pub(crate) cpu_adapter: bool,
    /// The timestamp queries behind [`DeviceTimer`], where the device has them.
    pub(crate) timer: Mutex<Option<Timestamps>>,
    /// Where compiled pipelines are kept across processes, if anywhere
    /// ([`Gpu::with_pipeline_cache`]).
    pub(crate) pipeline_cache: Option<DiskCache>,
}

impl Context {
    /// The pipeline cache to create pipelines with, if any.
    pub(crate) fn cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref().map(|c| &c.cache)
    }

    /// Saves the pipeline cache after a build, where there is one.
    pub(crate) fn built(&self) {
        if let Some(cache) = &self.pipeline_cache {
            cache.save();
        }
    }
}

/// Locks `m`, taking over a lock poisoned by a panic elsewhere (the state it guards
/// stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `v` as a kernel's 32-bit index, or an error naming `what`.
pub(crate) fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::InvalidArgument(format!(
            "{what} {v} exceeds the GPU kernels' 32-bit indices"
        ))
    })
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.ctx.adapter)
    }
}

impl Gpu {
    /// This device's state of type `T`, created (empty) on first use: how the parts of
    /// the backend that the runtime does not know (the products, the whole-epoch
    /// trainers) keep what they build per device without the runtime naming them.
    pub(crate) fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut states = lock(&self.ctx.states);
        let any = states
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        drop(states);
        any.downcast::<T>().expect("stored under its own TypeId")
    }
}
