//! Opening a device on an adapter, and the device's state: its health (errors and
//! loss), submissions, waits and read-backs, limits and counters.

use super::adapter::{self, AdapterSummary};
use super::context::{lock, Context, Gpu, LOOP_BUDGET, MAP_TIMEOUT, OPTIONAL_FEATURES};
use super::pipeline_cache::DiskCache;
use super::recorder::{next_pipeline_id, GpuStats, Recorder};
use super::timestamps::Timestamps;
use crate::backend::gpu::kernels::table::Pipelines;
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A process-unique device number, above the CPU's 0.
fn next_device_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Gpu {
    /// The GPU backend on the default adapter: the one named by `MINIDL_ADAPTER` if
    /// set, else the most capable. [`Error::NoAdapter`] when there is none.
    pub fn new() -> Result<Self> {
        Self::with_adapter(None)
    }

    /// The GPU backend on the first adapter whose name contains `name`
    /// (case-insensitive); `None` behaves as [`Gpu::new`]. Where `MINIDL_PIPELINE_CACHE`
    /// names a folder, as [`Gpu::with_pipeline_cache`] with that folder.
    pub fn with_adapter(name: Option<&str>) -> Result<Self> {
        let dir = std::env::var_os("MINIDL_PIPELINE_CACHE").filter(|d| !d.is_empty());
        Self::open(name, dir.as_deref().map(Path::new))
    }

    /// [`Gpu::with_adapter`], keeping the compiled pipelines (the kernels, and each
    /// fused trainer and tuned product as it is built) in a file in `dir` (created
    /// where missing) from which a later process loads them, where the adapter's
    /// driver can hand compiled pipelines back (wgpu's pipeline cache, Vulkan only;
    /// [`Gpu::pipeline_cache_file`] says whether it does). Elsewhere it is
    /// [`Gpu::with_adapter`]. A damaged file is ignored (the cache starts empty); a
    /// folder that cannot be created or a file that cannot be read is an error.
    ///
    /// Whether it saves time is the driver's: on llvmpipe the cache holds nothing (its
    /// data is a 96-byte header; Mesa keeps its own disk cache instead), and on NVIDIA
    /// it was not measured.
    pub fn with_pipeline_cache(name: Option<&str>, dir: impl AsRef<Path>) -> Result<Self> {
        Self::open(name, Some(dir.as_ref()))
    }

    /// The file the device keeps its compiled pipelines in, where it keeps them
    /// ([`Gpu::with_pipeline_cache`]).
    pub fn pipeline_cache_file(&self) -> Option<&Path> {
        self.ctx.pipeline_cache.as_ref().map(DiskCache::file)
    }

    fn open(name: Option<&str>, cache_dir: Option<&Path>) -> Result<Self> {
        let instance = adapter::instance();
        let adapter = adapter::choose(&instance, name)?;
        let summary = AdapterSummary::of(&adapter);
        let cpu_adapter = summary.is_cpu();
        let limits = adapter.limits();
        let wanted = match cache_dir {
            Some(_) => OPTIONAL_FEATURES | wgpu::Features::PIPELINE_CACHE,
            None => OPTIONAL_FEATURES,
        };
        let features = adapter.features() & wanted;
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

        let pipeline_cache = match cache_dir {
            Some(dir) => DiskCache::open(&device, &info, dir)?,
            None => None,
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipelines = Pipelines::compile(
            &device,
            pipeline_cache.as_ref().map(|c| &c.cache),
            next_pipeline_id,
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "compiling the kernels on {summary}: {e}"
            )));
        }
        if let Some(cache) = &pipeline_cache {
            cache.save();
        }
        log::info!("minidl GPU backend on {summary}");
        let timer = Timestamps::new(&device, &queue, features);
        Ok(Gpu {
            ctx: Arc::new(Context {
                id: next_device_id(),
                device,
                queue,
                adapter: summary,
                limits,
                pipelines,
                recorder: Mutex::new(Recorder::new()),
                device_error,
                lost,
                staging: Mutex::new(None),
                states: Mutex::new(Default::default()),
                subgroup_size,
                cpu_adapter,
                timer: Mutex::new(timer),
                pipeline_cache,
            }),
            loop_budget: cpu_adapter.then_some(LOOP_BUDGET),
            forced_conv: None,
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
    /// also lets tests provoke): the device's lost callback, which wgpu runs once the
    /// destroyed device's queue is empty, records it, as it records a real loss.
    pub fn destroy(&self) {
        self.ctx.device.destroy();
        // The poll that lets wgpu run the lost callback; a destroyed device may report
        // an error here, which the callback's record supersedes.
        let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
        lock(&self.ctx.lost).get_or_insert_with(|| {
            "destroyed by Gpu::destroy (the device's lost callback did not run)".into()
        });
    }

    /// The loop iterations a kernel invocation may run, where the adapter limits them:
    /// llvmpipe (a CPU adapter) silently ends an invocation after 65 535 iterations of
    /// all its loops together, so ops keep within half of that there, splitting their
    /// work into several launches or refusing shapes they cannot split. `None` on other
    /// adapters.
    pub fn loop_budget(&self) -> Option<usize> {
        self.loop_budget
    }

    /// This backend on the same device with `budget` as its [`Gpu::loop_budget`]: to
    /// exercise the splitting and the refusals of llvmpipe's limit on any adapter (the
    /// tests do), or to lift it (`None`) on a driver known to have no such limit.
    pub fn with_loop_budget(&self, budget: Option<usize>) -> Gpu {
        Gpu {
            loop_budget: budget,
            ..self.clone()
        }
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

    /// Whether this device has the timestamp queries behind its
    /// [`DeviceTimer`](crate::backend::DeviceTimer).
    pub fn has_timestamps(&self) -> bool {
        lock(&self.ctx.timer).is_some()
    }

    /// Fails where an invocation would loop `units × cost` times beyond the adapter's
    /// [`Gpu::loop_budget`], naming `op` and `what` (built only on failure).
    pub(crate) fn check_loop(
        &self,
        op: &str,
        units: usize,
        cost: usize,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        match self.loop_budget() {
            Some(budget) if units.saturating_mul(cost) > budget => {
                Err(Error::InvalidArgument(format!(
                    "{op}: {}, over the {} this adapter's kernels can loop over (llvmpipe ends an invocation after 65535 loop iterations)",
                    what(),
                    budget / cost
                )))
            }
            _ => Ok(()),
        }
    }

    /// [`Error::DeviceLost`] once the device is lost, else the first error the device
    /// reported, else `Ok`.
    pub(crate) fn health(&self) -> Result<()> {
        if let Some(why) = lock(&self.ctx.lost).clone() {
            return Err(Error::DeviceLost(why));
        }
        if let Some(e) = lock(&self.ctx.device_error).take() {
            return Err(Error::Gpu(e));
        }
        Ok(())
    }

    /// Submits the open encoder and reports device errors.
    pub(crate) fn submit(&self, recorder: &mut Recorder) -> Result<()> {
        recorder.submit(&self.ctx.queue);
        self.health()
    }

    /// Maps the first `bytes` of `buffer` (the work that fills it already submitted),
    /// waits, and copies them out as `T`s; the buffer is unmapped again on every path
    /// where it was mapped, since a mapped buffer poisons later submissions. `what`
    /// names the read in errors.
    pub(crate) fn read_back<T: bytemuck::Pod>(
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

    pub(crate) fn wait(&self) -> Result<()> {
        lock(&self.ctx.recorder).stats.waits += 1;
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.health()
    }
}
