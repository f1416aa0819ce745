//! The wgpu backend: every op is a WGSL compute kernel, recorded into a command encoder
//! and submitted in batches; the host waits only when it downloads a result.
//!
//! Files: [`adapter`] picks the adapter, `kernels` holds the shader sources and
//! pipelines, `recorder` the encoder and caches, `buffer` the storage handle, and one
//! file per shader encodes that op family's launches.

mod activation;
pub mod adapter;
mod buffer;
mod cross_entropy;
pub mod kernels;
pub mod linear;
pub mod mlp_fused;
mod mse;
mod optim;
mod recorder;
mod timer;

use std::sync::{Arc, Mutex, MutexGuard};

use wgpu::util::DeviceExt;

pub use adapter::{AdapterSummary, ADAPTER_ENV};
pub use buffer::GpuBuffer;
pub use recorder::GpuStats;

use crate::backend::{
    check, next_buffer_id, Act, AdamStep, Backend, BufferHandle, DeviceTensor, MlpEpoch, MlpSpec,
    MomentumStep, Reduction,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use buffer::TENSOR_USAGE;
use kernels::{Kernel, Pipelines};
use recorder::{Launch, Recorder};

/// Invocations along each side of the 16×16 workgroups of the matrix kernels.
const TILE: usize = 16;
/// Outputs along each side of the blocks of the tiled matrix product (`BLOCK` in WGSL).
const BLOCK: usize = 64;
/// Invocations of the one-dimensional kernels' workgroups (`WG_FLAT` in WGSL).
const FLAT: usize = 256;
/// Native features used where the adapter has them (each with a path without it):
/// subgroups for the fused trainer, timestamps for GPU time per epoch.
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);

/// The loop iterations per invocation ops keep within on llvmpipe (see
/// [`Gpu::loop_budget`]): half of its limit of 65 535.
pub const LOOP_BUDGET: usize = 32_768;

/// How long a download waits for its mapping once the device is idle.
const MAP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The wgpu backend. Cloning is cheap and clones share the device.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<Context>,
}

struct Context {
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
    /// The subgroup size, where the device has subgroups of one fixed size.
    subgroup_size: Option<u32>,
    /// The timestamp queries of `Backend::timer_*`, where the device has them.
    timer: Mutex<Option<timer::Timer>>,
}

/// The workgroup grid of a launch.
enum Grid {
    /// One invocation per element of a flat range.
    Flat(usize),
    /// One invocation per element of a `rows × cols` matrix, in 16×16 tiles.
    Tiles { rows: usize, cols: usize },
    /// One workgroup per 64×64 block of a `rows × cols` matrix.
    Blocks { rows: usize, cols: usize },
    /// A single workgroup.
    Single,
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

impl Gpu {
    /// The GPU backend on the default adapter: the one named by `MINIDL_ADAPTER` if
    /// set, else the most capable. [`Error::NoAdapter`] when there is none.
    pub fn new() -> Result<Self> {
        Self::with_adapter(None)
    }

