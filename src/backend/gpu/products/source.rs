//! What every generated product kernel opens with, in both families: the generated
//! constants, a comment naming the product and configuration, the parameter block
//! ([`LinearParams`]) and the storage bindings at the numbers of the calling
//! convention.

use std::fmt::Write;

use super::product::Product;
use crate::backend::gpu::kernels::convention::{KernelParams, INPUTS, OUTPUT, SECOND_OUTPUT};
use crate::backend::gpu::kernels::params::LinearParams;
use crate::backend::gpu::kernels::table::prelude;

/// The entry point's first lines in both families: the sizes, the activation and its
/// slope, from the parameter block.
pub(crate) const SIZES: &str = "    let n = params.n;
    let k = params.k;
    let m = params.m;
    let act = params.act;
    let slope = params.slope;
";

/// The start of a generated product kernel of either family: the constants, a comment
/// naming the product and the configuration (`label`, read as `legend`), and the
/// parameter block.
pub(crate) fn opening_source(product: Product, label: &str, legend: &str) -> String {
    let mut s = prelude();
    let _ = writeln!(
        s,
        "// Generated: {} product, {label} ({legend}).",
        product.name()
    );
    s.push_str(&LinearParams::wgsl_binding());
    s
}

/// Declares the storage bindings of a generated product kernel: the operands
/// `operands` (of type `operand_type`) at the first two input bindings, the third
/// input (name and type) where the kernel reads one, the output `out`, and for the
/// weight gradient the bias gradient `db` at the second output's binding; then the
/// activations of `act.wgsl`.
pub(crate) fn declare_bindings(
    s: &mut String,
    product: Product,
    operands: [&str; 2],
    operand_type: &str,
    third: Option<(&str, &str)>,
) {
    let [a, b] = operands;
    let _ = writeln!(
        s,
        "@group(0) @binding({}) var<storage, read> {a}: {operand_type};\n\
         @group(0) @binding({}) var<storage, read> {b}: {operand_type};\n\
         @group(0) @binding({OUTPUT}) var<storage, read_write> out: array<f32>;",
        INPUTS[0], INPUTS[1]
    );
    if let Some((name, ty)) = third {
        let _ = writeln!(
            s,
            "@group(0) @binding({}) var<storage, read> {name}: {ty};",
            INPUTS[2]
        );
    }
    if product == Product::GradWeight {
        let _ = writeln!(
            s,
            "@group(0) @binding({SECOND_OUTPUT}) var<storage, read_write> db: array<f32>;"
        );
    }
    s.push_str(include_str!("../../../../shaders/act.wgsl"));
}
