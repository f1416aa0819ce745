//! The fully fused MLP trainer: generates, per network and batch size, the WGSL of
//! `shaders/mlp_fused.wgsl` completed with its constants and its `train_step`, compiles
//! it once, and launches a whole epoch as one single-workgroup dispatch.

use std::collections::HashMap;
use std::fmt::Write;

use super::{lock, AdapterSummary, Gpu, Grid};
use crate::backend::{DeviceTensor, MlpEpoch, MlpSpec, Reduction};
use crate::error::{Error, Result};

/// The widest layer the fused trainer takes: a design limit (beyond it one workgroup
/// is a small share of a real GPU, and the weights an invocation holds in registers
/// grow); not measured against the generic path.
pub const MAX_WIDTH: usize = 64;

/// Pipeline ids of generated kernels start here, above the built-in kernels'.
const FIRST_ID: u64 = 1 << 32;

const TEMPLATE: &str = include_str!("../../../shaders/mlp_fused.wgsl");

/// Compiled fused kernels, one per network and batch size.
#[derive(Default)]
pub(super) struct FusedPipelines(HashMap<(MlpSpec, usize), (u64, wgpu::ComputePipeline)>);

/// Bytes of workgroup memory the fused kernel of `spec` needs for batches of `batch`:
/// the parameters, and each layer's output and output gradient for one batch.
pub fn workgroup_bytes(spec: &MlpSpec, batch: usize) -> usize {
    4 * (spec.param_count() + 2 * batch * spec.activation_width())
}

/// Loop iterations one dispatch may take per invocation: half of llvmpipe's limit of
/// 65535 for a whole invocation, as a margin over [`Layout::iterations_per_step`].
const ITERATION_BUDGET: usize = 32_768;

/// How a fused kernel works on one network and batch size, and where it keeps what.
///
/// Every phase gives each invocation one column: in the forward one output unit
/// (its weight row in registers), in the input gradient one input unit (its weight
/// column in registers), in the update one input unit (its inputs over the batch in
/// registers, updating that weight column; one more invocation updates the bias). The
/// invocations then walk the rows of the batch in step, so that every other read is
/// the same address for all of them (a broadcast, where llvmpipe needs no gather).
struct Layout<'a> {
    spec: &'a MlpSpec,
    batch: usize,
    /// Invocations of the workgroup.
    invocations: usize,
    /// Element offsets of each layer's weight and bias in the parameters.
    params: Vec<(usize, usize)>,
    /// Element offsets of each layer's output (and its gradient) in `acts` / `grads`.
    outs: Vec<usize>,
}

impl<'a> Layout<'a> {
    /// The layout for `invocations` per workgroup (see [`invocations`]).
    fn new(spec: &'a MlpSpec, batch: usize, invocations: usize) -> Self {
        let mut outs = Vec::new();
        let mut at = 0;
        for l in spec.layers() {
            outs.push(at);
            at += batch * l.outputs;
        }
        Layout {
            spec,
            batch,
            invocations,
            params: spec.offsets(),
            outs,
        }
    }

    /// `(j, c)` for the columns an invocation handles among `count`: WGSL names of
    /// column `lid + j · invocations`.
    fn columns(&self, count: usize) -> Vec<(usize, String)> {
        (0..count.div_ceil(self.invocations))
            .map(|j| (j, format!("c{j}")))
            .collect()
    }

    /// WGSL declaring the columns of [`Layout::columns`].
    fn declare_columns(&self, count: usize) -> String {
        self.columns(count)
            .iter()
            .map(|(j, c)| format!("        let {c} = lid + {}u;\n", j * self.invocations))
            .collect()
    }

    /// WGSL for element (`r`, `i`) of layer `l`'s input, a row of width `k` (`r` and
    /// `i` are WGSL expressions).
    fn input(&self, l: usize, r: &str, i: &str, k: usize) -> String {
        if l == 0 {
            format!("inputs[params.offs.x + (first + {r}) * {k}u + {i}]")
        } else {
            format!("acts[{}u + {r} * {k}u + {i}]", self.outs[l - 1])
        }
    }

    /// `body(r)` in a loop over the rows of the batch. (Unrolling it was slower on
    /// llvmpipe, and compiled for up to a minute for 32-wide layers.)
    fn for_rows(&self, body: impl Fn(&str) -> String) -> String {
        format!(
            "        for (var r = 0u; r < rows; r++) {{\n{}        }}\n",
            body("r")
        )
    }