    /// The GPU backend on the first adapter whose name contains `name`
    /// (case-insensitive); `None` behaves as [`Gpu::new`].
    pub fn with_adapter(name: Option<&str>) -> Result<Self> {
        let instance = adapter::instance();
        let adapter = adapter::choose(&instance, name)?;
        let summary = AdapterSummary::of(&adapter);
        let limits = adapter.limits();
        let features = adapter.features() & OPTIONAL_FEATURES;
        let info = adapter.get_info();
        let subgroup_size = (features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("minidl"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu(format!("cannot open a device on {summary}: {e}")))?;

        let device_error = Arc::new(Mutex::new(None));
        let sink = device_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            lock(&sink).get_or_insert_with(|| e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_sink) = Some(format!("{reason:?}: {message}"));
        });

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipelines = Pipelines::compile(&device);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "compiling the kernels on {summary}: {e}"
            )));
        }
        log::info!("minidl GPU backend on {summary}");
        let timer = timer::Timer::new(&device, &queue, features);
        Ok(Gpu {
            ctx: Arc::new(Context {
                device,
                queue,
                adapter: summary,
                limits,
                pipelines,
                recorder: Mutex::new(Recorder::new()),
                device_error,
                lost,
                staging: Mutex::new(None),
                fused: Mutex::new(Default::default()),
                subgroup_size,
                timer: Mutex::new(timer),
            }),
        })
    }

    /// Every adapter minidl can use on this machine, most capable first.
    pub fn adapters() -> Vec<AdapterSummary> {
        adapter::enumerate(&adapter::instance())
            .iter()
            .map(AdapterSummary::of)
            .collect()
    }

    /// The adapter this backend runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.ctx.adapter
    }

    /// Destroys the device now, freeing its memory without waiting for every clone of
    /// this backend to be dropped. Every later op on any clone returns
    /// [`Error::DeviceLost`], as after a device loss the driver reports (which this
    /// also lets tests provoke).
    pub fn destroy(&self) {
        lock(&self.ctx.lost).get_or_insert_with(|| "destroyed by Gpu::destroy".into());
        self.ctx.device.destroy();
    }

    /// The loop iterations a kernel invocation may run, where the adapter limits them:
    /// llvmpipe (a CPU adapter) silently ends an invocation after 65 535 iterations of
    /// all its loops together, so ops keep within half of that there, splitting their
    /// work into several launches or refusing shapes they cannot split. `None` on other
    /// adapters.
    pub fn loop_budget(&self) -> Option<usize> {
        (self.ctx.adapter.device_type == format!("{:?}", wgpu::DeviceType::Cpu))
            .then_some(LOOP_BUDGET)
    }

    /// The device limits in force.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// How many buffers, uniform blocks, bind groups, dispatches, submissions and host
    /// waits this backend (and its clones) has made so far.
    pub fn stats(&self) -> GpuStats {
        lock(&self.ctx.recorder).stats
    }

    /// Whether this device has the timestamp queries behind [`Backend::timer_read`].
    pub fn has_timestamps(&self) -> bool {
        lock(&self.ctx.timer).is_some()
    }

    /// [`Backend::linear_forward`] with a chosen kernel (for benchmarks and tests;
    /// the trait method picks by shape).
    pub fn linear_forward_with(
        &self,
        kernel: linear::MatmulKernel,
        x: &DeviceTensor<Gpu>,
        w: &DeviceTensor<Gpu>,
        b: &DeviceTensor<Gpu>,
        y: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        check::linear_forward(x, w, b, y)?;
        linear::forward(self, kernel, x, w, b, Act::Identity, y)
    }

    /// [`Error::DeviceLost`] once the device is lost, else the first error the device
    /// reported, else `Ok`.
    fn health(&self) -> Result<()> {
        if let Some(why) = lock(&self.ctx.lost).clone() {
            return Err(Error::DeviceLost(why));
        }
        if let Some(e) = lock(&self.ctx.device_error).take() {
            return Err(Error::Gpu(e));
        }
        Ok(())
    }

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
            GpuBuffer::new(raw, len, next_buffer_id(), dropped),
            0,
            rows,
            cols,
        )
    }

    /// Records one launch of a built-in kernel over already-checked tensors.
    fn launch(
        &self,
        kernel: Kernel,
        inputs: &[&DeviceTensor<Gpu>],
        output: &DeviceTensor<Gpu>,
        dims: [usize; 4],
        scalars: [f32; 4],
        grid: Grid,
    ) -> Result<()> {
        let pipeline = self.ctx.pipelines.get(kernel);
        let id = kernel.index() as u64;
        self.launch_pipeline(
            &format!("{kernel:?}"),
            pipeline,
            id,
            inputs,
            output,
            dims,
            scalars,
            grid,
        )
    }

    /// Records one launch of `pipeline` (known to the bind-group cache as `id`, and to
    /// messages as `name`) over already-checked tensors, with `dims` and `scalars` in
    /// its uniform block.
    #[allow(clippy::too_many_arguments)]
    fn launch_pipeline(
        &self,
        name: &str,
        pipeline: &wgpu::ComputePipeline,
        id: u64,
        inputs: &[&DeviceTensor<Gpu>],
        output: &DeviceTensor<Gpu>,
        dims: [usize; 4],
        scalars: [f32; 4],
        grid: Grid,
    ) -> Result<()> {
        self.health()?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let groups = match grid {
            Grid::Flat(0) => return Ok(()),
            Grid::Tiles { rows, cols } | Grid::Blocks { rows, cols } if rows == 0 || cols == 0 => {
                return Ok(())
            }
            Grid::Flat(count) => {
                let total = count.div_ceil(FLAT);
                let x = total.min(max);
                (x, total.div_ceil(x))
            }
            Grid::Tiles { rows, cols } => (cols.div_ceil(TILE), rows.div_ceil(TILE)),
            Grid::Blocks { rows, cols } => (cols.div_ceil(BLOCK), rows.div_ceil(BLOCK)),
            Grid::Single => (1, 1),
        };
        if groups.0 > max || groups.1 > max {
            return Err(Error::InvalidArgument(format!(
                "{name} needs {}×{} workgroups, over the adapter's limit of {max} per dimension",
                groups.0, groups.1
            )));
        }
        let mut params = [0u32; 12];
        for (slot, d) in params[0..4].iter_mut().zip(dims) {
            *slot = to_u32("dimension", d)?;
        }
        for (i, t) in inputs.iter().enumerate() {
            params[4 + i] = to_u32("offset", t.offset())?;
        }
        params[7] = to_u32("offset", output.offset())?;
        for (slot, s) in params[8..12].iter_mut().zip(scalars) {
            *slot = s.to_bits();
        }
        let raw: Vec<&wgpu::Buffer> = inputs.iter().map(|t| t.buffer().raw()).collect();
        let mut input_ids = [0u64; 3];
        for (slot, t) in input_ids.iter_mut().zip(inputs) {
            *slot = t.buffer().id();
        }
        let launch = Launch {
            pipeline,
            pipeline_id: id,
            params,
            inputs: &raw,
            input_ids,
            output: output.buffer().raw(),
            output_id: output.buffer().id(),
            groups: (groups.0 as u32, groups.1 as u32),
        };
        let ctx = &self.ctx;
        lock(&ctx.recorder).dispatch(&ctx.device, &ctx.queue, &launch);
        Ok(())
    }

    /// Submits the open encoder and reports device errors.
    fn submit(&self, recorder: &mut Recorder) -> Result<()> {
        recorder.submit(&self.ctx.queue);
        self.health()
    }

    /// Maps the first `bytes` of `buffer` (the work that fills it already submitted),
    /// waits, and copies them out as `T`s; the buffer is unmapped again on every path
    /// where it was mapped, since a mapped buffer poisons later submissions. `what`
    /// names the read in errors.
    fn read_back<T: bytemuck::Pod>(
        &self,
        buffer: &wgpu::Buffer,
        bytes: u64,
        what: &str,
    ) -> Result<Vec<T>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        // Another thread's poll may be the one that runs the callback: wait for it.
        match rx.recv_timeout(MAP_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Gpu(format!("mapping {what}: {e}"))),
            Err(_) => return Err(Error::Gpu(format!("{what} did not complete in time"))),
        }
        let data = buffer
            .get_mapped_range(0..bytes)
            .map(|v| bytemuck::cast_slice::<u8, T>(&v).to_vec())
            .map_err(|e| Error::Gpu(format!("reading {what}: {e}")));
        buffer.unmap();
        data
    }

    fn wait(&self) -> Result<()> {
        lock(&self.ctx.recorder).stats.waits += 1;
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.health()
    }
}

