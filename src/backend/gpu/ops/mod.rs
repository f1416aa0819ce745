//! The GPU's op launches, one file per op family: each fills its family's parameter
//! struct and launches the family's kernels; the linear layer's products take the
//! kernel the products module chooses.

pub mod activation;
pub mod cross_entropy;
pub mod image;
pub mod linear;
pub mod mse;
pub mod update;
