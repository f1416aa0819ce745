//! What a convolution's lowering on the GPU is, and which of its passes one is chosen
//! for, with their names in the tuning cache file. The choice itself, and the runs of
//! each lowering, are in [`convolution`](super::convolution).

/// How a convolution runs on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvLowering {
    /// The direct kernels of `shaders/image.wgsl`: one invocation per element written,
    /// looping over the taps (or, for the weight gradient, over the pixels).
    Direct,
    /// Matrix products over the unfolded input (im2col), on the kernels the products'
    /// tuner chooses, with the layout changes around them.
    Unfolded,
}

impl ConvLowering {
    /// The name of this lowering in the tuning cache file and in `MINIDL_CONV`.
    pub fn label(self) -> &'static str {
        match self {
            ConvLowering::Direct => "direct",
            ConvLowering::Unfolded => "unfolded",
        }
    }

    /// The lowering a [`label`](ConvLowering::label) names.
    pub fn parse(label: &str) -> Option<ConvLowering> {
        [ConvLowering::Direct, ConvLowering::Unfolded]
            .into_iter()
            .find(|l| l.label() == label)
    }

    /// The other lowering.
    pub fn other(self) -> ConvLowering {
        match self {
            ConvLowering::Direct => ConvLowering::Unfolded,
            ConvLowering::Unfolded => ConvLowering::Direct,
        }
    }
}

/// The pass of a convolution whose lowering is chosen: the forward and the backward
/// may each take either, and a backward without the input gradient (a network's first
/// layer) is a pass of its own, as the direct input gradient is a kernel of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPass {
    /// `y = conv(x, w) + b`.
    Forward,
    /// The weight and bias gradients, and the input gradient where `input_grad`.
    Backward {
        /// Whether the input gradient is computed too.
        input_grad: bool,
    },
}

impl ConvPass {
    /// The name of this pass in the tuning cache file.
    pub fn label(self) -> &'static str {
        match self {
            ConvPass::Forward => "forward",
            ConvPass::Backward { input_grad: true } => "backward",
            ConvPass::Backward { input_grad: false } => "backward-without-dx",
        }
    }
}
