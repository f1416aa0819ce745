//! Recording without waiting: one open command encoder collects the ops (consecutive
//! kernels in one compute pass), and is submitted (never waited on) every
//! [`SUBMIT_EVERY`] commands or when the host needs a result. Uniform blocks and bind
//! groups are made once per distinct argument set and cached, so a training step that
//! repeats allocates nothing.

use std::collections::HashMap;

use wgpu::util::DeviceExt;

use super::buffer::DroppedBuffers;
use crate::backend::gpu::kernels::convention::{INPUTS, MAX_INPUTS, OUTPUT, PARAMS, SECOND_OUTPUT};

/// Commands recorded before the encoder is handed to the queue without a wait.
pub(crate) const SUBMIT_EVERY: usize = 512;

/// Cached uniform blocks or bind groups beyond which a cache is emptied, bounding the
/// memory that views of dropped tensors and one-off argument sets can hold. The views
/// of a step's mini-batch give it about 4 uniform blocks and bind groups of its own (8 020
/// in an epoch of 2 000 seed steps), so an epoch of up to about 16 000 such steps
/// reuses every one of them after the first (at 4 096, an epoch of more than about 1 000
/// steps created them anew every epoch).
const CACHE_LIMIT: usize = 1 << 16;

/// A process-unique number for a compiled pipeline, by which the bind-group cache
/// tells pipelines apart (every pipeline of every family draws from this one count).
pub(crate) fn next_pipeline_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Counts of the objects the GPU backend has created and of its submissions: a step
/// that repeats should raise none but `dispatches`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Tensor buffers created (allocations and uploads).
    pub buffers: u64,
    /// Uniform blocks created.
    pub uniforms: u64,
    /// Bind groups created.
    pub bind_groups: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted.
    pub submissions: u64,
    /// Times the host waited for the device (downloads and synchronizations).
    pub waits: u64,
    /// Bind groups held in the cache now (not a count of creations): those of dropped
    /// buffers leave it, so it stays bounded by the buffers alive.
    pub cached_bind_groups: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: u64,
    uniform: u64,
    inputs: [u64; MAX_INPUTS],
    output: u64,
    /// The second output's buffer, 0 for none.
    second: u64,
}

/// The mutable recording state of a GPU context, kept behind its mutex.
pub(crate) struct Recorder {
    /// The compute pass open on `encoder`, if any: consecutive dispatches share it
    /// (wgpu orders them with barriers); any other command ends it first. Declared
    /// before `encoder` so that it is dropped (ended) first.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    pending: usize,
    /// Uniform blocks by their words (a family's parameter struct as `u32`s).
    uniforms: HashMap<Box<[u32]>, (u64, wgpu::Buffer)>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    next_uniform_id: u64,
    /// Buffers dropped since the caches were last pruned of them.
    pub(crate) dropped: DroppedBuffers,
    /// The device timer's measurement in flight, if any: see [`Timing`].
    pub(crate) timing: Option<Timing>,
    pub(crate) stats: GpuStats,
}

/// A device-time measurement in flight: the thread that started it, whether it has
/// stopped, and whether another thread recorded commands between its start and stop
/// (then the time would include them, and is not reported).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub owner: std::thread::ThreadId,
    pub stopped: bool,
    pub shared: bool,
}

