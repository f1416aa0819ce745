//! The fully fused MLP trainer: generates, per network and batch size, the WGSL of
//! `shaders/mlp_fused.wgsl` completed with its constants and its `train_step`, compiles
//! it once, and launches a whole epoch as one single-workgroup dispatch (several where
//! the epoch is too long for one: llvmpipe ends an invocation after 65 535
//! loop iterations).
//!
//! One generator over 500 lines: its layout, phases and source assembly only make
//! sense together.

use std::collections::HashMap;
use std::fmt::Write;

use super::{kernels, lock, Gpu, Grid, LOOP_BUDGET};
use crate::backend::{Act, DeviceTensor, MlpEpoch, MlpSpec, MlpTrainer, Reduction};
use crate::error::{Error, Result};

/// The widest layer the fused trainer takes: a design limit (beyond it one workgroup
/// is a small share of a real GPU, and the weights an invocation holds in registers
/// grow); not measured against the generic path.
pub const MAX_WIDTH: usize = 64;

/// Pipeline ids of generated kernels start here, above the built-in kernels'.
const FIRST_ID: u64 = 1 << 32;

/// The fused trainer's fixed part, after the generated prelude.
const TEMPLATE: &str = concat!(
    include_str!("../../../shaders/act.wgsl"),
    include_str!("../../../shaders/mlp_fused.wgsl")
);

/// Compiled fused kernels, one per network and batch size.
#[derive(Default)]
pub(super) struct FusedPipelines(HashMap<(MlpSpec, usize), (u64, wgpu::ComputePipeline)>);

/// Bytes of workgroup memory the fused kernel of `spec` needs for batches of `batch`:
/// the parameters, and each layer's output and output gradient for one batch.
pub fn workgroup_bytes(spec: &MlpSpec, batch: usize) -> usize {
    4 * (spec.param_count() + 2 * batch * spec.activation_width())
}

/// The code and parameter of `act` as the arguments WGSL's `activate` and `gate` take
/// after the value (the slope printed so that it parses back to the same `f32`).
fn wgsl_args(act: Act) -> String {
    format!("{}u, {:?}", act.code(), act.slope())
}

/// How a fused kernel works on one network and batch size, and where it keeps what.
///
/// Each phase gives each invocation columns (`lid`, `lid + invocations`, ...): in a
/// layer's forward its output units (their weight rows in registers); in its
/// backward its input units (their weight columns in registers), computing the input
/// gradient and updating those columns, one more unit updating the bias. The
/// invocations walk the rows of the batch in step, so every value of a row that all
/// of them need is either read at the same address by all, or, on one subgroup, read
/// by its owner and broadcast. On one subgroup the weights never live in workgroup
/// memory: each invocation keeps the rows (forward) and columns (backward) it needs
/// in private copies and updates both alike.
struct Layout<'a> {
    spec: &'a MlpSpec,
    batch: usize,
    /// Invocations of the workgroup.
    invocations: usize,
    /// The subgroup size, when the workgroup is one subgroup and row values travel
    /// by subgroup broadcast.
    subgroup: Option<usize>,
    /// Element offsets of each layer's weight and bias in the parameters.
    params: Vec<(usize, usize)>,
    /// Element offsets of each layer's output (and its gradient) in `acts` / `grads`.
    outs: Vec<usize>,
}

