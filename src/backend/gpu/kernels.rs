//! The WGSL sources compiled into the crate and the compute kernels (entry points) they
//! hold. Each shader file under `shaders/` is one op family; every source handed to the
//! driver starts with a prelude generated here from the Rust constants (workgroup and
//! tile sizes, activation codes), then `common.wgsl` (the binding convention) and
//! `act.wgsl` (the activations by code). The kernel list is written once, in
//! `kernels!`, which derives the enum, its table order and its entry points.

use super::{BLOCK, FLAT, TILE};
use crate::backend::Act;

/// One op family's WGSL source, as handed to the driver (prelude included).
#[derive(Debug, Clone)]
pub struct Shader {
    /// The file name under `shaders/`.
    pub name: &'static str,
    /// The complete WGSL source.
    pub source: String,
}

/// The WGSL constants that Rust defines, as WGSL declarations: the flat workgroup size
/// `WG_FLAT`, the matrix kernels' `TILE` and `BLOCK`, and the activation codes of
/// [`Act`].
pub fn prelude() -> String {
    let mut s = format!(
        "// Generated from the Rust constants of src/backend/gpu/mod.rs and act.rs.\n\
         const WG_FLAT: u32 = {FLAT}u;\nconst TILE: u32 = {TILE}u;\nconst BLOCK: u32 = {BLOCK}u;\n"
    );
    for act in Act::ALL {
        s.push_str(&format!(
            "const {}: u32 = {}u;\n",
            act.wgsl_const(),
            act.code()
        ));
    }
    s
}

/// `prelude`, `common.wgsl` and `act.wgsl`, then `body`.
pub(crate) fn with_prelude(body: &str) -> String {
    let mut s = prelude();
    s.push_str(include_str!("../../../shaders/common.wgsl"));
    s.push_str(include_str!("../../../shaders/act.wgsl"));
    s.push_str(body);
    s
}

/// The shader files of the crate, in the order [`Kernel`]'s entries index them.
const FILES: &[(&str, &str)] = &[
    ("linear.wgsl", include_str!("../../../shaders/linear.wgsl")),
    (
        "activation.wgsl",
        include_str!("../../../shaders/activation.wgsl"),
    ),
    ("mse.wgsl", include_str!("../../../shaders/mse.wgsl")),
    ("optim.wgsl", include_str!("../../../shaders/optim.wgsl")),
    (
        "cross_entropy.wgsl",
        include_str!("../../../shaders/cross_entropy.wgsl"),
    ),
    ("fill.wgsl", include_str!("../../../shaders/fill.wgsl")),
];

/// Every shader of the crate with its prelude, for pipeline creation and for the
/// portability tests.
pub fn shaders() -> Vec<Shader> {
    FILES
        .iter()
        .map(|&(name, body)| Shader {
            name,
            source: with_prelude(body),
        })
        .collect()
}

/// Declares [`Kernel`] from one list of `Variant => (shader file index, "entry point")`.
macro_rules! kernels {
    ($($kernel:ident => ($shader:literal, $entry:literal),)*) => {
        /// A compute entry point of a built-in shader.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Kernel {
            $(
                #[doc = concat!("`", $entry, "`")]
                $kernel,
            )*
        }

        impl Kernel {
            /// Every kernel, in pipeline-table order.
            pub(crate) const ALL: &'static [Kernel] = &[$(Kernel::$kernel,)*];

            /// The index of the shader in [`FILES`] and the entry point's name.
            pub(crate) fn entry(self) -> (usize, &'static str) {
                match self {
                    $(Kernel::$kernel => ($shader, $entry),)*
                }
            }
        }
    };
}

kernels! {
    LinearForward => (0, "linear_forward"),
    LinearForwardTiled => (0, "linear_forward_tiled"),
    LinearBackwardInput => (0, "linear_backward_input"),
    LinearBackwardWeight => (0, "linear_backward_weight"),
    LinearBackwardBias => (0, "linear_backward_bias"),
    ActivationForward => (1, "activation_forward"),
    ActivationBackward => (1, "activation_backward"),
    MseLoss => (2, "mse_loss"),
    MseGrad => (2, "mse_grad"),
    SgdStep => (3, "sgd_step"),
    MomentumVelocity => (3, "momentum_velocity"),
    MomentumUpdate => (3, "momentum_update"),
    AdamMoments => (3, "adam_moments"),
    AdamUpdate => (3, "adam_update"),
    CrossEntropyLoss => (4, "cross_entropy_loss"),
    CrossEntropyGrad => (4, "cross_entropy_grad"),
    Fill => (5, "fill"),
}

impl Kernel {
    /// The position in [`Kernel::ALL`] (and in the pipeline table).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The entry point's name, for messages.
    pub(crate) fn name(self) -> &'static str {
        self.entry().1
    }
}

/// One compiled pipeline per [`Kernel`], created once with the device.
pub(crate) struct Pipelines(Vec<wgpu::ComputePipeline>);

impl Pipelines {
    /// Compiles every shader and every entry point, through `cache` where given.
    /// Errors surface through the device's error scope, which the caller holds.
    pub(crate) fn compile(device: &wgpu::Device, cache: Option<&wgpu::PipelineCache>) -> Self {
        let modules: Vec<wgpu::ShaderModule> = shaders()
            .iter()
            .map(|s| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(s.name),
                    source: wgpu::ShaderSource::Wgsl(s.source.as_str().into()),
                })
            })
            .collect();
        let pipelines = Kernel::ALL
            .iter()
            .map(|k| {
                let (shader, entry) = k.entry();
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &modules[shader],
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache,
                })
            })
            .collect();
        Pipelines(pipelines)
    }

    /// The pipeline of `kernel`.
    pub(crate) fn get(&self, kernel: Kernel) -> &wgpu::ComputePipeline {
        &self.0[kernel.index()]
    }
}