/// One kernel launch, already checked: the pipeline (and a number identifying it), the
/// buffers it binds and its workgroup grid.
pub(crate) struct Launch<'a> {
    pub pipeline: &'a wgpu::ComputePipeline,
    pub pipeline_id: u64,
    /// The parameter block's words.
    pub params: &'a [u32],
    pub inputs: [Option<&'a wgpu::Buffer>; MAX_INPUTS],
    pub input_ids: [u64; MAX_INPUTS],
    pub output: &'a wgpu::Buffer,
    pub output_id: u64,
    /// The second output and its buffer's id, for a kernel with two.
    pub second: Option<(&'a wgpu::Buffer, u64)>,
    pub groups: (u32, u32),
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder {
            pass: None,
            encoder: None,
            pending: 0,
            uniforms: HashMap::new(),
            bind_groups: HashMap::new(),
            next_uniform_id: 1,
            dropped: DroppedBuffers::default(),
            timing: None,
            stats: GpuStats::default(),
        }
    }

    /// The open encoder, created on first use, with no pass open on it.
    pub(crate) fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("minidl"),
            })
        })
    }

    /// Counts one recorded command; submits when [`SUBMIT_EVERY`] have piled up.
    pub(crate) fn recorded(&mut self, queue: &wgpu::Queue) {
        if let Some(timing) = self.timing.as_mut().filter(|t| !t.stopped && !t.shared) {
            timing.shared = timing.owner != std::thread::current().id();
        }
        self.pending += 1;
        if self.pending >= SUBMIT_EVERY {
            self.submit(queue);
        }
    }

    /// Hands the open encoder's commands to the queue, without waiting.
    pub(crate) fn submit(&mut self, queue: &wgpu::Queue) {
        self.pass = None;
        if let Some(encoder) = self.encoder.take() {
            queue.submit([encoder.finish()]);
            self.stats.submissions += 1;
        }
        self.pending = 0;
    }

    fn uniform(&mut self, device: &wgpu::Device, params: &[u32]) -> (u64, wgpu::Buffer) {
        if self.uniforms.len() >= CACHE_LIMIT && !self.uniforms.contains_key(params) {
            self.uniforms.clear();
            self.bind_groups.clear();
        }
        if let Some(found) = self.uniforms.get(params) {
            return found.clone();
        }
        // Uniform buffers are bound in whole 16-byte rows.
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4) * 4, 0);
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("minidl params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let id = self.next_uniform_id;
        self.next_uniform_id += 1;
        self.stats.uniforms += 1;
        self.uniforms.insert(params.into(), (id, buffer.clone()));
        (id, buffer)
    }

    /// Drops the cached bind groups that bind a buffer whose last handle is gone (they
    /// would keep its memory alive).
    fn prune_dropped(&mut self) {
        let gone: Vec<u64> = match self.dropped.lock() {
            Ok(mut ids) if !ids.is_empty() => std::mem::take(&mut *ids),
            _ => return,
        };
        self.bind_groups.retain(|key, _| {
            !gone
                .iter()
                .any(|id| key.output == *id || key.second == *id || key.inputs.contains(id))
        });
        self.stats.cached_bind_groups = self.bind_groups.len() as u64;
    }

    fn bind_group(&mut self, device: &wgpu::Device, launch: &Launch<'_>) -> wgpu::BindGroup {
        self.prune_dropped();
        let (uniform_id, uniform) = self.uniform(device, launch.params);
        let key = BindKey {
            pipeline: launch.pipeline_id,
            uniform: uniform_id,
            inputs: launch.input_ids,
            output: launch.output_id,
            second: launch.second.map_or(0, |(_, id)| id),
        };
        if self.bind_groups.len() >= CACHE_LIMIT && !self.bind_groups.contains_key(&key) {
            self.bind_groups.clear();
        }
        if let Some(found) = self.bind_groups.get(&key) {
            return found.clone();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: PARAMS,
            resource: uniform.as_entire_binding(),
        }];
        for (&binding, input) in INPUTS.iter().zip(launch.inputs.iter().flatten()) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: input.as_entire_binding(),
            });
        }
        entries.push(wgpu::BindGroupEntry {
            binding: OUTPUT,
            resource: launch.output.as_entire_binding(),
        });
        if let Some((second, _)) = launch.second {
            entries.push(wgpu::BindGroupEntry {
                binding: SECOND_OUTPUT,
                resource: second.as_entire_binding(),
            });
        }
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &launch.pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.stats.bind_groups += 1;
        self.bind_groups.insert(key, group.clone());
        self.stats.cached_bind_groups = self.bind_groups.len() as u64;
        group
    }

    /// Records `launch` into the open compute pass.
    pub(crate) fn dispatch(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        launch: &Launch<'_>,
    ) {
        let group = self.bind_group(device, launch);
        if self.pass.is_none() {
            let pass = self
                .encoder(device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("opened above");
        pass.set_pipeline(launch.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(launch.groups.0, launch.groups.1, 1);
        self.stats.dispatches += 1;
        self.recorded(queue);
    }
}