impl<'a> Layout<'a> {
    /// The layout for a workgroup of `shape` (see [`shape`]).
    fn new(spec: &'a MlpSpec, batch: usize, shape: Shape) -> Self {
        let mut outs = Vec::new();
        let mut at = 0;
        for l in spec.layers() {
            outs.push(at);
            at += batch * l.outputs;
        }
        Layout {
            spec,
            batch,
            invocations: shape.invocations,
            subgroup: shape.subgroup.then_some(shape.invocations),
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

    /// WGSL defining `{name}0 .. {name}{count-1}`: the `count` values of one row,
    /// element `i` read by `at(i)`. With subgroups each invocation reads its own
    /// columns and the others get them by broadcast (a register move on llvmpipe);
    /// without, every invocation reads every value (the same address for all).
    fn row_values(&self, name: &str, count: usize, at: impl Fn(&str) -> String) -> String {
        let mut t = String::new();
        match self.subgroup {
            Some(size) => {
                // Only columns this invocation owns, and so wrote itself: no other
                // invocation's write is read, and no barrier is needed.
                for j in 0..count.div_ceil(size) {
                    let c = format!("(lid + {}u)", j * size);
                    let _ = writeln!(
                        t,
                        "            var {name}o{j} = 0.0;\n            if ({c} < {count}u) {{ {name}o{j} = {}; }}",
                        at(&c)
                    );
                }
                for i in 0..count {
                    let _ = writeln!(
                        t,
                        "            let {name}{i} = subgroupBroadcast({name}o{}, {}u);",
                        i / size,
                        i % size
                    );
                }
            }
            None => {
                for i in 0..count {
                    let _ = writeln!(t, "            let {name}{i} = {};", at(&format!("{i}u")));
                }
            }
        }
        t
    }

    fn forward(&self, l: usize) -> String {
        let layer = self.spec.layers()[l];
        let (k, m) = (layer.inputs, layer.outputs);
        let (w, b) = self.params[l];
        let cols = self.columns(m);
        let mut s = format!("    {{\n{}", self.declare_columns(m));
        for (j, c) in &cols {
            for i in 0..k {
                let _ = match self.subgroup {
                    Some(_) => writeln!(s, "        let w{j}_{i} = wr{l}[{}u];", j * k + i),
                    None => writeln!(
                        s,
                        "        let w{j}_{i} = wp[{w}u + min({c}, {}u) * {k}u + {i}u];",
                        m - 1
                    ),
                };
            }
            let _ = match self.subgroup {
                Some(_) => writeln!(s, "        let bias{j} = br{l}[{j}u];"),
                None => writeln!(s, "        let bias{j} = wp[{b}u + min({c}, {}u)];", m - 1),
            };
        }
        s.push_str(&self.for_rows(|r| {
            let mut t = self.row_values("x", k, |i| self.input(l, r, i, k));
            for (j, c) in &cols {
                let _ = writeln!(t, "            if ({c} < {m}u) {{\n            var acc = 0.0;");
                for i in 0..k {
                    let _ = writeln!(t, "            acc += x{i} * w{j}_{i};");
                }
                let _ = writeln!(
                    t,
                    "            acts[{}u + {r} * {m}u + {c}] = activate(acc + bias{j}, {});\n            }}",
                    self.outs[l],
                    wgsl_args(layer.act)
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
        let act = wgsl_args(self.spec.layers()[last].act);
        let grads = self.for_rows(|r| {
            let mut t = String::new();
            for (_, c) in self.columns(m) {
                let at = format!("{y}u + {r} * {m}u + {c}");
                let _ = writeln!(
                    t,
                    "            if ({c} < {m}u) {{
                let yv = acts[{at}];
                let dv = yv - targets[params.offs.y + (first + {r}) * {m}u + {c}];
                grads[{at}] = gate(dv * grad_scale, yv, {act});
                part += dv * dv;
            }}"
                );
            }
            t
        });
        let cols = self.declare_columns(m);
        // With subgroups each invocation sums its own columns and one reduction adds
        // the parts (another order than the reference's, within rounding); without,
        // invocation 0 sums in the reference's order.
        let total = match self.subgroup {
            Some(_) => "    let total = subgroupAdd(part);
    if (lid == 0u) {
        losses[params.offs.w + step] = total * loss_scale;
    }
"
            .to_string(),
            None => format!(
                "    if (lid == 0u) {{
        var acc = 0.0;
        for (var e = 0u; e < count; e++) {{
            let d = acts[{y}u + e] - targets[params.offs.y + first * {m}u + e];
            acc += d * d;
        }}
        losses[params.offs.w + step] = acc * loss_scale;
    }}
"
            ),
        };
        format!(
            "    let count = rows * {m}u;
    var grad_scale = 2.0;
    var loss_scale = 1.0;
    if (params.dims.w == 1u) {{
        grad_scale = 2.0 / f32(count);
        loss_scale = 1.0 / f32(count);
    }}
    var part = 0.0;
    if (lid < {m}u) {{
{cols}{grads}    }}
{total}"
        )
    }

    /// The backward of layer `l` in one phase, each invocation owning input columns
    /// `i` (and one the bias, `i = k`): for `l > 0` the gradient with respect to its
    /// input, stored as layer `l − 1`'s dz (from the weights before the update), and
    /// the SGD update of weight column `i` from Σ_rows dz ⊗ x. What an invocation
    /// reads of the weights it alone writes (once, into registers, before it writes
    /// them), so no barrier is needed between the two.
    fn backward(&self, l: usize) -> String {
        let layer = self.spec.layers()[l];
        let (k, m) = (layer.inputs, layer.outputs);
        let (w, b) = self.params[l];
        let cols = self.columns(k + 1);
        let mut s = format!("    {{\n{}", self.declare_columns(k + 1));
        for (j, i) in &cols {
            match self.subgroup {
                Some(_) => {
                    for c in 0..m {
                        let _ = writeln!(s, "        let w{j}_{c} = wc{l}[{}u];", j * m + c);
                    }
                }
                // Only the owner of column i reads it: the bias and padding
                // invocations (i ≥ k) must not read a column that its owner writes in
                // this same phase, and they never use the value.
                None => {
                    for c in 0..m {
                        let _ = writeln!(s, "        var w{j}_{c} = 0.0;");
                    }
                    let _ = writeln!(s, "        if ({i} < {k}u) {{");
                    for c in 0..m {
                        let _ = writeln!(s, "            w{j}_{c} = wp[{w}u + {c}u * {k}u + {i}];");
                    }
                    s.push_str("        }\n");
                }
            }
            for c in 0..m {
                let _ = writeln!(s, "        var a{j}_{c} = 0.0;");
            }
        }
        // With subgroups, the same update for the forward's copy of the weights, by
        // output column: Σ_rows dz (own) ⊗ x (broadcast), the same products in the
        // same order, so both copies stay equal.
        let out_cols = self.columns(m);
        if self.subgroup.is_some() {
            for (j, _) in &out_cols {
                for i in 0..k {
                    let _ = writeln!(s, "        var ar{j}_{i} = 0.0;");
                }
                let _ = writeln!(s, "        var abr{j} = 0.0;");
            }
        }
        s.push_str(&self.for_rows(|r| {
            let mut t = self.row_values("d", m, |c| {
                format!("grads[{}u + {r} * {m}u + {c}]", self.outs[l])
            });
            for (j, i) in &cols {
                // This row's input at column i: the update's x and, for l > 0, the
                // output of layer l − 1 that gates its dz (one read for both).
                let x = self.input(l, r, i, k);
                let _ = writeln!(
                    t,
                    "            var xv{j} = 0.0;\n            if ({i} < {k}u) {{ xv{j} = {x}; }}"
                );
                if l > 0 {
                    let _ = writeln!(
                        t,
                        "            if ({i} < {k}u) {{\n            var acc = 0.0;"
                    );
                    for c in 0..m {
                        let _ = writeln!(t, "            acc += d{c} * w{j}_{c};");
                    }
                    let at = format!("{}u + {r} * {k}u + {i}", self.outs[l - 1]);
                    let below = wgsl_args(self.spec.layers()[l - 1].act);
                    let _ = writeln!(
                        t,
                        "            grads[{at}] = gate(acc, xv{j}, {below});\n            }}"
                    );
                }
                let _ = writeln!(t, "            let x{j} = select(1.0, xv{j}, {i} < {k}u);");
                for c in 0..m {
                    let _ = writeln!(t, "            a{j}_{c} += d{c} * x{j};");
                }
            }
            if let Some(size) = self.subgroup {
                for i in 0..k {
                    let _ = writeln!(
                        t,
                        "            let xb{i} = subgroupBroadcast(x{}, {}u);",
                        i / size,
                        i % size
                    );
                }
                for (j, _) in &out_cols {
                    for i in 0..k {
                        let _ = writeln!(t, "            ar{j}_{i} += do{j} * xb{i};");
                    }
                    let _ = writeln!(t, "            abr{j} += do{j};");
                }
            }
            t
        }));
        if self.subgroup.is_some() {
            for (j, i) in &cols {
                let _ = writeln!(s, "        if ({i} < {k}u) {{");
                for c in 0..m {
                    let _ = writeln!(
                        s,
                        "            wc{l}[{}u] = w{j}_{c} - params.scalars.x * a{j}_{c};",
                        j * m + c
                    );
                }
                s.push_str("        }\n");
            }
            for (j, _) in &out_cols {
                for i in 0..k {
                    let at = j * k + i;
                    let _ = writeln!(
                        s,
                        "        wr{l}[{at}u] = wr{l}[{at}u] - params.scalars.x * ar{j}_{i};"
                    );
                }
                let _ = writeln!(
                    s,
                    "        br{l}[{j}u] = br{l}[{j}u] - params.scalars.x * abr{j};"
                );
            }
            s.push_str("    }\n");
            return s;
        }
        for (j, i) in &cols {
            let _ = writeln!(s, "        if ({i} < {k}u) {{");
            for c in 0..m {
                let _ = writeln!(
                    s,
                    "            wp[{w}u + {c}u * {k}u + {i}] = w{j}_{c} - params.scalars.x * a{j}_{c};"
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
        1 + (2 * layers + 1) * self.batch + self.batch * self.spec.outputs()
    }

    /// Mini-batches one dispatch may run within [`LOOP_BUDGET`].
    fn steps_per_dispatch(&self) -> usize {
        let load_store = 2 * self.spec.param_count().div_ceil(self.invocations);
        (LOOP_BUDGET.saturating_sub(load_store) / self.iterations_per_step()).max(1)
    }

    /// `load_weights` and `store_weights`: between storage and workgroup memory, or,
    /// with subgroups, between storage and each invocation's private copies (`wr`:
    /// the weight rows and biases of its output columns; `wc`: the weight columns of
    /// its input columns).
    fn weights_io(&self) -> String {
        let Some(_) = self.subgroup else {
            return "
fn load_weights(lid: u32) {
    for (var e = lid; e < PARAM_COUNT; e += WG) {
        wp[e] = weights[params.offs.z + e];
    }
}

fn store_weights(lid: u32) {
    for (var e = lid; e < PARAM_COUNT; e += WG) {
        weights[params.offs.z + e] = wp[e];
    }
}
"
            .to_string();
        };
        let mut decls = String::new();
        let mut load = String::from("\nfn load_weights(lid: u32) {\n");
        let mut store = String::from("\nfn store_weights(lid: u32) {\n");
        for (l, layer) in self.spec.layers().iter().enumerate() {
            let (k, m) = (layer.inputs, layer.outputs);
            let (w, b) = self.params[l];
            let out_cols = self.columns(m);
            let in_cols = self.columns(k + 1);
            let _ = writeln!(
                decls,
                "var<private> wr{l}: array<f32, {}>;",
                out_cols.len() * k
            );
            let _ = writeln!(decls, "var<private> br{l}: array<f32, {}>;", out_cols.len());
            let _ = writeln!(
                decls,
                "var<private> wc{l}: array<f32, {}>;",
                in_cols.len() * m
            );
            let at = |e: String| format!("weights[params.offs.z + {e}]");
            for (j, _) in &out_cols {
                let c = format!("min(lid + {}u, {}u)", j * self.invocations, m - 1);
                for i in 0..k {
                    let _ = writeln!(
                        load,
                        "    wr{l}[{}u] = {};",
                        j * k + i,
                        at(format!("{w}u + {c} * {k}u + {i}u"))
                    );
                }
                let _ = writeln!(load, "    br{l}[{j}u] = {};", at(format!("{b}u + {c}")));
                let _ = writeln!(store, "    if (lid + {}u < {m}u) {{", j * self.invocations);
                let c = format!("(lid + {}u)", j * self.invocations);
                for i in 0..k {
                    let _ = writeln!(
                        store,
                        "        {} = wr{l}[{}u];",
                        at(format!("{w}u + {c} * {k}u + {i}u")),
                        j * k + i
                    );
                }
                let _ = writeln!(
                    store,
                    "        {} = br{l}[{j}u];\n    }}",
                    at(format!("{b}u + {c}"))
                );
            }
            for (j, _) in &in_cols {
                let i = format!("min(lid + {}u, {}u)", j * self.invocations, k - 1);
                for c in 0..m {
                    let _ = writeln!(
                        load,
                        "    wc{l}[{}u] = {};",
                        j * m + c,
                        at(format!("{w}u + {c}u * {k}u + {i}"))
                    );
                }
            }
        }
        format!("\n{decls}{load}}}\n{store}}}\n")
    }

    /// The complete WGSL.
    fn source(&self) -> String {
        let spec = self.spec;
        let mut s = String::new();
        // No `enable subgroups;`: naga 30 rejects the directive, and accepts subgroup
        // built-ins on a device with the SUBGROUP feature.
        let _ = writeln!(s, "// Generated for {spec:?}, batches of {}.", self.batch);
        let _ = writeln!(s, "const WG: u32 = {}u;", self.invocations);
        let _ = writeln!(s, "const PARAM_COUNT: u32 = {}u;", spec.param_count());
        let _ = writeln!(
            s,
            "const ACT_LEN: u32 = {}u;\n",
            self.batch * spec.activation_width()
        );
        s.push_str(&kernels::prelude());
        s.push_str(TEMPLATE);
        s.push_str(&self.weights_io());
        s.push_str("\n// One mini-batch: forward, loss, backward and update, layer by layer.\n");
        s.push_str("fn train_step(lid: u32, rows: u32, first: u32, step: u32) {\n");
        // On one subgroup every invocation reads only workgroup memory it wrote itself
        // (what others computed arrives by broadcast): no barriers between phases.
        let barrier = match self.subgroup {
            Some(_) => "",
            None => "    workgroupBarrier();\n",
        };
        let last = spec.layers().len() - 1;
        for l in 0..=last {
            s.push_str(&self.forward(l));
            s.push_str(barrier);
        }
        s.push_str(&self.loss());
        s.push_str(barrier);
        for l in (0..=last).rev() {
            s.push_str(&self.backward(l));
            s.push_str(barrier);
        }
        s.push_str("}\n");
        s
    }
}

/// The workgroup a fused kernel runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Invocations per workgroup.
    pub invocations: usize,
    /// Whether the workgroup is exactly one subgroup whose invocations share row
    /// values by `subgroupBroadcast` (needs the SUBGROUP feature).
    pub subgroup: bool,
}

/// Columns per invocation beyond which a generated kernel takes llvmpipe too long to
/// compile (see [`shape`]).
const MAX_COLUMNS: usize = 4;

/// The workgroup of the fused kernel for `spec` on an adapter that is a CPU
/// (`cpu_adapter`, llvmpipe) or not, with subgroups of a fixed `subgroup_size` or none.
///
/// - One subgroup, sharing row values by broadcast, when that gives each invocation
///   at most `MAX_COLUMNS` (4) columns. On llvmpipe a broadcast is a register move,
///   while every memory read is made one lane at a time, even when all lanes read
///   the same address (a seed epoch: 14 ms without subgroups, about 6 with).
/// - Else one invocation per unit of the widest layer plus the bias updater: in
///   SIMD groups of 8 on a CPU adapter, in warps of 32 elsewhere. (Several columns
///   per invocation save llvmpipe repeated reads but took it 10–20 s to compile for
///   64-wide layers, against 3 s with one.)
pub fn shape(spec: &MlpSpec, cpu_adapter: bool, subgroup_size: Option<u32>) -> Shape {
    let units = spec.max_width() + 1;
    if let Some(size) = subgroup_size.map(|s| s as usize).filter(|&s| s > 0) {
        if units.div_ceil(size) <= MAX_COLUMNS {
            return Shape {
                invocations: size,
                subgroup: true,
            };
        }
    }
    let invocations = units.next_multiple_of(if cpu_adapter { 8 } else { 32 });
    Shape {
        invocations,
        subgroup: false,
    }
}

/// The complete WGSL of the fused trainer for `spec`, batches of `batch` rows and a
/// workgroup of `shape` (any number of invocations from 1 up; with `subgroup`, that
/// number must be the device's subgroup size).
pub fn source(spec: &MlpSpec, batch: usize, shape: Shape) -> String {
    Layout::new(spec, batch, shape).source()
}

/// The fused kernel's workgroup on `gpu`.
fn shape_on(gpu: &Gpu, spec: &MlpSpec) -> Shape {
    shape(spec, gpu.ctx.cpu_adapter, gpu.ctx.subgroup_size)
}

/// The GPU's fused trainer: one generated kernel per network and batch size.
impl MlpTrainer<Gpu> for Gpu {
    fn backend(&self) -> &Gpu {
        self
    }

    fn mlp_fits(&self, spec: &MlpSpec, batch: usize) -> bool {
        batch > 0
            && spec.max_width() <= MAX_WIDTH
            && workgroup_bytes(spec, batch)
                <= self.limits().max_compute_workgroup_storage_size as usize
            && shape_on(self, spec).invocations
                <= self.limits().max_compute_invocations_per_workgroup as usize
    }

    fn prepare(&self, spec: &MlpSpec, batch: usize) -> Result<()> {
        compiled(self, spec, batch).map(|_| ())
    }

    fn why_not(&self, spec: &MlpSpec, batch: usize) -> String {
        format!(
            "the fused trainer cannot take {spec:?} with batches of {batch}: it needs widths of \
             at most {MAX_WIDTH} and {} bytes of workgroup memory (the adapter has {})",
            workgroup_bytes(spec, batch),
            self.limits().max_compute_workgroup_storage_size
        )
    }

    fn mlp_epoch_unchecked(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<Gpu>,
        inputs: &DeviceTensor<Gpu>,
        targets: &DeviceTensor<Gpu>,
        epoch: &MlpEpoch,
        losses: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        run_epoch(self, spec, params, inputs, targets, epoch, losses)
    }
}

/// The fused kernel for `spec` and batches of `batch` and its pipeline id, compiled on
/// first use and cached.
fn compiled(gpu: &Gpu, spec: &MlpSpec, batch: usize) -> Result<(u64, wgpu::ComputePipeline)> {
    let ctx = &gpu.ctx;
    let key = (spec.clone(), batch);
    let mut cache = lock(&ctx.fused);
    if let Some((id, pipeline)) = cache.0.get(&key) {
        return Ok((*id, pipeline.clone()));
    }
    let code = source(spec, batch, shape_on(gpu, spec));
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
    cache.0.insert(key, (id, pipeline.clone()));
    Ok((id, pipeline))
}

/// Records one epoch: a dispatch of one workgroup, or several in a row where the
/// epoch has more mini-batches than one dispatch may run (see [`LOOP_BUDGET`]).
fn run_epoch(
    gpu: &Gpu,
    spec: &MlpSpec,
    params: &DeviceTensor<Gpu>,
    inputs: &DeviceTensor<Gpu>,
    targets: &DeviceTensor<Gpu>,
    epoch: &MlpEpoch,
    losses: &DeviceTensor<Gpu>,
) -> Result<()> {
    let steps = inputs.rows().div_ceil(epoch.batch_size);
    if steps == 0 {
        return Ok(());
    }
    // The bind-group cache is keyed by views' offsets: every chunk's views stay the
    // same from epoch to epoch, so nothing is created after the first.
    let (id, pipeline) = compiled(gpu, spec, epoch.batch_size)?;
    let reduction = match epoch.reduction {
        Reduction::Sum => 0,
        Reduction::Mean => 1,
    };
    let per_dispatch =
        Layout::new(spec, epoch.batch_size, shape_on(gpu, spec)).steps_per_dispatch();
    let mut first_step = 0;
    while first_step < steps {
        let count = per_dispatch.min(steps - first_step);
        let first_row = first_step * epoch.batch_size;
        let rows = inputs.rows() - first_row;
        gpu.launch_pipeline(
            "mlp_epoch",
            &pipeline,
            id,
            &[
                &inputs.slice_rows(first_row, rows)?,
                &targets.slice_rows(first_row, rows)?,
                params,
            ],
            &losses.slice_rows(first_step, count)?,
            [rows, epoch.batch_size, count, reduction],
            [epoch.lr, 0.0, 0.0, 0.0],
            Grid::Single,
        )?;
        first_step += count;
    }
    Ok(())
}
