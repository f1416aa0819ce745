//! The GPU's op launches, one file per op family: each fills its family's parameter
//! struct and launches the family's kernels; the linear layer's products take the
//! kernel the products module chooses, and so do a convolution's where it runs as
//! products over its unfolded input.

pub mod activation;
pub mod conv_lowering;
pub mod convolution;
pub mod cross_entropy;
pub mod image;
pub mod linear;
pub mod mse;
pub mod unfolded_conv;
pub mod update;