    fn forward(&self, l: usize) -> String {
        let layer = self.spec.layers()[l];
        let (k, m) = (layer.inputs, layer.outputs);
        let (w, b) = self.params[l];
        let cols = self.columns(m);
        let mut s = format!("    if (lid < {m}u) {{\n{}", self.declare_columns(m));
        for (j, c) in &cols {
            for i in 0..k {
                let _ = writeln!(
                    s,
                    "        let w{j}_{i} = wp[{w}u + min({c}, {}u) * {k}u + {i}u];",
                    m - 1
                );
            }
            let _ = writeln!(s, "        let bias{j} = wp[{b}u + min({c}, {}u)];", m - 1);
        }
        s.push_str(&self.for_rows(|r| {
            let mut t = String::new();
            for i in 0..k {
                let x = self.input(l, r, &format!("{i}u"), k);
                let _ = writeln!(t, "            let x{i} = {x};");
            }
            for (j, c) in &cols {
                let _ = writeln!(t, "            if ({c} < {m}u) {{\n            var acc = 0.0;");
                for i in 0..k {
                    let _ = writeln!(t, "            acc += x{i} * w{j}_{i};");
                }
                let _ = writeln!(
                    t,
                    "            acts[{}u + {r} * {m}u + {c}] = activate(acc + bias{j}, {}u);\n            }}",
                    self.outs[l],
                    layer.act.code()
                );
            }
            t
        }));
        s.push_str("    }\n");
        s
    }

    /// The output gradient into `grads`, and (invocation 0) the batch loss.
    fn loss(&self) -> String {
        let last = self.spec.layers().len() - 1;
        let m = self.spec.outputs();
        let y = self.outs[last];
        let act = self.spec.layers()[last].act.code();
        let grads = self.for_rows(|r| {
            let mut t = String::new();
            for (_, c) in self.columns(m) {
                let at = format!("{y}u + {r} * {m}u + {c}");
                let _ = writeln!(
                    t,
                    "            if ({c} < {m}u) {{ grads[{at}] = gate((acts[{at}] - targets[params.offs.y + (first + {r}) * {m}u + {c}]) * grad_scale, acts[{at}], {act}u); }}"
                );
            }
            t
        });
        let cols = self.declare_columns(m);
        format!(
            "    let count = rows * {m}u;
    var grad_scale = 2.0;
    var loss_scale = 1.0;
    if (params.dims.w == 1u) {{
        grad_scale = 2.0 / f32(count);
        loss_scale = 1.0 / f32(count);
    }}
    if (lid < {m}u) {{
{cols}{grads}    }}
    if (lid == 0u) {{
        var acc = 0.0;
        for (var e = 0u; e < count; e++) {{
            let d = acts[{y}u + e] - targets[params.offs.y + first * {m}u + e];
            acc += d * d;
        }}
        losses[params.offs.w + step] = acc * loss_scale;
    }}
"
        )
    }

    /// The gradient with respect to layer `l`'s input (`l > 0`), stored as the
    /// gradient with respect to layer `l - 1`'s pre-activation (its `dz`).
    fn backward_input(&self, l: usize) -> String {
        let layer = self.spec.layers()[l];
        let (k, m) = (layer.inputs, layer.outputs);
        let w = self.params[l].0;
        let below = self.spec.layers()[l - 1].act.code();
        let cols = self.columns(k);
        let mut s = format!("    if (lid < {k}u) {{\n{}", self.declare_columns(k));
        for (j, i) in &cols {
            for c in 0..m {
                let _ = writeln!(
                    s,
                    "        let w{j}_{c} = wp[{w}u + {c}u * {k}u + min({i}, {}u)];",
                    k - 1
                );
            }
        }
        s.push_str(&self.for_rows(|r| {
            let mut t = String::new();
            for c in 0..m {
                let _ = writeln!(
                    t,
                    "            let d{c} = grads[{}u + {r} * {m}u + {c}u];",
                    self.outs[l]
                );
            }
            for (j, i) in &cols {
                let _ = writeln!(
                    t,
                    "            if ({i} < {k}u) {{\n            var acc = 0.0;"
                );
                for c in 0..m {
                    let _ = writeln!(t, "            acc += d{c} * w{j}_{c};");
                }
                let at = format!("{}u + {r} * {k}u + {i}", self.outs[l - 1]);
                let _ = writeln!(
                    t,
                    "            grads[{at}] = gate(acc, acts[{at}], {below}u);\n            }}"
                );
            }
            t
        }));
        s.push_str("    }\n");
        s
    }

