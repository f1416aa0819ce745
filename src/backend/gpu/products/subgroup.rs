//! The linear layer's three matrix products as a family of generated kernels: one
//! subgroup per workgroup computes a block of `rows × (lanes · cols)` outputs, each
//! lane `rows × cols` of them in registers. Operands are read as `vec4<f32>` along
//! their contiguous dimension, each lane loading its own rows of one operand and its
//! own columns of the other; the rows reach the other lanes by `subgroupBroadcast` (a
//! register move), so no workgroup memory and no barrier is used. Every loop is
//! unrolled in the generated code except the one along the sum, whose iterations are
//! a quarter of the sum's length (within llvmpipe's loop budget where that is).
//!
//! - [`Product::Forward`]: `y = act(x·wᵀ + b)`, both operands along the sum; the bias
//!   and activation in the epilogue.
//! - [`Product::GradInput`]: `dx = (dy ⊙ act′)·w`, the gate applied as `dy` is loaded,
//!   `w` read along its rows.
//! - [`Product::GradWeight`]: `dw (+)= (dy ⊙ act′)ᵀ·x` and `db (+)= Σ_rows dy ⊙ act′`
//!   in one dispatch, added to the gradients or written over them; each lane sums the
//!   rows of `dy` it loads anyway, and the first block of columns writes `db`.
//!
//! Sums run in the order of the summed index, with fused multiply-adds.

use std::fmt::Write;

use super::product::Product;
use super::source::{declare_bindings, opening_source, SIZES};

/// One member of the family: the workgroup is one subgroup of `lanes` invocations;
/// it computes `rows` output rows and `lanes · cols` output columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GemmConfig {
    /// Output rows per workgroup: a multiple of `lanes` (and, for
    /// [`Product::GradWeight`], of `4 · lanes`).
    pub rows: u32,
    /// Output columns per lane: a multiple of 4.
    pub cols: u32,
    /// Invocations per workgroup: the adapter's subgroup size.
    pub lanes: u32,
}

impl GemmConfig {
    /// Rows of the row operand each lane loads.
    fn rows_per_lane(self) -> u32 {
        self.rows / self.lanes
    }

    /// Whether the configuration is one the generator accepts for `product`.
    pub fn is_valid(self, product: Product) -> bool {
        let per_lane = if self.lanes == 0 {
            0
        } else {
            self.rows_per_lane()
        };
        self.lanes > 0
            && per_lane > 0
            && self.rows == per_lane * self.lanes
            && self.cols > 0
            && self.cols.is_multiple_of(4)
            && (product != Product::GradWeight || per_lane.is_multiple_of(4))
    }

    /// Outputs per workgroup along the columns.
    pub fn block_cols(self) -> u32 {
        self.lanes * self.cols
    }

    /// A short name, e.g. `64x8/8` (rows × columns per lane / lanes).
    pub fn label(self) -> String {
        format!("{}x{}/{}", self.rows, self.cols, self.lanes)
    }
}

/// Whether `product` can run a generated kernel for `x: n×k`, `w: m×k`: the vec4 reads
/// need the contiguous dimensions (and the views' offsets, which the caller checks) to
/// be multiples of 4.
pub fn fits(product: Product, _n: usize, k: usize, m: usize) -> bool {
    match product {
        Product::Forward => k.is_multiple_of(4),
        Product::GradInput | Product::GradWeight => k.is_multiple_of(4) && m.is_multiple_of(4),
    }
}

/// The WGSL of `product` with `config` (an entry point `gemm`), or `None` where the
/// configuration is not valid for it. A `gated` gradient product reads the forward
/// output `y` (binding 3) and applies the activation's gate to `dy` as it loads it;
/// an ungated one (the identity) binds no `y`. The forward is never gated.
pub fn source(product: Product, config: GemmConfig, gated: bool) -> Option<String> {
    let gated = gated && product != Product::Forward;
    if !config.is_valid(product) {
        return None;
    }
    // No `enable subgroups;`: naga 30 rejects the directive and accepts the built-ins
    // on a device with the SUBGROUP feature.
    let mut s = opening_source(product, &config.label(), "rows × columns per lane / lanes");
    let (a, b, c) = match product {
        Product::Forward => ("x", "w", "bias"),
        Product::GradInput => ("dy", "w", "y"),
        Product::GradWeight => ("dy", "x", "y"),
    };
    let third = if product == Product::Forward {
        "array<f32>"
    } else {
        "array<vec4<f32>>"
    };
    let third = (product == Product::Forward || gated).then_some((c, third));
    declare_bindings(&mut s, product, [a, b], "array<vec4<f32>>", third);
    s.push_str(&match product {
        Product::Forward => forward(config),
        Product::GradInput => grad_input(config, gated),
        Product::GradWeight => grad_weight(config, gated),
    });
    Some(s)
}

