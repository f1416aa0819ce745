//! The fully fused MLP trainer: generates, per network, batch size, loss and update
//! rule, the WGSL of `shaders/mlp_fused.wgsl` completed with its constants and its
//! `train_step`, compiles it once, and launches a whole epoch as one dispatch with one
//! workgroup per independent run (several dispatches where the epoch is too long for
//! one: llvmpipe ends an invocation after 65 535 loop iterations).
//!
//! One generator over 500 lines: its layout, phases and source assembly only make
//! sense together.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::backend::gpu::kernels::convention::{KernelParams, INPUTS, OUTPUT};
use crate::backend::gpu::kernels::params::EpochParams;
use crate::backend::gpu::kernels::table::prelude;
use crate::backend::gpu::runtime::context::{lock, to_u32, Gpu, LOOP_BUDGET};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{
    Act, DeviceTensor, LossKind, MlpRecipe, MlpSpec, MlpTrainer, Reduction, UpdateRule,
};
use crate::error::{Error, Result};

/// The widest layer the fused trainer takes: a design limit (beyond it one workgroup
/// is a small share of a real GPU, and the weights an invocation holds in registers
/// grow); not measured against the generic path.
pub const MAX_WIDTH: usize = 64;

/// The steps (over all runs) from which a fused run pays for building its kernel, where
/// it is not built yet: about the geometric middle of the break-even points measured
/// on llvmpipe, 50–400 steps. On 2026-12-02 with Mesa's shader cache off, building
/// took 369 ms for the seed network and 123 ms for 8-64-64-3, while a step-by-step
/// step cost 3.6 ms against 0.03 ms fused for the seed and 3.6 against 1.0 ms for
/// 8-64-64-3: won back after about 100 and 50 steps; with the figures of other days
/// (builds of 140–480 ms, step-by-step steps of 1.1–2.3 ms) after 60–400. Not measured
/// on a hardware GPU.
pub const FUSED_PAYS_FROM_STEPS: usize = 150;

/// The fused trainer's fixed part, after the generated prelude.
const TEMPLATE: &str = concat!(
    include_str!("../../../../shaders/act.wgsl"),
    include_str!("../../../../shaders/mlp_fused.wgsl")
);

/// What a fused kernel is generated for: the network, the batch size, the loss, and
/// the update rule's kind and constants (the learning rate is a parameter of each
/// launch, not part of the code).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KernelKey {
    spec: MlpSpec,
    batch: usize,
    loss: LossKind,
    /// The rule with a learning rate of 0, as bits.
    rule: [u32; 5],
}

impl KernelKey {
    fn new(spec: &MlpSpec, epoch: &MlpRecipe) -> Self {
        let rule = match epoch.rule {
            UpdateRule::Sgd { .. } => [0; 5],
            UpdateRule::Momentum(h) => [
                1,
                h.momentum.to_bits(),
                h.weight_decay.to_bits(),
                h.nesterov as u32,
                0,
            ],
            UpdateRule::Adam(h) => [
                2,
                h.beta1.to_bits(),
                h.beta2.to_bits(),
                h.eps.to_bits(),
                h.weight_decay.to_bits(),
            ],
        };
        KernelKey {
            spec: spec.clone(),
            batch: epoch.batch_size,
            loss: epoch.loss,
            rule,
        }
    }
}

/// Compiled fused kernels, one per [`KernelKey`]: a device's [`Gpu::state`].
#[derive(Default)]
struct FusedPipelines(Mutex<HashMap<KernelKey, (u64, wgpu::ComputePipeline)>>);

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

