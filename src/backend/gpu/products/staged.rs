//! The linear layer's three matrix products as a second family of generated kernels,
//! for adapters without subgroups and for shapes the vector loads of [`subgroup`] cannot
//! take: a workgroup of `(tile / per)²` invocations computes a `tile × tile` block of
//! outputs, each invocation `per × per` of them in registers. Per step of `depth` along
//! the sum, the workgroup stages a `depth × tile` slice of each operand in workgroup
//! memory (each element read from storage once per block instead of once per output);
//! with `double` on, two stages alternate, so that the next slice is read from storage
//! into registers while the current one is multiplied, and one barrier per step
//! suffices (two otherwise). Scalar loads with bounds checks: any shape and offset.
//! Invocation `(tx, ty)` owns the rows `ty + r·side` and columns `tx + c·side`
//! (`side = tile / per`), so that neighbouring invocations touch neighbouring
//! addresses.
//!
//! The products, epilogues and gates are those of [`subgroup`]; the weight gradient also
//! writes `db`, summed by the invocations of the first column from the staged slices.
//! Sums run in the order of the summed index, with fused multiply-adds; the slices are
//! padded with exact zeros.
//!
//! [`subgroup`]: super::subgroup

use std::fmt::Write;

use super::product::Product;
use super::source::{declare_bindings, opening_source, SIZES};

/// One member of the family (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StagedConfig {
    /// Outputs per workgroup along each side.
    pub tile: u32,
    /// Steps of the sum staged at once.
    pub depth: u32,
    /// Outputs per invocation along each side.
    pub per: u32,
    /// Two alternating stages (the next slice read while the current one is used).
    pub double: bool,
}

/// WebGPU's guaranteed workgroup memory and invocations per workgroup.
const MAX_WORKGROUP_BYTES: u32 = 16384;
const MAX_INVOCATIONS: u32 = 256;

impl StagedConfig {
    /// Invocations along each side of the workgroup.
    fn side(self) -> u32 {
        self.tile / self.per
    }

    fn invocations(self) -> u32 {
        self.side() * self.side()
    }

    fn stages(self) -> u32 {
        if self.double {
            2
        } else {
            1
        }
    }

    /// Elements of one staged slice of one operand.
    fn slice(self) -> u32 {
        self.tile * self.depth
    }

    /// Whether the generator accepts the configuration: whole invocations, within
    /// WebGPU's core limits, each invocation loading the same number of elements.
    pub fn is_valid(self) -> bool {
        self.per > 0
            && self.depth > 0
            && self.tile.is_multiple_of(self.per)
            && self.side() > 0
            && self.invocations() <= MAX_INVOCATIONS
            && self.slice().is_multiple_of(self.invocations())
            && 2 * self.stages() * self.slice() * 4 <= MAX_WORKGROUP_BYTES
    }

    /// A short name, e.g. `s64x8/4d` (tile × depth / outputs per side, `d` where
    /// double-buffered).
    pub fn label(self) -> String {
        format!(
            "s{}x{}/{}{}",
            self.tile,
            self.depth,
            self.per,
            if self.double { "d" } else { "" }
        )
    }