impl Backend for Gpu {
    type Buffer = GpuBuffer;

    fn name(&self) -> String {
        self.ctx.adapter.name.clone()
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        self.health()?;
        let len = rows.saturating_mul(cols);
        let bytes = self.check_size(&format!("a {rows}×{cols} tensor"), len)?;
        let raw = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        });
        self.wrap(raw, len, rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        self.health()?;
        let (rows, cols) = tensor.matrix_dims()?;
        self.check_size(&format!("a {rows}×{cols} tensor"), tensor.len())?;
        if tensor.is_empty() {
            return self.alloc(rows, cols);
        }
        let raw = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(tensor.data()),
                usage: TENSOR_USAGE,
            });
        self.wrap(raw, tensor.len(), rows, cols)
    }

    fn write(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        check::write(dst, data)?;
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

    fn download(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        self.health()?;
        let bytes = src.len() as u64 * 4;
        if bytes == 0 {
            return Tensor::new(&src.shape(), Vec::new());
        }
        let mut staging_slot = lock(&self.ctx.staging);
        if staging_slot.as_ref().is_none_or(|s| s.size() < bytes) {
            *staging_slot = Some(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("minidl staging"),
                size: bytes.next_power_of_two(),
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

    fn zero(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        self.health()?;
        if dst.is_empty() {
            return Ok(());
        }
        let ctx = &self.ctx;
        let mut recorder = lock(&ctx.recorder);
        recorder.encoder(&ctx.device).clear_buffer(
            dst.buffer().raw(),
            dst.offset() as u64 * 4,
            Some(dst.len() as u64 * 4),
        );
        recorder.recorded(&ctx.queue);
        Ok(())
    }

    fn copy(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        check::copy(src, dst)?;
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

    fn linear_act_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::linear_forward(x, w, b, y)?;
        let kernel = linear::MatmulKernel::for_shape(x.rows(), x.cols(), w.rows());
        linear::forward(self, kernel, x, w, b, act, y)
    }

    fn linear_act_backward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        y: Option<&DeviceTensor<Self>>,
        dy: &DeviceTensor<Self>,
        act: Act,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::linear_act_backward(x, w, y, dy, act, dx, dw, db)?;
        linear::backward(self, x, w, y, dy, act, dx, dw, db)
    }

    fn relu_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("relu_forward", &[x], y)?;
        activation::apply(self, Kernel::ReluForward, &[x], y, 0.0)
    }

    fn relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("relu_backward", &[x, dy], dx)?;
        activation::apply(self, Kernel::ReluBackward, &[x, dy], dx, 0.0)
    }

    fn tanh_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("tanh_forward", &[x], y)?;
        activation::apply(self, Kernel::TanhForward, &[x], y, 0.0)
    }

    fn tanh_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("tanh_backward", &[y, dy], dx)?;
        activation::apply(self, Kernel::TanhBackward, &[y, dy], dx, 0.0)
    }

    fn sigmoid_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("sigmoid_forward", &[x], y)?;
        activation::apply(self, Kernel::SigmoidForward, &[x], y, 0.0)
    }

    fn sigmoid_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("sigmoid_backward", &[y, dy], dx)?;
        activation::apply(self, Kernel::SigmoidBackward, &[y, dy], dx, 0.0)
    }

    fn leaky_relu_forward(
        &self,
        x: &DeviceTensor<Self>,
        slope: f32,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::leaky_relu("leaky_relu_forward", slope, &[x], y)?;
        activation::apply(self, Kernel::LeakyReluForward, &[x], y, slope)
    }

    fn leaky_relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        slope: f32,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::leaky_relu("leaky_relu_backward", slope, &[x, dy], dx)?;
        activation::apply(self, Kernel::LeakyReluBackward, &[x, dy], dx, slope)
    }

    fn cross_entropy_loss(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::cross_entropy("cross_entropy_loss", logits, labels, out, true)?;
        cross_entropy::loss(self, logits, labels, reduction, out)
    }

    fn cross_entropy_grad(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::cross_entropy("cross_entropy_grad", logits, labels, grad, false)?;
        cross_entropy::grad(self, logits, labels, reduction, grad)
    }

    fn mse_loss(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::mse_loss(pred, target, out)?;
        mse::loss(self, pred, target, reduction, out)
    }

    fn mse_grad(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("mse_grad", &[pred, target], grad)?;
        mse::grad(self, pred, target, reduction, grad)
    }

    fn sgd_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        check::sgd_step(param, grad, lr)?;
        optim::sgd(self, param, grad, lr)
    }

    fn momentum_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        check::momentum_step(param, grad, velocity, hyper)?;
        optim::momentum(self, param, grad, velocity, hyper)
    }

    fn adam_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        check::adam_step(param, grad, state, hyper)?;
        optim::adam(self, param, grad, state, hyper)
    }

    fn mlp_fits(&self, spec: &MlpSpec, batch_size: usize) -> bool {
        mlp_fused::fits(self, spec, batch_size)
    }

    fn mlp_epoch(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<Self>,
        inputs: &DeviceTensor<Self>,
        targets: &DeviceTensor<Self>,
        epoch: &MlpEpoch,
        losses: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::mlp_epoch(spec, params, inputs, targets, epoch, losses)?;
        mlp_fused::epoch(self, spec, params, inputs, targets, epoch, losses)
    }

    fn timer_start(&self) -> Result<()> {
        if let Some(timer) = lock(&self.ctx.timer).as_mut() {
            let mut recorder = lock(&self.ctx.recorder);
            timer.start(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        Ok(())
    }

    fn timer_stop(&self) -> Result<()> {
        if let Some(timer) = lock(&self.ctx.timer).as_mut() {
            let mut recorder = lock(&self.ctx.recorder);
            timer.stop(recorder.encoder(&self.ctx.device));
            recorder.recorded(&self.ctx.queue);
        }
        Ok(())
    }

    fn timer_read(&self) -> Result<Option<f64>> {
        let mut slot = lock(&self.ctx.timer);
        let Some(timer) = slot.as_mut().filter(|t| t.pending()) else {
            return Ok(None);
        };
        self.flush()?;
        let ticks = self.read_back::<u64>(timer.readback(), timer::BYTES, "the timestamps")?;
        Ok(Some(timer.elapsed_ms(&ticks)))
    }

    fn flush(&self) -> Result<()> {
        self.submit(&mut lock(&self.ctx.recorder))
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }
}
