//! Portability without the machines: every shader, exactly as handed to the driver,
//! parses and validates with naga under WebGPU-core capabilities, and translates to
//! SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12); so does every candidate of the
//! generated matrix-product families (the subgroup family with subgroups allowed).

use minidl::backend::gpu::kernels::convention::KernelParams;
use minidl::backend::gpu::kernels::params::{
    ActivationParams, CrossEntropyParams, EpochParams, FillParams, LinearParams, MseParams,
    UpdateParams,
};
use minidl::backend::gpu::kernels::table::{entry_points, shaders};
use naga::back::{hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validated(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    validated_with(name, source, Capabilities::empty())
}

fn validated_with(
    name: &str,
    source: &str,
    capabilities: Capabilities,
) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(source)));
    let info = Validator::new(ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(source)));
    (module, info)
}

#[test]
fn every_shader_has_compute_entry_points() {
    assert!(!shaders().is_empty());
    for shader in shaders() {
        let (module, _) = validated(shader.name, &shader.source);
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            shader.name
        );
        for ep in &module.entry_points {
            assert_eq!(
                ep.stage,
                naga::ShaderStage::Compute,
                "{}::{}",
                shader.name,
                ep.name
            );
        }
    }
}

#[test]
fn every_kernel_of_the_table_names_an_entry_point_of_its_file() {
    let modules: Vec<(&str, naga::Module)> = shaders()
        .into_iter()
        .map(|s| (s.name, validated(s.name, &s.source).0))
        .collect();
    let table = entry_points();
    assert!(!table.is_empty());
    for (file, entry) in table {
        let (_, module) = modules
            .iter()
            .find(|(name, _)| *name == file)
            .unwrap_or_else(|| panic!("{entry}: no shader file {file}"));
        assert!(
            module.entry_points.iter().any(|ep| ep.name == entry),
            "{file} has no entry point {entry}"
        );
    }
}

/// Asserts that the WGSL declaration generated for `P` lays its fields out where the
/// `#[repr(C)]` Rust struct has them: each field 4 bytes after the last, the struct as
/// long as the Rust one.
fn assert_same_layout<P: KernelParams>() {
    let source = format!(
        "{}\n@compute @workgroup_size(1)\nfn main() {{ _ = params.in0_at; }}\n",
        P::wgsl_binding()
    );
    let (module, _) = validated(P::NAME, &source);
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(P::NAME))
        .unwrap_or_else(|| panic!("{} is not declared", P::NAME));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{} is not a struct", P::NAME);
    };
    assert_eq!(
        *span as usize,
        std::mem::size_of::<P>(),
        "{}: size",
        P::NAME
    );
    assert_eq!(members.len(), P::FIELDS.len(), "{}: fields", P::NAME);
    for (i, (member, (name, _))) in members.iter().zip(P::FIELDS).enumerate() {
        assert_eq!(
            member.name.as_deref(),
            Some(*name),
            "{}: field {i}",
            P::NAME
        );
        assert_eq!(member.offset as usize, 4 * i, "{}.{name}: offset", P::NAME);
    }
}

#[test]
fn every_parameter_struct_has_the_layout_of_its_wgsl_declaration() {
    assert_same_layout::<LinearParams>();
    assert_same_layout::<ActivationParams>();
    assert_same_layout::<MseParams>();
    assert_same_layout::<CrossEntropyParams>();
    assert_same_layout::<UpdateParams>();
    assert_same_layout::<FillParams>();
    assert_same_layout::<EpochParams>();
}

