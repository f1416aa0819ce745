//! The wgpu backend: every op is a WGSL compute kernel, recorded into a command encoder
//! and submitted in batches; the host waits only when it downloads a result.
//!
//! Files: [`adapter`] picks the adapter, `device` opens it and keeps its state,
//! `transfer` allocates and moves buffers, `launch` records one kernel launch,
//! `kernels` holds the shader sources and pipelines, `recorder` the encoder and caches,
//! `buffer` the storage handle, and one file per shader encodes that op family's
//! launches; [`gemm`] and [`gemm_staged`] generate the matrix products' kernels, among
//! which [`tuner`] chooses; [`mlp_fused`] generates the fused trainer.

mod activation;
pub mod adapter;
mod buffer;
mod cross_entropy;
mod device;
pub mod gemm;
pub mod gemm_staged;
pub mod kernels;
mod launch;
pub mod linear;
pub mod mlp_fused;
mod mse;
mod optim;
mod pipeline_cache;
mod recorder;
mod timer;
mod transfer;
pub mod tuner;

use std::sync::{Arc, Mutex, MutexGuard};

pub use adapter::{AdapterSummary, ADAPTER_ENV};
pub use buffer::GpuBuffer;
pub use recorder::GpuStats;

use crate::backend::{
    Act, AdamStep, Backend, DeviceTensor, DeviceTimer, GradMode, LossKind, MlpTrainer,
    MomentumStep, Reduction,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use kernels::Pipelines;
use launch::Grid;
use recorder::Recorder;

/// Invocations along each side of the 16×16 workgroups of the matrix kernels (`TILE`
/// in WGSL, from the generated prelude).
const TILE: usize = 16;
/// Outputs along each side of the blocks of the tiled matrix product (`BLOCK` in WGSL, from the
/// generated prelude).
const BLOCK: usize = 64;
/// Invocations of the one-dimensional kernels' workgroups (`WG_FLAT` in WGSL, from
/// the generated prelude).
const FLAT: usize = 256;
/// Native features used where the adapter has them (each with a path without it):
/// subgroups for the fused trainer, timestamps for GPU time per epoch.
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// The loop iterations per invocation ops keep within on llvmpipe (see
/// [`Gpu::loop_budget`]): half of its limit of 65 535. The fused trainer's dispatches
/// keep within it too.
pub const LOOP_BUDGET: usize = 32_768;

/// How long a download waits for its mapping once the device is idle.
const MAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The wgpu backend. Cloning is cheap and clones share the device.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<Context>,
    /// [`Gpu::loop_budget`]: the adapter's, unless [`Gpu::with_loop_budget`] set another.
    loop_budget: Option<usize>,
}

struct Context {
    /// A process-unique number for this device, which its buffers carry.
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    limits: wgpu::Limits,
    pipelines: Pipelines,
    recorder: Mutex<Recorder>,
    /// The first error the device reported outside an error scope, if any.
    device_error: Arc<Mutex<Option<String>>>,
    /// Why the device was lost, once it has been.
    lost: Arc<Mutex<Option<String>>>,
    staging: Mutex<Option<wgpu::Buffer>>,
    /// The fused trainers compiled so far.
    fused: Mutex<mlp_fused::FusedPipelines>,
    /// The generated matrix-product kernels compiled so far and the tuner's choices.
    tuner: Mutex<tuner::Tuner>,
    /// The subgroup size, where the device has subgroups of one fixed size.
    subgroup_size: Option<u32>,
    /// Whether the adapter is a CPU (llvmpipe), decided once: it gets a loop budget
    /// and the fused trainer's CPU workgroup shape.
    cpu_adapter: bool,
    /// The timestamp queries behind [`DeviceTimer`], where the device has them.
    timer: Mutex<Option<timer::Timer>>,
    /// Where compiled pipelines are kept across processes, if anywhere
    /// ([`Gpu::with_pipeline_cache`]).
    pipeline_cache: Option<pipeline_cache::DiskCache>,
}

impl Context {
    /// The pipeline cache to create pipelines with, if any.
    fn cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref().map(|c| &c.cache)
    }

    /// Saves the pipeline cache after a build, where there is one.
    fn built(&self) {
        if let Some(cache) = &self.pipeline_cache {
            cache.save();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn to_u32(what: &str, v: usize) -> Result<u32> {
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

impl Backend for Gpu {
    type Buffer = GpuBuffer;

    fn name(&self) -> String {
        self.ctx.adapter.name.clone()
    }

    fn device_id(&self) -> u64 {
        self.ctx.id
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        self.alloc_tensor(rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        self.upload_tensor(tensor)
    }

    fn download_unchecked(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        self.download_tensor(src)
    }

    fn zero_unchecked(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        self.zero_tensor(dst)
    }

    fn flush(&self) -> Result<()> {
        self.submit(&mut lock(&self.ctx.recorder))
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    fn write_unchecked(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        self.write_data(dst, data)
    }

    fn copy_unchecked(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        self.copy_data(src, dst)
    }

    fn linear_forward_unchecked(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        linear::forward(self, x, w, b, act, y)
    }

    fn linear_backward_unchecked(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        y: Option<&DeviceTensor<Self>>,
        dy: &DeviceTensor<Self>,
        act: Act,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
        mode: GradMode,
    ) -> Result<()> {
        linear::backward(self, x, w, y, dy, act, dx, dw, db, mode)
    }

    fn activation_forward_unchecked(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        activation::forward(self, act, x, y)
    }

    fn activation_backward_unchecked(
        &self,
        act: Act,
        saved: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        activation::backward(self, act, saved, dy, dx)
    }

    fn loss_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        match kind {
            LossKind::Mse => mse::loss(self, pred, target, reduction, out),
            LossKind::CrossEntropy => cross_entropy::loss(self, pred, target, reduction, out),
        }
    }

    fn loss_grad_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        match kind {
            LossKind::Mse => mse::grad(self, pred, target, reduction, grad),
            LossKind::CrossEntropy => cross_entropy::grad(self, pred, target, reduction, grad),
        }
    }

    fn sgd_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        optim::sgd(self, param, grad, lr)
    }

    fn momentum_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        optim::momentum(self, param, grad, velocity, hyper)
    }

    fn adam_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        optim::adam(self, param, grad, state, hyper)
    }

    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        Some(self)
    }

    fn timer(&self) -> Option<&dyn DeviceTimer> {
        self.has_timestamps().then_some(self as &dyn DeviceTimer)
    }
}