/// The entry point's opening: sizes, the lane, and the first output row and column of
/// the lane.
fn opening(config: GemmConfig) -> String {
    format!(
        "
@compute @workgroup_size({lanes})
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{
{SIZES}    let lane = lid.x;
    let row0 = wid.y * {rows}u;
    let col0 = wid.x * {block}u + lane * {cols}u;
",
        lanes = config.lanes,
        rows = config.rows,
        block = config.block_cols(),
        cols = config.cols,
    )
}

/// Declares the accumulators `acc_ρ_j`, zero.
fn accumulators(config: GemmConfig) -> String {
    let mut s = String::new();
    for r in 0..config.rows {
        let _ = write!(s, "    var acc_{r}_0 = 0.0;");
        for j in 1..config.cols {
            let _ = write!(s, " var acc_{r}_{j} = 0.0;");
        }
        s.push('\n');
    }
    s
}

/// The forward product: rows of x and columns (rows of w) both read along k.
fn forward(config: GemmConfig) -> String {
    let per_lane = config.rows_per_lane();
    let mut s = opening(config);
    s.push_str("    let kq = k / 4u;\n");
    for t in 0..per_lane {
        let _ = writeln!(
            s,
            "    let xa_{t} = params.in0_at / 4u + min(row0 + lane * {per_lane}u + {t}u, n - 1u) * kq;"
        );
    }
    for j in 0..config.cols {
        let _ = writeln!(
            s,
            "    let wb_{j} = params.in1_at / 4u + min(col0 + {j}u, m - 1u) * kq;"
        );
    }
    s.push_str(&accumulators(config));
    s.push_str("    for (var q = 0u; q < kq; q++) {\n");
    for t in 0..per_lane {
        let _ = writeln!(s, "        let a_{t} = x[xa_{t} + q];");
    }
    for j in 0..config.cols {
        let _ = writeln!(s, "        let b_{j} = w[wb_{j} + q];");
    }
    for r in 0..config.rows {
        let (owner, slot) = (r / per_lane, r % per_lane);
        let _ = writeln!(
            s,
            "        {{ let a = subgroupBroadcast(a_{slot}, {owner}u);"
        );
        for j in 0..config.cols {
            let _ = writeln!(
                s,
                "          acc_{r}_{j} = fma(a.w, b_{j}.w, fma(a.z, b_{j}.z, fma(a.y, b_{j}.y, fma(a.x, b_{j}.x, acc_{r}_{j}))));"
            );
        }
        s.push_str("        }\n");
    }
    s.push_str("    }\n");
    for r in 0..config.rows {
        for j in 0..config.cols {
            let _ = writeln!(
                s,
                "    if (row0 + {r}u < n && col0 + {j}u < m) {{ out[params.out_at + (row0 + {r}u) * m + col0 + {j}u] = activate(acc_{r}_{j} + bias[params.in2_at + col0 + {j}u], act, slope); }}"
            );
        }
    }
    s.push_str("}\n");
    s
}

/// The expression of one loaded vec4 of `dy`: gated by the matching `y` where `gated`.
fn load(dy: &str, y: &str, gated: bool) -> String {
    if gated {
        format!("gate4({dy}, {y}, act, slope)")
    } else {
        dy.to_string()
    }
}

/// The gated gradient of one vec4 of `dy` and `y`.
const GATE4: &str = "
fn gate4(dy: vec4<f32>, y: vec4<f32>, act: u32, slope: f32) -> vec4<f32> {
    return vec4<f32>(gate(dy.x, y.x, act, slope), gate(dy.y, y.y, act, slope),
                     gate(dy.z, y.z, act, slope), gate(dy.w, y.w, act, slope));
}
";

/// `dx = dz·w`: rows of dz read along m (the sum), w read along its rows (the output
/// columns); dx is `n × k`.
fn grad_input(config: GemmConfig, gated: bool) -> String {
    let per_lane = config.rows_per_lane();
    let quads = config.cols / 4;
    let mut s = GATE4.to_string();
    s.push_str(&opening(config));
    s.push_str("    let mq = m / 4u;\n    let kq = k / 4u;\n");
    for t in 0..per_lane {
        let _ = writeln!(
            s,
            "    let da_{t} = params.in0_at / 4u + min(row0 + lane * {per_lane}u + {t}u, n - 1u) * mq;\n    \
             let ya_{t} = params.in2_at / 4u + min(row0 + lane * {per_lane}u + {t}u, n - 1u) * mq;"
        );
    }
    for v in 0..quads {
        let _ = writeln!(
            s,
            "    let wc_{v} = params.in1_at / 4u + min(col0 / 4u + {v}u, kq - 1u);"
        );
    }
    s.push_str(&accumulators(config));
    s.push_str("    for (var q = 0u; q < mq; q++) {\n");
    for t in 0..per_lane {
        let _ = writeln!(
            s,
            "        let a_{t} = {};",
            load(&format!("dy[da_{t} + q]"), &format!("y[ya_{t} + q]"), gated)
        );
    }
    // Rows 4q .. 4q + 3 of w, this lane's columns: b_{e}_{v} is row 4q + e, columns
    // 4v .. 4v + 3 of the lane's.
    for e in 0..4 {
        for v in 0..quads {
            let _ = writeln!(
                s,
                "        let b_{e}_{v} = w[wc_{v} + (4u * q + {e}u) * kq];"
            );
        }
    }
    let comp = ["x", "y", "z", "w"];
    for r in 0..config.rows {
        let (owner, slot) = (r / per_lane, r % per_lane);
        let _ = writeln!(
            s,
            "        {{ let a = subgroupBroadcast(a_{slot}, {owner}u);"
        );
        for j in 0..config.cols {
            let (v, c) = (j / 4, comp[(j % 4) as usize]);
            let _ = writeln!(
                s,
                "          acc_{r}_{j} = fma(a.w, b_3_{v}.{c}, fma(a.z, b_2_{v}.{c}, fma(a.y, b_1_{v}.{c}, fma(a.x, b_0_{v}.{c}, acc_{r}_{j}))));"
            );
        }
        s.push_str("        }\n");
    }
    s.push_str("    }\n");
    for r in 0..config.rows {
        for j in 0..config.cols {
            let _ = writeln!(
                s,
                "    if (row0 + {r}u < n && col0 + {j}u < k) {{ out[params.out_at + (row0 + {r}u) * k + col0 + {j}u] = acc_{r}_{j}; }}"
            );
        }
    }
    s.push_str("}\n");
    s
}

/// `dw (+)= dzᵀ·x`: dw is `m × k`, its rows are columns of dz (read along m), its
/// columns those of x (read along k), the sum over the n rows of both. Each lane also
/// sums the vec4s of dz it loads (its own rows of dw), in the order of the rows, and
/// the workgroups of the first block of columns write those sums to `db`.
fn grad_weight(config: GemmConfig, gated: bool) -> String {
    let per_lane = config.rows_per_lane();
    let (row_quads, quads) = (per_lane / 4, config.cols / 4);
    let mut s = GATE4.to_string();
    s.push_str(&opening(config));
    s.push_str("    let mq = m / 4u;\n    let kq = k / 4u;\n");
    for t in 0..row_quads {
        let _ = writeln!(
            s,
            "    let dc_{t} = min((row0 + lane * {per_lane}u) / 4u + {t}u, mq - 1u);"
        );
    }
    for v in 0..quads {
        let _ = writeln!(s, "    let xc_{v} = min(col0 / 4u + {v}u, kq - 1u);");
    }
    s.push_str(&accumulators(config));
    for t in 0..row_quads {
        let _ = writeln!(s, "    var sum_{t} = vec4<f32>(0.0);");
    }
    // One row of dz and x: `step(r)` adds its outer product to the accumulators.
    let comp = ["x", "y", "z", "w"];
    let step = |r: &str| -> String {
        let mut s = String::from("        {\n");
        for t in 0..row_quads {
            let _ = writeln!(
                s,
                "        let a_{t} = {};",
                load(
                    &format!("dy[params.in0_at / 4u + ({r}) * mq + dc_{t}]"),
                    &format!("y[params.in2_at / 4u + ({r}) * mq + dc_{t}]"),
                    gated
                )
            );
            let _ = writeln!(s, "        sum_{t} += a_{t};");
        }
        for v in 0..quads {
            let _ = writeln!(
                s,
                "        let b_{v} = x[params.in1_at / 4u + ({r}) * kq + xc_{v}];"
            );
        }
        for owner in 0..config.lanes {
            for t in 0..row_quads {
                let _ = writeln!(s, "        {{ let a = subgroupBroadcast(a_{t}, {owner}u);");
                for e in 0..4 {
                    let row = owner * per_lane + 4 * t + e;
                    for j in 0..config.cols {
                        let (v, c) = (j / 4, comp[(j % 4) as usize]);
                        let _ = writeln!(
                            s,
                            "          acc_{row}_{j} = fma(a.{}, b_{v}.{c}, acc_{row}_{j});",
                            comp[e as usize]
                        );
                    }
                }
                s.push_str("        }\n");
            }
        }
        s.push_str("        }\n");
        s
    };
    // Four rows per iteration (fewer loop iterations, which cost much on llvmpipe),
    // then the rest one by one; the sums still run in the order of the rows.
    s.push_str("    var r = 0u;\n    for (; r + 4u <= n; r += 4u) {\n");
    for e in 0..4 {
        s.push_str(&step(&format!("r + {e}u")));
    }
    s.push_str("    }\n    for (; r < n; r++) {\n");
    s.push_str(&step("r"));
    s.push_str("    }\n    let add = params.accumulate != 0u;\n");
    for r in 0..config.rows {
        for j in 0..config.cols {
            let _ = writeln!(
                s,
                "    if (row0 + {r}u < m && col0 + {j}u < k) {{ let o = params.out_at + (row0 + {r}u) * k + col0 + {j}u; out[o] = select(acc_{r}_{j}, out[o] + acc_{r}_{j}, add); }}"
            );
        }
    }
    s.push_str("    if (wid.x == 0u) {\n        let ob = params.out2_at;\n");
    for t in 0..row_quads {
        for e in 0..4 {
            let _ = writeln!(
                s,
                "        {{ let c = row0 + lane * {per_lane}u + {}u; if (c < m) {{ db[ob + c] = select(sum_{t}.{comp}, db[ob + c] + sum_{t}.{comp}, add); }} }}",
                4 * t + e,
                comp = comp[e as usize]
            );
        }
    }
    s.push_str("    }\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_valid_configuration_generates_wgsl_that_naga_accepts() {
        for product in Product::ALL {
            for (rows, cols, lanes) in [(8, 4, 8), (32, 8, 8), (64, 8, 8), (32, 4, 32), (16, 4, 4)]
            {
                let config = GemmConfig { rows, cols, lanes };
                for gated in [false, true] {
                    let Some(code) = source(product, config, gated) else {
                        assert!(!config.is_valid(product));
                        continue;
                    };
                    let module = naga::front::wgsl::parse_str(&code).unwrap_or_else(|e| {
                        panic!("{product:?} {config:?}: {}", e.emit_to_string(&code))
                    });
                    let mut v = naga::valid::Validator::new(
                        naga::valid::ValidationFlags::all(),
                        naga::valid::Capabilities::all(),
                    );
                    v.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
                    v.subgroup_operations(naga::valid::SubgroupOperationSet::all());
                    v.validate(&module)
                        .unwrap_or_else(|e| panic!("{product:?} {config:?}: {e:?}"));
                }
            }
        }
    }
}