#[test]
fn every_shader_translates_to_spirv() {
    for shader in shaders() {
        let (module, info) = validated(shader.name, &shader.source);
        let words = spv::write_vec(&module, &info, &spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{} → SPIR-V: {e}", shader.name));
        assert_eq!(
            words.first(),
            Some(&0x0723_0203),
            "{}: no SPIR-V magic number",
            shader.name
        );
    }
}

#[test]
fn every_shader_translates_to_msl() {
    for shader in shaders() {
        let (module, info) = validated(shader.name, &shader.source);
        let (text, _) = msl::write_string(
            &module,
            &info,
            &msl::Options::default(),
            &msl::PipelineOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{} → MSL: {e}", shader.name));
        for ep in &module.entry_points {
            assert!(
                text.contains(&format!("kernel void {}", ep.name)),
                "{}: MSL lacks kernel {}",
                shader.name,
                ep.name
            );
        }
    }
}

#[test]
fn every_shader_translates_to_hlsl() {
    for shader in shaders() {
        let (module, info) = validated(shader.name, &shader.source);
        let mut text = String::new();
        let options = hlsl::Options {
            shader_model: hlsl::ShaderModel::V5_1,
            ..Default::default()
        };
        hlsl::Writer::new(&mut text, &options, &hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{} → HLSL: {e}", shader.name));
        for ep in &module.entry_points {
            assert!(
                text.contains(&format!("void {}(", ep.name)),
                "{}: HLSL lacks {}",
                shader.name,
                ep.name
            );
        }
    }
}

#[test]
fn generated_fused_trainers_validate_and_translate() {
    use minidl::backend::gpu::epoch::generator::{source, Shape};
    use minidl::backend::{Act, AdamStep, LossKind, MlpLayer, MlpRecipe, MlpSpec, UpdateRule};
    use minidl::backend::{MomentumStep, Reduction};
    let layer = |inputs, outputs, act| MlpLayer {
        inputs,
        outputs,
        act,
    };
    let specs = [
        MlpSpec::new(vec![
            layer(2, 25, Act::Relu),
            layer(25, 25, Act::Relu),
            layer(25, 25, Act::Relu),
            layer(25, 2, Act::Tanh),
        ])
        .unwrap(),
        MlpSpec::new(vec![layer(64, 64, Act::Tanh), layer(64, 1, Act::Identity)]).unwrap(),
    ];
    for spec in &specs {
        let shapes = [
            (10, 8, false),
            (1, 96, false),
            (33, 32, false),
            (10, 8, true),
            (7, 32, true),
        ];
        let nesterov = MomentumStep {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            nesterov: true,
        };
        let recipes = [
            (LossKind::Mse, UpdateRule::Sgd { lr: 0.1 }),
            (LossKind::CrossEntropy, UpdateRule::Momentum(nesterov)),
            (LossKind::Mse, UpdateRule::Adam(AdamStep::with_lr(0.001))),
            (
                LossKind::CrossEntropy,
                UpdateRule::Adam(AdamStep::with_lr(0.001)),
            ),
        ];
        for ((batch, invocations, subgroup), (loss, rule)) in shapes
            .into_iter()
            .flat_map(|shape| recipes.map(|recipe| (shape, recipe)))
        {
            let shape = Shape {
                invocations,
                subgroup,
            };
            let epoch = MlpRecipe {
                batch_size: batch,
                loss,
                reduction: Reduction::Sum,
                rule,
            };
            let name = format!("mlp_fused for {spec:?}, {epoch:?}, {shape:?}");
            let code = source(spec, &epoch, shape);
            // Subgroup operations are an optional native feature, used only where the
            // adapter has it.
            let caps = if subgroup {
                Capabilities::SUBGROUP
            } else {
                Capabilities::empty()
            };
            let (module, info) = validated_with(&name, &code, caps);
            translates_to_spirv_and_msl(&name, &module, &info);
        }
    }
}

/// Panics unless `module` translates to SPIR-V and MSL.
fn translates_to_spirv_and_msl(name: &str, module: &naga::Module, info: &naga::valid::ModuleInfo) {
    spv::write_vec(module, info, &spv::Options::default(), None)
        .unwrap_or_else(|e| panic!("{name} → SPIR-V: {e}"));
    msl::write_string(
        module,
        info,
        &msl::Options::default(),
        &msl::PipelineOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name} → MSL: {e}"));
}

#[test]
fn generated_products_validate_and_translate() {
    use minidl::backend::gpu::products::{
        staged, staged_candidates, subgroup, subgroup_candidates, GemmConfig, Product,
    };
    // The workgroup-memory family runs on every adapter: WebGPU-core capabilities. The
    // subgroup family's 8- and 32-lane candidates, where the adapter has subgroups.
    let mut kernels: Vec<(String, String, Capabilities)> = Vec::new();
    for product in Product::ALL {
        for gated in [false, true] {
            for config in staged_candidates() {
                let code = staged::source(product, config, gated).expect("a valid candidate");
                let name = format!("{} {} gated {gated}", product.name(), config.label());
                kernels.push((name, code, Capabilities::empty()));
            }
            let subgroup: Vec<GemmConfig> = [8, 32]
                .into_iter()
                .flat_map(|lanes| subgroup_candidates(product, lanes))
                .collect();
            for config in subgroup {
                let code = subgroup::source(product, config, gated).expect("a valid candidate");
                let name = format!("{} {} gated {gated}", product.name(), config.label());
                kernels.push((name, code, Capabilities::SUBGROUP));
            }
        }
    }
    assert!(kernels.len() >= 3 * 2 * 4);
    for (name, code, caps) in kernels {
        let (module, info) = validated_with(&name, &code, caps);
        translates_to_spirv_and_msl(&name, &module, &info);
        let options = hlsl::Options {
            // Wave intrinsics need shader model 6.
            shader_model: if caps.is_empty() {
                hlsl::ShaderModel::V5_1
            } else {
                hlsl::ShaderModel::V6_0
            },
            ..Default::default()
        };
        let mut text = String::new();
        hlsl::Writer::new(&mut text, &options, &hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name} → HLSL: {e}"));
    }
}