/// `x` as a WGSL `f32` literal that parses back to the same value.
fn lit(x: f32) -> String {
    format!("{x:?}f")
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
    loss: LossKind,
    /// The update rule (its learning rate unused: each launch passes one).
    rule: UpdateRule,
    /// Values of a row of targets.
    target_width: usize,
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
    /// The layout for epochs like `epoch` on a workgroup of `shape` (see [`shape`]).
    fn new(spec: &'a MlpSpec, epoch: &MlpRecipe, shape: Shape) -> Self {
        let batch = epoch.batch_size;
        let mut outs = Vec::new();
        let mut at = 0;
        for l in spec.layers() {
            outs.push(at);
            at += batch * l.outputs;
        }
        Layout {
            spec,
            batch,
            loss: epoch.loss,
            rule: epoch.rule,
            target_width: epoch.target_width(spec),
            invocations: shape.invocations,
            subgroup: (shape.subgroup && epoch.rule.state_rows() == 0).then_some(shape.invocations),
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

    /// WGSL statements setting `target` to the parameter value `w` after one step
    /// along the gradient `g` under the update rule, with the rule's state in the
    /// places `state` names (one per row of state), computed as the optimizer ops
    /// compute it. `w` is read before `target` is written, so both may name the same
    /// place.
    fn update(&self, target: &str, w: &str, g: &str, state: &[String]) -> String {
        match self.rule {
            UpdateRule::Sgd { .. } => format!("{target} = {w} - params.lr * {g};"),
            UpdateRule::Momentum(h) => {
                let (v, mu) = (&state[0], lit(h.momentum));
                let d = match h.nesterov {
                    true => format!("gd + {mu} * {v}"),
                    false => v.clone(),
                };
                format!(
                    "{{ let gd = {g} + {} * {w}; {v} = {mu} * {v} + gd; \
                     {target} = {w} - params.lr * ({d}); }}",
                    lit(h.weight_decay)
                )
            }
            UpdateRule::Adam(h) => {
                let (m, v) = (&state[0], &state[1]);
                format!(
                    "{{ let gd = {g} + {} * {w}; {m} = {m} + {} * (gd - {m}); \
                     {v} = {} * {v} + {} * (gd * gd); \
                     {target} = {w} - adam_step * ({m} / (sqrt({v}) / adam_correction + {})); }}",
                    lit(h.weight_decay),
                    lit(1.0 - h.beta1),
                    lit(h.beta2),
                    lit(1.0 - h.beta2),
                    lit(h.eps)
                )
            }
        }
    }

    /// The places of the rule's state for the parameter at `index` (a WGSL
    /// expression) of the packed parameters: storage, after the parameters.
    fn stored_state(&self, index: &str) -> Vec<String> {
        let count = self.spec.param_count();
        let state = self.rule.state();
        (0..state.rows())
            .map(|r| {
                format!(
                    "weights[param_at + {}u + {index}]",
                    count + state.row(r, count).start
                )
            })
            .collect()
    }

    /// WGSL for element (`r`, `i`) of layer `l`'s input, a row of width `k` (`r` and
    /// `i` are WGSL expressions).
    fn input(&self, l: usize, r: &str, i: &str, k: usize) -> String {
        if l == 0 {
            format!("inputs[in_at + (first + {r}) * {k}u + {i}]")
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
                let dv = yv - targets[target_at + (first + {r}) * {m}u + {c}];
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
        losses[loss_at + step] = total * loss_scale;
    }
"
            .to_string(),
            None => format!(
                "    if (lid == 0u) {{
        var acc = 0.0;
        for (var e = 0u; e < count; e++) {{
            let d = acts[{y}u + e] - targets[target_at + first * {m}u + e];
            acc += d * d;
        }}
        losses[loss_at + step] = acc * loss_scale;
    }}
"
            ),
        };
        format!(
            "    let count = rows * {m}u;
    var grad_scale = 2.0;
    var loss_scale = 1.0;
    if (params.mean == 1u) {{
        grad_scale = 2.0 / f32(count);
        loss_scale = 1.0 / f32(count);
    }}
    var part = 0.0;
    if (lid < {m}u) {{
{cols}{grads}    }}
{total}"
        )
    }

    /// The cross-entropy gradient into `grads`, and (invocation 0) the batch loss.
    /// Every invocation takes each row's logits (broadcast on one subgroup, read by
    /// all without), and computes its maximum and log-sum-exp as the reference does;
    /// each writes the gradient of its own columns. Invocation 0 sums the rows' losses
    /// in order. A label that is not a whole number below the classes makes the row's
    /// gradient and the loss NaN, as the reference's.
    fn cross_entropy(&self) -> String {
        let last = self.spec.layers().len() - 1;
        let m = self.spec.outputs();
        let y = self.outs[last];
        let act = wgsl_args(self.spec.layers()[last].act);
        let rows = self.for_rows(|r| {
            let mut t = self.row_values("z", m, |c| format!("acts[{y}u + {r} * {m}u + {c}]"));
            t.push_str("            var mx = z0;\n");
            for j in 1..m {
                let _ = writeln!(t, "            if (z{j} > mx) {{ mx = z{j}; }}");
            }
            t.push_str("            var se = 0.0;\n");
            for j in 0..m {
                let _ = writeln!(t, "            se += exp(z{j} - mx);");
            }
            let _ = writeln!(
                t,
                "            let lse = log(se);
            let label = targets[target_at + first + {r}];
            let valid = label >= 0.0 && label == floor(label) && label < {m}.0;
            let t = select({m}u, u32(label), valid);
            var zt = z0;"
            );
            for j in 1..m {
                let _ = writeln!(t, "            if (t == {j}u) {{ zt = z{j}; }}");
            }
            let _ = writeln!(
                t,
                "            if (lid == 0u) {{ part += select(nan, lse + mx - zt, valid); }}"
            );
            for (_, c) in self.columns(m) {
                let at = format!("{y}u + {r} * {m}u + {c}");
                let _ = writeln!(
                    t,
                    "            if ({c} < {m}u) {{
                let yv = acts[{at}];
                let p = exp(yv - mx - lse);
                let g = select(nan, select(p, p - 1.0, t == {c}) * scale, valid);
                grads[{at}] = gate(g, yv, {act});
            }}"
                );
            }
            t
        });
        format!(
            "    var scale = 1.0;
    if (params.mean == 1u) {{
        scale = 1.0 / f32(rows);
    }}
    let nan = bitcast<f32>(0x7fc00000u | (rows & 0u));
    var part = 0.0;
    {{
{cols}{rows}    }}
    if (lid == 0u) {{
        losses[loss_at + step] = part * scale;
    }}
",
            cols = self.declare_columns(m)
        )
    }

    /// The backward of layer `l` in one phase, each invocation owning input columns
    /// `i` (and one the bias, `i = k`): for `l > 0` the gradient with respect to its
    /// input, stored as layer `l − 1`'s dz (from the weights before the update), and
    /// the update of weight column `i` from Σ_rows dz ⊗ x (the rule's state of the
    /// column, where it has one, updated in place in storage by its owner alone).
    /// What an invocation reads of the weights it alone writes (once, into
    /// registers, before it writes them), so no barrier is needed between the two.
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
                    let at = j * m + c;
                    let place = format!("wc{l}[{at}u]");
                    let step = self.update(&place, &format!("w{j}_{c}"), &format!("a{j}_{c}"), &[]);
                    let _ = writeln!(s, "            {step}");
                }
                s.push_str("        }\n");
            }
            for (j, _) in &out_cols {
                for i in 0..k {
                    let at = j * k + i;
                    let place = format!("wr{l}[{at}u]");
                    let step = self.update(&place, &place, &format!("ar{j}_{i}"), &[]);
                    let _ = writeln!(s, "        {step}");
                }
                let place = format!("br{l}[{j}u]");
                let step = self.update(&place, &place, &format!("abr{j}"), &[]);
                let _ = writeln!(s, "        {step}");
            }
            s.push_str("    }\n");
            return s;
        }
        for (j, i) in &cols {
            let _ = writeln!(s, "        if ({i} < {k}u) {{");
            for c in 0..m {
                let index = format!("{w}u + {c}u * {k}u + {i}");
                let state = self.stored_state(&index);
                let place = format!("wp[{index}]");
                let step = self.update(&place, &format!("w{j}_{c}"), &format!("a{j}_{c}"), &state);
                let _ = writeln!(s, "            {step}");
            }
            let _ = writeln!(s, "        }} else if ({i} == {k}u) {{");
            for c in 0..m {
                let index = format!("{b}u + {c}u");
                let state = self.stored_state(&index);
                let place = format!("wp[{index}]");
                let step = self.update(&place, &place, &format!("a{j}_{c}"), &state);
                let _ = writeln!(s, "            {step}");
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
    /// its input columns); and Adam's bias corrections, which every invocation
    /// advances alike and the first stores.
    fn weights_io(&self) -> String {
        let count = self.spec.param_count();
        let (mut decls, mut load, mut store) = (String::new(), String::new(), String::new());
        if let UpdateRule::Adam(_) = self.rule {
            let at = count + self.rule.state().shared_values(count).start;
            decls.push_str("var<private> adam_c1: f32;\nvar<private> adam_c2: f32;\n");
            let _ = writeln!(
                load,
                "    adam_c1 = weights[param_at + {at}u];\n    adam_c2 = weights[param_at + {}u];",
                at + 1
            );
            let _ = writeln!(
                store,
                "    if (lid == 0u) {{\n        weights[param_at + {at}u] = adam_c1;\n        weights[param_at + {}u] = adam_c2;\n    }}",
                at + 1
            );
        }
        let Some(_) = self.subgroup else {
            return format!(
                "
{decls}
fn load_weights(lid: u32) {{
    for (var e = lid; e < PARAM_COUNT; e += WG) {{
        wp[e] = weights[param_at + e];
    }}
{load}}}

fn store_weights(lid: u32) {{
    for (var e = lid; e < PARAM_COUNT; e += WG) {{
        weights[param_at + e] = wp[e];
    }}
{store}}}
"
            );
        };
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
            let at = |e: String| format!("weights[param_at + {e}]");
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
        format!("\n{decls}\nfn load_weights(lid: u32) {{\n{load}}}\n\nfn store_weights(lid: u32) {{\n{store}}}\n")
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
            "const RUN_PARAMS: u32 = {}u;",
            self.rule.packed_len(spec)
        );
        let _ = writeln!(s, "const IN: u32 = {}u;", spec.inputs());
        let _ = writeln!(s, "const TARGET_WIDTH: u32 = {}u;", self.target_width);
        let _ = writeln!(
            s,
            "const ACT_LEN: u32 = {}u;\n",
            self.batch * spec.activation_width()
        );
        s.push_str(&prelude());
        s.push_str(&EpochParams::wgsl_binding());
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> inputs: array<f32>;\n\
             @group(0) @binding({}) var<storage, read> targets: array<f32>;\n\
             @group(0) @binding({}) var<storage, read_write> weights: array<f32>;\n\
             @group(0) @binding({OUTPUT}) var<storage, read_write> losses: array<f32>;",
            INPUTS[0], INPUTS[1], INPUTS[2]
        );
        s.push_str(TEMPLATE);
        s.push_str(&self.weights_io());
        s.push_str("\n// One mini-batch: forward, loss, backward and update, layer by layer.\n");
        s.push_str("fn train_step(lid: u32, rows: u32, first: u32, step: u32) {\n");
        if let UpdateRule::Adam(h) = self.rule {
            // The step's bias corrections, before its updates.
            let _ = writeln!(
                s,
                "    adam_c1 = {} + {} * adam_c1;\n    adam_c2 = {} + {} * adam_c2;\n    \
                 let adam_step = params.lr / adam_c1;\n    let adam_correction = sqrt(adam_c2);",
                lit(1.0 - h.beta1),
                lit(h.beta1),
                lit(1.0 - h.beta2),
                lit(h.beta2)
            );
        }
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
        s.push_str(&match self.loss {
            LossKind::Mse => self.loss(),
            LossKind::CrossEntropy => self.cross_entropy(),
        });
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

/// The workgroup of the fused kernel for `spec` and epochs like `epoch` on an adapter
/// that is a CPU (`cpu_adapter`, llvmpipe) or not, with subgroups of a fixed
/// `subgroup_size` or none.
///
/// - One subgroup, sharing row values by broadcast, when the update rule keeps no
///   state and that gives each invocation at most `MAX_COLUMNS` (4) columns. On
///   llvmpipe a broadcast is a register move, while every memory read is made one
///   lane at a time, even when all lanes read the same address (a seed epoch: 14 ms
///   without subgroups, about 6 with). The subgroup kernel keeps two private copies
///   of the weights, rows and columns; with a copy of the momentum or Adam state
///   beside each, llvmpipe took 35–95 s to compile it for the seed network without
///   its shader cache, against 13 s for cross-entropy with plain SGD (2026-12-02), so
///   a rule with state takes the layout below.
/// - Else one invocation per unit of the widest layer plus the bias updater: in
///   SIMD groups of 8 on a CPU adapter, in warps of 32 elsewhere. (Several columns
///   per invocation save llvmpipe repeated reads but took it 10–20 s to compile for
///   64-wide layers, against 3 s with one.)
pub fn shape(
    spec: &MlpSpec,
    epoch: &MlpRecipe,
    cpu_adapter: bool,
    subgroup_size: Option<u32>,
) -> Shape {
    let units = spec.max_width() + 1;
    let stateless = epoch.rule.state_rows() == 0;
    if let Some(size) = subgroup_size
        .map(|s| s as usize)
        .filter(|&s| s > 0 && stateless)
    {
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

/// The complete WGSL of the fused trainer for `spec`, epochs like `epoch` (its batch
/// size, loss and update rule; the learning rate is a parameter of each launch) and a
/// workgroup of `shape` (any number of invocations from 1 up; with `subgroup`, that
/// number must be the device's subgroup size; a rule with state ignores `subgroup`,
/// see [`shape`]).
pub fn source(spec: &MlpSpec, epoch: &MlpRecipe, shape: Shape) -> String {
    Layout::new(spec, epoch, shape).source()
}

/// The fused kernel's workgroup on `gpu`.
fn shape_on(gpu: &Gpu, spec: &MlpSpec, epoch: &MlpRecipe) -> Shape {
    shape(spec, epoch, gpu.ctx.cpu_adapter, gpu.ctx.subgroup_size)
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
            // The workgroup without subgroups, the larger (a rule with state takes it).
            && shape(spec, &MlpRecipe::sgd_mse(batch, 0.0, Reduction::Sum), self.ctx.cpu_adapter, None)
                .invocations
                <= self.limits().max_compute_invocations_per_workgroup as usize
    }

    fn prepare(&self, spec: &MlpSpec, epoch: &MlpRecipe) -> Result<()> {
        compiled(self, spec, epoch).map(|_| ())
    }

    /// From [`FUSED_PAYS_FROM_STEPS`] steps, or at once where the kernel is built.
    fn pays(&self, spec: &MlpSpec, epoch: &MlpRecipe, steps: usize) -> bool {
        steps >= FUSED_PAYS_FROM_STEPS
            || lock(&self.state::<FusedPipelines>().0).contains_key(&KernelKey::new(spec, epoch))
    }

    fn why_not(&self, spec: &MlpSpec, batch: usize) -> String {
        format!(
            "the fused trainer cannot take {spec:?} with batches of {batch}: it needs widths of \
             at most {MAX_WIDTH} and {} bytes of workgroup memory (the adapter has {})",
            workgroup_bytes(spec, batch),
            self.limits().max_compute_workgroup_storage_size
        )
    }

    fn mlp_epoch_runs_unchecked(
        &self,
        spec: &MlpSpec,
        runs: usize,
        params: &DeviceTensor<Gpu>,
        inputs: &DeviceTensor<Gpu>,
        targets: &DeviceTensor<Gpu>,
        epoch: &MlpRecipe,
        losses: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        run_epochs(self, spec, runs, params, inputs, targets, epoch, losses)
    }
}

/// The fused kernel for `spec` and epochs like `epoch` and its pipeline id, compiled
/// on first use and cached.
fn compiled(gpu: &Gpu, spec: &MlpSpec, epoch: &MlpRecipe) -> Result<(u64, wgpu::ComputePipeline)> {
    let key = KernelKey::new(spec, epoch);
    let state = gpu.state::<FusedPipelines>();
    let mut cache = lock(&state.0);
    if let Some((id, pipeline)) = cache.get(&key) {
        return Ok((*id, pipeline.clone()));
    }
    let code = source(spec, epoch, shape_on(gpu, spec, epoch));
    let (id, pipeline) = gpu.compile_pipeline("the whole-epoch trainer", code, "mlp_epoch")?;
    cache.insert(key, (id, pipeline.clone()));
    Ok((id, pipeline))
}

/// Records one epoch of each of `runs` runs laid out one after another (see
/// [`MlpTrainer::mlp_epoch_runs`]): one workgroup per run, in one dispatch (several
/// in a row where the epoch has more mini-batches than one dispatch may run, see
/// [`LOOP_BUDGET`], or there are more runs than a dispatch may have workgroups).
#[allow(clippy::too_many_arguments)]
fn run_epochs(
    gpu: &Gpu,
    spec: &MlpSpec,
    runs: usize,
    params: &DeviceTensor<Gpu>,
    inputs: &DeviceTensor<Gpu>,
    targets: &DeviceTensor<Gpu>,
    epoch: &MlpRecipe,
    losses: &DeviceTensor<Gpu>,
) -> Result<()> {
    let run_rows = inputs.rows() / runs;
    let run_steps = run_rows.div_ceil(epoch.batch_size);
    if run_steps == 0 {
        return Ok(());
    }
    let run_rows_u32 = u32::try_from(run_rows).map_err(|_| {
        Error::InvalidArgument(format!(
            "mlp_epoch: {run_rows} points per run are over the GPU's 32-bit indices"
        ))
    })?;
    // The bind-group cache is keyed by views' offsets: every chunk's views stay the
    // same from epoch to epoch, so nothing is created after the first.
    let (id, pipeline) = compiled(gpu, spec, epoch)?;
    let reduction = match epoch.reduction {
        Reduction::Sum => 0,
        Reduction::Mean => 1,
    };
    let per_dispatch = Layout::new(spec, epoch, shape_on(gpu, spec, epoch)).steps_per_dispatch();
    let max_groups = gpu.limits().max_compute_workgroups_per_dimension.max(1) as usize;
    for first_run in (0..runs).step_by(max_groups) {
        let group = max_groups.min(runs - first_run);
        let mut first_step = 0;
        while first_step < run_steps {
            let count = per_dispatch.min(run_steps - first_step);
            let first_row = first_step * epoch.batch_size;
            // From the chunk's first row of the group's first run to the end of its
            // last run.
            let rows = (group - 1) * run_rows + run_rows - first_row;
            let at = first_run * run_rows + first_row;
            gpu.launch_pipeline(
                "mlp_epoch",
                &pipeline,
                id,
                &[
                    &inputs.slice_rows(at, rows)?,
                    &targets.slice_rows(at, rows)?,
                    &params.slice_rows(first_run, group)?,
                ],
                (&losses.slice_rows(
                    first_run * run_steps + first_step,
                    (group - 1) * run_steps + count,
                )?)
                    .into(),
                EpochParams {
                    rows: to_u32("rows", run_rows - first_row)?,
                    batch: to_u32("batch size", epoch.batch_size)?,
                    batches: to_u32("mini-batches", count)?,
                    mean: reduction,
                    lr: epoch.rule.lr(),
                    run_rows: run_rows_u32,
                    ..Default::default()
                },
                Grid::Groups { x: group, y: 1 },
            )?;
            first_step += count;
        }
    }
    Ok(())
}