    /// The SGD update of layer `l` from its `dz`: column `i < k` updates weight
    /// column `i`, column `k` the bias (its "input" is 1).
    fn update(&self, l: usize) -> String {
        let layer = self.spec.layers()[l];
        let (k, m) = (layer.inputs, layer.outputs);
        let (w, b) = self.params[l];
        let cols = self.columns(k + 1);
        let mut s = format!("    if (lid <= {k}u) {{\n{}", self.declare_columns(k + 1));
        for (j, _) in &cols {
            for c in 0..m {
                let _ = writeln!(s, "        var a{j}_{c} = 0.0;");
            }
        }
        s.push_str(&self.for_rows(|r| {
            let mut t = String::new();
            for c in 0..m {
                let _ = writeln!(
                    t,
                    "            let d{c} = grads[{}u + {r} * {m}u + {c}u];",
                    self.outs[l]
                );
            }
            for (j, i) in &cols {
                let x = self.input(l, r, &format!("min({i}, {}u)", k - 1), k);
                let _ = writeln!(t, "            let x{j} = select(1.0, {x}, {i} < {k}u);");
                for c in 0..m {
                    let _ = writeln!(t, "            a{j}_{c} += d{c} * x{j};");
                }
            }
            t
        }));
        for (j, i) in &cols {
            let _ = writeln!(s, "        if ({i} < {k}u) {{");
            for c in 0..m {
                let _ = writeln!(
                    s,
                    "            wp[{w}u + {c}u * {k}u + {i}] = wp[{w}u + {c}u * {k}u + {i}] - params.scalars.x * a{j}_{c};"
                );
            }
            let _ = writeln!(s, "        }} else if ({i} == {k}u) {{");
            for c in 0..m {
                let _ = writeln!(
                    s,
                    "            wp[{b}u + {c}u] = wp[{b}u + {c}u] - params.scalars.x * a{j}_{c};"
                );
            }
            s.push_str("        }\n");
        }
        s.push_str("    }\n");
        s
    }

    /// Loop iterations one invocation takes per mini-batch (an upper bound).
    fn iterations_per_step(&self) -> usize {
        let layers = self.spec.layers().len();
        1 + (3 * layers + 1) * self.batch + self.batch * self.spec.outputs()
    }

    /// Mini-batches one dispatch may run within [`ITERATION_BUDGET`].
    fn steps_per_dispatch(&self) -> usize {
        let load_store = 2 * self.spec.param_count().div_ceil(self.invocations);
        (ITERATION_BUDGET.saturating_sub(load_store) / self.iterations_per_step()).max(1)
    }

    /// The complete WGSL.
    fn source(&self) -> String {
        let spec = self.spec;
        let mut s = String::new();
        let _ = writeln!(s, "// Generated for {spec:?}, batches of {}.", self.batch);
        let _ = writeln!(s, "const WG: u32 = {}u;", self.invocations);
        let _ = writeln!(s, "const PARAM_COUNT: u32 = {}u;", spec.param_count());
        let _ = writeln!(
            s,
            "const ACT_LEN: u32 = {}u;\n",
            self.batch * spec.activation_width()
        );
        s.push_str(TEMPLATE);
        s.push_str("\n// One mini-batch: forward, loss, backward and update, layer by layer.\n");
        s.push_str("fn train_step(lid: u32, rows: u32, first: u32, step: u32) {\n");
        let last = spec.layers().len() - 1;
        for l in 0..=last {
            s.push_str(&self.forward(l));
            s.push_str("    workgroupBarrier();\n");
        }
        s.push_str(&self.loss());
        s.push_str("    workgroupBarrier();\n");
        // Layer l+1's update runs beside layer l's input gradient: they touch disjoint
        // memory, and the barrier after them orders both before what reads them.
        for l in (0..=last).rev() {
            if l > 0 {
                s.push_str(&self.backward_input(l));
            }
            if l < last {
                s.push_str(&self.update(l + 1));
            }
            s.push_str("    workgroupBarrier();\n");
        }
        s.push_str(&self.update(0));
        s.push_str("    workgroupBarrier();\n}\n");
        s
    }
}

