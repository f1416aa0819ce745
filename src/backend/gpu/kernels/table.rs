//! The built-in kernels: the WGSL sources compiled into the crate, each with its
//! family's parameter struct, and the compute entry points they hold. Each shader file
//! under `shaders/` is one op family; every source handed to the driver starts with a
//! prelude generated here from the Rust side (workgroup and tile sizes, activation
//! codes, the family's parameter struct and the bindings of
//! [`convention`](super::convention)), then `common.wgsl` (shared helpers) and
//! `act.wgsl` (the activations by code). The kernel list is written once, in
//! `kernels!`, which derives the enum and each kernel's file and entry point.

use super::convention::{storage_bindings, KernelParams};
use super::params::{
    ActivationParams, CrossEntropyParams, FillParams, ImageParams, LinearParams, MseParams,
    UpdateParams,
};
use crate::backend::Act;

/// Invocations along each side of the 16×16 workgroups of the matrix kernels (`TILE`
/// in WGSL, from the generated prelude).
pub(crate) const TILE: usize = 16;
/// Outputs along each side of the blocks of the tiled matrix product (`BLOCK` in WGSL, from the
/// generated prelude).
pub(crate) const BLOCK: usize = 64;
/// Invocations of the one-dimensional kernels' workgroups (`WG_FLAT` in WGSL, from
/// the generated prelude).
pub(crate) const FLAT: usize = 256;

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
        "// Generated from the Rust constants of src/backend/gpu/kernels/table.rs and act.rs.\n\
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

/// `prelude`, the parameter block `P` and the storage bindings, `common.wgsl` and
/// `act.wgsl`, then `body`.
pub(crate) fn with_prelude<P: KernelParams>(body: &str) -> String {
    let mut s = prelude();
    s.push_str(&P::wgsl_binding());
    s.push_str(&storage_bindings());
    s.push_str(include_str!("../../../../shaders/common.wgsl"));
    s.push_str(include_str!("../../../../shaders/act.wgsl"));
    s.push_str(body);
    s
}

/// One shader file of the crate: its name under `shaders/`, its source with the
/// prelude of its family's parameter struct.
struct ShaderFile {
    name: &'static str,
    source: fn() -> String,
}

/// Declares the shader files, each with its parameter struct.
macro_rules! shader_files {
    ($($name:literal => $params:ty,)*) => {
        const FILES: &[ShaderFile] = &[$(ShaderFile {
            name: $name,
            source: || with_prelude::<$params>(include_str!(concat!("../../../../shaders/", $name))),
        },)*];
    };
}

shader_files! {
    "linear.wgsl" => LinearParams,
    "activation.wgsl" => ActivationParams,
    "mse.wgsl" => MseParams,
    "update.wgsl" => UpdateParams,
    "cross_entropy.wgsl" => CrossEntropyParams,
    "fill.wgsl" => FillParams,
    "image.wgsl" => ImageParams,
}

/// Every shader of the crate with its prelude, for pipeline creation and for the
/// portability tests.
pub fn shaders() -> Vec<Shader> {
    FILES
        .iter()
        .map(|f| Shader {
            name: f.name,
            source: (f.source)(),
        })
        .collect()
}

/// Every built-in kernel as its shader file's name and its entry point's name, for
/// the test that each file has the entry points the table names.
pub fn entry_points() -> Vec<(&'static str, &'static str)> {
    Kernel::ALL.iter().map(|k| k.entry()).collect()
}

/// Declares [`Kernel`] from one list of `Variant => ("shader file", "entry point")`.
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

            /// The shader file's name and the entry point's name.
            pub(crate) fn entry(self) -> (&'static str, &'static str) {
                match self {
                    $(Kernel::$kernel => ($shader, $entry),)*
                }
            }
        }
    };
}

kernels! {
    LinearForward => ("linear.wgsl", "linear_forward"),
    LinearForwardTiled => ("linear.wgsl", "linear_forward_tiled"),
    LinearBackwardInput => ("linear.wgsl", "linear_backward_input"),
    LinearBackwardWeight => ("linear.wgsl", "linear_backward_weight"),
    LinearBackwardBias => ("linear.wgsl", "linear_backward_bias"),
    ActivationForward => ("activation.wgsl", "activation_forward"),
    ActivationBackward => ("activation.wgsl", "activation_backward"),
    MseLoss => ("mse.wgsl", "mse_loss"),
    MseGrad => ("mse.wgsl", "mse_grad"),
    SgdStep => ("update.wgsl", "sgd_step"),
    MomentumVelocity => ("update.wgsl", "momentum_velocity"),
    MomentumUpdate => ("update.wgsl", "momentum_update"),
    AdamMoments => ("update.wgsl", "adam_moments"),
    AdamUpdate => ("update.wgsl", "adam_update"),
    CrossEntropyLoss => ("cross_entropy.wgsl", "cross_entropy_loss"),
    CrossEntropyGrad => ("cross_entropy.wgsl", "cross_entropy_grad"),
    Fill => ("fill.wgsl", "fill"),
    Conv2dForward => ("image.wgsl", "conv2d_forward"),
    Conv2dBackwardInput => ("image.wgsl", "conv2d_backward_input"),
    Conv2dBackwardWeight => ("image.wgsl", "conv2d_backward_weight"),
    Conv2dBackwardBias => ("image.wgsl", "conv2d_backward_bias"),
    Conv2dUnfold => ("image.wgsl", "conv2d_unfold"),
    Conv2dFold => ("image.wgsl", "conv2d_fold"),
    ToPixelRows => ("image.wgsl", "to_pixel_rows"),
    FromPixelRows => ("image.wgsl", "from_pixel_rows"),
    MaxPool2dForward => ("image.wgsl", "max_pool2d_forward"),
    MaxPool2dBackward => ("image.wgsl", "max_pool2d_backward"),
    AvgPool2dForward => ("image.wgsl", "avg_pool2d_forward"),
    AvgPool2dBackward => ("image.wgsl", "avg_pool2d_backward"),
    UpsampleNearestForward => ("image.wgsl", "upsample_nearest_forward"),
    UpsampleNearestBackward => ("image.wgsl", "upsample_nearest_backward"),
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

/// One compiled pipeline per [`Kernel`], created once with the device, each with its
/// number for the bind-group cache.
pub(crate) struct Pipelines(Vec<(u64, wgpu::ComputePipeline)>);

impl Pipelines {
    /// Compiles every shader and every entry point, through `cache` where given.
    /// Errors surface through the device's error scope, which the caller holds.
    pub(crate) fn compile(
        device: &wgpu::Device,
        cache: Option<&wgpu::PipelineCache>,
        mut next_id: impl FnMut() -> u64,
    ) -> Self {
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
                let (file, entry) = k.entry();
                let shader = FILES
                    .iter()
                    .position(|f| f.name == file)
                    .expect("every kernel's file is in FILES (tests/shaders.rs checks it)");
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &modules[shader],
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache,
                });
                (next_id(), pipeline)
            })
            .collect();
        Pipelines(pipelines)
    }

    /// The pipeline of `kernel` and its number.
    pub(crate) fn get(&self, kernel: Kernel) -> (u64, &wgpu::ComputePipeline) {
        let (id, pipeline) = &self.0[kernel.index()];
        (*id, pipeline)
    }
}
