//! [`Act`]: the activation family. One value names an activation for every op that
//! applies one: the standalone activation ops, the linear layer's fused epilogue and
//! gate, and the fused trainer. Adding an activation is a variant here, its function in
//! [`definitions`](super::reference::definitions) and in `shaders/act.wgsl`, and its tests.

use std::hash::{Hash, Hasher};

/// An activation function, applied elementwise.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    /// No activation: `y = z`.
    Identity,
    /// `max(z, 0)`; its backward reads the input (or the output: `y > 0` exactly when
    /// `z > 0`).
    Relu,
    /// `tanh(z)`; its derivative `1 − y²` is read from the output.
    Tanh,
    /// The logistic function `1 / (1 + e^(−z))`; its derivative `y (1 − y)` is read
    /// from the output.
    Sigmoid,
    /// `z` where `z > 0`, else `slope · z` (PyTorch's `LeakyReLU`); its backward reads
    /// the input (or, for a slope that is not negative, the output, whose sign is the
    /// input's).
    LeakyRelu(f32),
}

impl PartialEq for Act {
    /// Equal variants with bit-identical slopes.
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code() && self.slope().to_bits() == other.slope().to_bits()
    }
}

impl Eq for Act {}

impl Hash for Act {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.code().hash(state);
        self.slope().to_bits().hash(state);
    }
}

impl Act {
    /// Every variant: those without a parameter, and LeakyReLU with PyTorch's slope
    /// 0.01 (the list the WGSL prelude and the tests run over).
    pub const ALL: [Act; 5] = [
        Act::Identity,
        Act::Relu,
        Act::Tanh,
        Act::Sigmoid,
        Act::LeakyRelu(0.01),
    ];

    /// The code the WGSL kernels use for this activation (the constants of
    /// `shaders/act.wgsl`, handed to the shaders by the generated prelude).
    pub(crate) fn code(self) -> u32 {
        match self {
            Act::Identity => 0,
            Act::Relu => 1,
            Act::Tanh => 2,
            Act::Sigmoid => 3,
            Act::LeakyRelu(_) => 4,
        }
    }

    /// The name of [`Act::code`]'s constant in WGSL (declared by the generated prelude).
    pub(crate) fn wgsl_const(self) -> &'static str {
        match self {
            Act::Identity => "IDENTITY",
            Act::Relu => "RELU",
            Act::Tanh => "TANH",
            Act::Sigmoid => "SIGMOID",
            Act::LeakyRelu(_) => "LEAKY_RELU",
        }
    }

    /// LeakyReLU's negative slope; 0 for the others (whose kernels ignore it).
    pub fn slope(self) -> f32 {
        match self {
            Act::LeakyRelu(slope) => slope,
            _ => 0.0,
        }
    }

    /// Whether [`Backend::activation_backward`](crate::backend::Ops::activation_backward)
    /// takes the forward input (`true`: ReLU, LeakyReLU, the identity) or the forward
    /// output (`false`: tanh, sigmoid) as its saved tensor.
    pub fn backward_from_input(self) -> bool {
        matches!(self, Act::Identity | Act::Relu | Act::LeakyRelu(_))
    }

    /// The layer name in messages and in `Module::name`.
    pub fn name(self) -> &'static str {
        match self {
            Act::Identity => "Identity",
            Act::Relu => "ReLU",
            Act::Tanh => "Tanh",
            Act::Sigmoid => "Sigmoid",
            Act::LeakyRelu(_) => "LeakyReLU",
        }
    }
}