/// The complete WGSL of the fused trainer for `spec`, batches of `batch` rows and
/// `invocations` invocations per workgroup (any number from 1 up).
pub fn source(spec: &MlpSpec, batch: usize, invocations: usize) -> String {
    Layout::new(spec, batch, invocations).source()
}

/// Invocations per workgroup of the fused kernel for `spec` on `adapter`. On a CPU
/// adapter (llvmpipe) as few SIMD groups of 8 as give each invocation at most 4
/// columns: every group repeats the same broadcast reads, which llvmpipe makes one
/// lane at a time, and more columns per invocation blow up the driver's compile time.
/// Elsewhere one invocation per unit of the widest layer plus the bias updater, in
/// whole warps of 32.
pub fn invocations(spec: &MlpSpec, adapter: &AdapterSummary) -> usize {
    if adapter.device_type == "Cpu" {
        (spec.max_width() + 1).div_ceil(4).next_multiple_of(8)
    } else {
        (spec.max_width() + 1).next_multiple_of(32)
    }
}

/// Whether the fused trainer takes `spec` with batches of `batch` on this device.
pub(super) fn fits(gpu: &Gpu, spec: &MlpSpec, batch: usize) -> bool {
    batch > 0
        && spec.max_width() <= MAX_WIDTH
        && workgroup_bytes(spec, batch) <= gpu.limits().max_compute_workgroup_storage_size as usize
        && invocations(spec, gpu.adapter())
            <= gpu.limits().max_compute_invocations_per_workgroup as usize
}

/// Records one epoch: a dispatch of one workgroup, or several in a row where the
/// epoch has more mini-batches than one dispatch may run (see [`ITERATION_BUDGET`]).
pub(super) fn epoch(
    gpu: &Gpu,
    spec: &MlpSpec,
    params: &DeviceTensor<Gpu>,
    inputs: &DeviceTensor<Gpu>,
    targets: &DeviceTensor<Gpu>,
    epoch: &MlpEpoch,
    losses: &DeviceTensor<Gpu>,
) -> Result<()> {
    if !fits(gpu, spec, epoch.batch_size) {
        return Err(Error::InvalidArgument(format!(
            "the fused trainer cannot take {spec:?} with batches of {}: it needs widths of at \
             most {MAX_WIDTH} and {} bytes of workgroup memory (the adapter has {})",
            epoch.batch_size,
            workgroup_bytes(spec, epoch.batch_size),
            gpu.limits().max_compute_workgroup_storage_size
        )));
    }
    let steps = inputs.rows().div_ceil(epoch.batch_size);
    if steps == 0 {
        return Ok(());
    }
    // The bind-group cache is keyed by views' offsets: every chunk's views stay the
    // same from epoch to epoch, so nothing is created after the first.
    let ctx = &gpu.ctx;
    let key = (spec.clone(), epoch.batch_size);
    let mut cache = lock(&ctx.fused);
    if !cache.0.contains_key(&key) {
        let code = source(spec, epoch.batch_size, invocations(spec, gpu.adapter()));
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("mlp_fused"),
                source: wgpu::ShaderSource::Wgsl(code.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("mlp_epoch"),
                layout: None,
                module: &module,
                entry_point: Some("mlp_epoch"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("compiling the fused trainer: {e}")));
        }
        let id = FIRST_ID + cache.0.len() as u64;
        cache.0.insert(key.clone(), (id, pipeline));
    }
    let (id, pipeline) = &cache.0[&key];
    let reduction = match epoch.reduction {
        Reduction::Sum => 0,
        Reduction::Mean => 1,
    };
    let per_dispatch =
        Layout::new(spec, epoch.batch_size, invocations(spec, gpu.adapter())).steps_per_dispatch();
    let mut first_step = 0;
    while first_step < steps {
        let count = per_dispatch.min(steps - first_step);
        let first_row = first_step * epoch.batch_size;
        let rows = inputs.rows() - first_row;
        gpu.launch_pipeline(
            "mlp_epoch",
            pipeline,
            *id,
            &[
                &inputs.slice_rows(first_row, rows)?,
                &targets.slice_rows(first_row, rows)?,
                params,
            ],
            &losses.slice_rows(first_step, count)?,
            [rows, epoch.batch_size, count, reduction],
            epoch.lr,
            Grid::Single,
        )?;
        first_step += count;
    }
    Ok(())
}
