//! The WGSL sources compiled into the crate and the compute kernels (entry points) they
//! hold. Each shader file under `shaders/` is one op family; `common.wgsl` (the binding
//! convention) and `act.wgsl` (activations by code) are prepended to each.

/// One op family's WGSL source, as handed to the driver (common prelude included).
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    /// The file name under `shaders/`.
    pub name: &'static str,
    /// The complete WGSL source.
    pub source: &'static str,
}

macro_rules! shader {
    ($file:literal) => {
        Shader {
            name: $file,
            source: concat!(
                include_str!("../../../shaders/common.wgsl"),
                include_str!("../../../shaders/act.wgsl"),
                include_str!(concat!("../../../shaders/", $file))
            ),
        }
    };
}

/// Every shader of the crate, for pipeline creation and for the portability tests.
pub const SHADERS: [Shader; 5] = [
    shader!("linear.wgsl"),
    shader!("activation.wgsl"),
    shader!("mse.wgsl"),
    shader!("optim.wgsl"),
    shader!("cross_entropy.wgsl"),
];

/// A compute entry point: which shader holds it and how many inputs it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    LinearForward,
    LinearForwardTiled,
    LinearBackwardInput,
    LinearBackwardWeight,
    LinearBackwardBias,
    ReluForward,
    ReluBackward,
    TanhForward,
    TanhBackward,
    SigmoidForward,
    SigmoidBackward,
    LeakyReluForward,
    LeakyReluBackward,
    MseLoss,
    MseGrad,
    SgdStep,
    MomentumVelocity,
    MomentumUpdate,
    AdamMoments,
    AdamUpdate,
    CrossEntropyLoss,
    CrossEntropyGrad,
}

impl Kernel {
    /// Every kernel, in pipeline-table order.
    pub(crate) const ALL: [Kernel; 22] = [
        Kernel::LinearForward,
        Kernel::LinearForwardTiled,
        Kernel::LinearBackwardInput,
        Kernel::LinearBackwardWeight,
        Kernel::LinearBackwardBias,
        Kernel::ReluForward,
        Kernel::ReluBackward,
        Kernel::TanhForward,
        Kernel::TanhBackward,
        Kernel::SigmoidForward,
        Kernel::SigmoidBackward,
        Kernel::LeakyReluForward,
        Kernel::LeakyReluBackward,
        Kernel::MseLoss,
        Kernel::MseGrad,
        Kernel::SgdStep,
        Kernel::MomentumVelocity,
        Kernel::MomentumUpdate,
        Kernel::AdamMoments,
        Kernel::AdamUpdate,
        Kernel::CrossEntropyLoss,
        Kernel::CrossEntropyGrad,
    ];

    /// The index of the shader in [`SHADERS`] and the entry point's name.
    pub(crate) fn entry(self) -> (usize, &'static str) {
        match self {
            Kernel::LinearForward => (0, "linear_forward"),
            Kernel::LinearForwardTiled => (0, "linear_forward_tiled"),
            Kernel::LinearBackwardInput => (0, "linear_backward_input"),
            Kernel::LinearBackwardWeight => (0, "linear_backward_weight"),
            Kernel::LinearBackwardBias => (0, "linear_backward_bias"),
            Kernel::ReluForward => (1, "relu_forward"),
            Kernel::ReluBackward => (1, "relu_backward"),
            Kernel::TanhForward => (1, "tanh_forward"),
            Kernel::TanhBackward => (1, "tanh_backward"),
            Kernel::SigmoidForward => (1, "sigmoid_forward"),
            Kernel::SigmoidBackward => (1, "sigmoid_backward"),
            Kernel::LeakyReluForward => (1, "leaky_relu_forward"),
            Kernel::LeakyReluBackward => (1, "leaky_relu_backward"),
            Kernel::MseLoss => (2, "mse_loss"),
            Kernel::MseGrad => (2, "mse_grad"),
            Kernel::SgdStep => (3, "sgd_step"),
            Kernel::MomentumVelocity => (3, "momentum_velocity"),
            Kernel::MomentumUpdate => (3, "momentum_update"),
            Kernel::AdamMoments => (3, "adam_moments"),
            Kernel::AdamUpdate => (3, "adam_update"),
            Kernel::CrossEntropyLoss => (4, "cross_entropy_loss"),
            Kernel::CrossEntropyGrad => (4, "cross_entropy_grad"),
        }
    }

    /// The position in [`Kernel::ALL`] (and in the pipeline table).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One compiled pipeline per [`Kernel`], created once with the device.
pub(crate) struct Pipelines(Vec<wgpu::ComputePipeline>);

impl Pipelines {
    /// Compiles every shader and every entry point. Errors surface through the
    /// device's error scope, which the caller holds.
    pub(crate) fn compile(device: &wgpu::Device) -> Self {
        let modules: Vec<wgpu::ShaderModule> = SHADERS
            .iter()
            .map(|s| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(s.name),
                    source: wgpu::ShaderSource::Wgsl(s.source.into()),
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
                    cache: None,
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