    /// The configuration a label names.
    pub fn parse(label: &str) -> Option<StagedConfig> {
        let rest = label.strip_prefix('s')?;
        let (rest, double) = match rest.strip_suffix('d') {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (tile_depth, per) = rest.split_once('/')?;
        let (tile, depth) = tile_depth.split_once('x')?;
        Some(StagedConfig {
            tile: tile.parse().ok()?,
            depth: depth.parse().ok()?,
            per: per.parse().ok()?,
            double,
        })
    }

    /// Workgroups along the output's columns and rows for `rows × cols` outputs.
    pub fn groups(self, rows: usize, cols: usize) -> (usize, usize) {
        let tile = self.tile as usize;
        (cols.div_ceil(tile), rows.div_ceil(tile))
    }
}

/// How an operand's staged slice maps to invocations' loads: along the sum where it
/// is contiguous along the sum, along the outputs otherwise (neighbouring invocations
/// then read neighbouring addresses).
#[derive(Clone, Copy, PartialEq)]
enum Along {
    Sum,
    Outputs,
}

/// The storage expression of one operand element, output index `i` (row or column)
/// and sum index `p`, both `u32` expressions, for `product`.
fn operand(product: Product, which: char, i: &str, p: &str, gated: bool) -> (String, Along) {
    let gate = |dy: String, y: String| {
        if gated {
            format!("gate({dy}, {y}, act, slope)")
        } else {
            dy
        }
    };
    match (product, which) {
        (Product::Forward, 'a') => (
            format!("a_src[params.in0_at + ({i}) * k + ({p})]"),
            Along::Sum,
        ),
        (Product::Forward, _) => (
            format!("b_src[params.in1_at + ({i}) * k + ({p})]"),
            Along::Sum,
        ),
        (Product::GradInput, 'a') => (
            gate(
                format!("a_src[params.in0_at + ({i}) * m + ({p})]"),
                format!("third[params.in2_at + ({i}) * m + ({p})]"),
            ),
            Along::Sum,
        ),
        (Product::GradInput, _) => (
            format!("b_src[params.in1_at + ({p}) * k + ({i})]"),
            Along::Outputs,
        ),
        (Product::GradWeight, 'a') => (
            gate(
                format!("a_src[params.in0_at + ({p}) * m + ({i})]"),
                format!("third[params.in2_at + ({p}) * m + ({i})]"),
            ),
            Along::Outputs,
        ),
        (Product::GradWeight, _) => (
            format!("b_src[params.in1_at + ({p}) * k + ({i})]"),
            Along::Outputs,
        ),
    }
}

/// The WGSL of `product` with `config` (an entry point `gemm`), or `None` where the
/// configuration is not valid. Bindings and `gated` as in [`subgroup::source`], with
/// `array<f32>` operands.
///
/// [`subgroup::source`]: super::subgroup::source
pub fn source(product: Product, config: StagedConfig, gated: bool) -> Option<String> {
    let gated = gated && product != Product::Forward;
    if !config.is_valid() {
        return None;
    }
    let StagedConfig {
        tile, depth, per, ..
    } = config;
    let (side, slice, loads) = (
        config.side(),
        config.slice(),
        config.slice() / config.invocations(),
    );
    let mut s = opening_source(product, &config.label(), "workgroup memory");
    let third = (product == Product::Forward || gated).then_some(("third", "array<f32>"));
    declare_bindings(&mut s, product, ["a_src", "b_src"], "array<f32>", third);
    let _ = writeln!(
        s,
        "var<workgroup> stage_a: array<f32, {n}>;\nvar<workgroup> stage_b: array<f32, {n}>;",
        n = config.stages() * slice
    );
    // Output rows R, columns C and the sum's length P of each product.
    let (rows, cols, sum) = match product {
        Product::Forward => ("n", "m", "k"),
        Product::GradInput => ("n", "k", "m"),
        Product::GradWeight => ("m", "k", "n"),
    };
    let _ = write!(
        s,
        "
@compute @workgroup_size({side}, {side})
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {{
{SIZES}    let tx = lid.x;
    let ty = lid.y;
    let me = ty * {side}u + tx;
    let row0 = wid.y * {tile}u;
    let col0 = wid.x * {tile}u;
    let steps = ({sum} + {depth}u - 1u) / {depth}u;
"
    );
    // Each invocation's loads: element e = l·invocations + me of the slice, at output
    // index `o` and sum index `q` within it.
    for (which, first, limit) in [('a', "row0", rows), ('b', "col0", cols)] {
        let (_, along) = operand(product, which, "0u", "0u", gated);
        for l in 0..loads {
            let e = format!("({l}u * {}u + me)", config.invocations());
            let (o, q) = match along {
                Along::Sum => (format!("{e} / {depth}u"), format!("{e} % {depth}u")),
                Along::Outputs => (format!("{e} % {tile}u"), format!("{e} / {tile}u")),
            };
            let _ = writeln!(
                s,
                "    let {which}o_{l} = {o};\n    let {which}q_{l} = {q};\n    let {which}i_{l} = {first} + {which}o_{l};\n    let {which}in_{l} = {which}i_{l} < {limit};"
            );
        }
    }
    for l in 0..loads {
        let _ = writeln!(s, "    var ra_{l} = 0.0; var rb_{l} = 0.0;");
    }
    for r in 0..per {
        for c in 0..per {
            let _ = write!(s, " var acc_{r}_{c} = 0.0;");
        }
        s.push('\n');
    }
    if product == Product::GradWeight {
        for r in 0..per {
            let _ = writeln!(s, "    var sum_{r} = 0.0;");
        }
        s.push_str("    let bias_lane = wid.x == 0u && tx == 0u;\n");
    }
    // fetch(t): the invocation's elements of step t's slices into registers (zero
    // outside the operands).
    let fetch = |t: &str| -> String {
        let mut f = String::new();
        for which in ['a', 'b'] {
            for l in 0..loads {
                let p = format!("{t} * {depth}u + {which}q_{l}");
                let (expr, _) = operand(product, which, &format!("{which}i_{l}"), "p", gated);
                let _ = writeln!(
                    f,
                    "        {{ let p = {p}; r{which}_{l} = 0.0; if ({which}in_{l} && p < {sum}) {{ r{which}_{l} = {expr}; }} }}"
                );
            }
        }
        f
    };
    // store(base): the registers into the stage at element offset `base`, k-major:
    // stage[base + q·tile + o].
    let store = |base: &str| -> String {
        let mut f = String::new();
        for which in ['a', 'b'] {
            for l in 0..loads {
                let _ = writeln!(
                    f,
                    "        stage_{which}[{base} + {which}q_{l} * {tile}u + {which}o_{l}] = r{which}_{l};"
                );
            }
        }
        f
    };
    // compute(base): the outer products of the stage at `base`.
    let compute = |base: &str| -> String {
        let mut f = String::new();
        for q in 0..depth {
            for r in 0..per {
                let _ = writeln!(
                    f,
                    "        let a{q}_{r} = stage_a[{base} + {}u + ty];",
                    q * tile + r * side
                );
            }
            for c in 0..per {
                let _ = writeln!(
                    f,
                    "        let b{q}_{c} = stage_b[{base} + {}u + tx];",
                    q * tile + c * side
                );
            }
            for r in 0..per {
                for c in 0..per {
                    let _ = writeln!(
                        f,
                        "        acc_{r}_{c} = fma(a{q}_{r}, b{q}_{c}, acc_{r}_{c});"
                    );
                }
            }
        }
        if product == Product::GradWeight {
            f.push_str("        if (bias_lane) {\n");
            for q in 0..depth {
                for r in 0..per {
                    let _ = writeln!(f, "            sum_{r} += a{q}_{r};");
                }
            }
            f.push_str("        }\n");
        }
        f
    };
    if config.double {
        s.push_str("    if (steps > 0u) {\n");
        s.push_str(&fetch("0u"));
        s.push_str(&store("0u"));
        s.push_str("    }\n    workgroupBarrier();\n");
        s.push_str("    for (var t = 0u; t < steps; t++) {\n");
        let _ = writeln!(
            s,
            "        let base = (t % 2u) * {slice}u;\n        let next = {slice}u - base;\n        let more = t + 1u < steps;"
        );
        s.push_str("        if (more) {\n");
        s.push_str(&fetch("(t + 1u)"));
        s.push_str("        }\n");
        s.push_str(&compute("base"));
        s.push_str("        if (more) {\n");
        s.push_str(&store("next"));
        s.push_str("        }\n        workgroupBarrier();\n    }\n");
    } else {
        s.push_str("    for (var t = 0u; t < steps; t++) {\n");
        s.push_str(&fetch("t"));
        s.push_str("        workgroupBarrier();\n");
        s.push_str(&store("0u"));
        s.push_str("        workgroupBarrier();\n");
        s.push_str(&compute("0u"));
        s.push_str("    }\n");
    }
    // Epilogue.
    if product == Product::GradWeight {
        s.push_str("    let add = params.accumulate != 0u;\n");
    }
    for r in 0..per {
        for c in 0..per {
            let (i, j) = (
                format!("row0 + {}u + ty", r * side),
                format!("col0 + {}u + tx", c * side),
            );
            let body = match product {
                Product::Forward => format!(
                    "out[params.out_at + ({i}) * m + {j}] = activate(acc_{r}_{c} + third[params.in2_at + {j}], act, slope);"
                ),
                Product::GradInput => {
                    format!("out[params.out_at + ({i}) * k + {j}] = acc_{r}_{c};")
                }
                Product::GradWeight => format!(
                    "let o = params.out_at + ({i}) * k + {j}; out[o] = select(acc_{r}_{c}, out[o] + acc_{r}_{c}, add);"
                ),
            };
            let _ = writeln!(s, "    if ({i} < {rows} && {j} < {cols}) {{ {body} }}");
        }
    }
    if product == Product::GradWeight {
        s.push_str("    if (bias_lane) {\n        let ob = params.out2_at;\n");
        for r in 0..per {
            let _ = writeln!(
                s,
                "        {{ let i = row0 + {}u + ty; if (i < m) {{ db[ob + i] = select(sum_{r}, db[ob + i] + sum_{r}, add); }} }}",
                r * side
            );
        }
        s.push_str("    }\n");
    }
    s.push_str("}\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_configuration() {
        for double in [false, true] {
            let c = StagedConfig {
                tile: 64,
                depth: 8,
                per: 4,
                double,
            };
            assert_eq!(StagedConfig::parse(&c.label()), Some(c));
        }
        assert_eq!(StagedConfig::parse("64x8/8"), None);
        assert_eq!(StagedConfig::parse("s64x8"), None);
    }

    #[test]
    fn every_valid_configuration_generates_wgsl_that_naga_accepts() {
        for (tile, depth, per) in [(64, 8, 4), (32, 8, 2), (64, 16, 4), (16, 4, 1), (128, 8, 8)] {
            for double in [false, true] {
                let config = StagedConfig {
                    tile,
                    depth,
                    per,
                    double,
                };
                for product in Product::ALL {
                    for gated in [false, true] {
                        let Some(code) = source(product, config, gated) else {
                            assert!(!config.is_valid());
                            continue;
                        };
                        let module = naga::front::wgsl::parse_str(&code).unwrap_or_else(|e| {
                            panic!("{product:?} {config:?}: {}", e.emit_to_string(&code))
                        });
                        naga::valid::Validator::new(
                            naga::valid::ValidationFlags::all(),
                            naga::valid::Capabilities::empty(),
                        )
                        .validate(&module)
                        .unwrap_or_else(|e| panic!("{product:?} {config:?}: {e:?}"));
                    }
                }
            }
        }
    }
}
