#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod schedule;
pub mod seed;
pub mod tensor;
pub mod train;

pub use backend::{
    Act, Backend, Cpu, DeviceTensor, Gpu, GradMode, LossKind, Ops, Reduction, Reference,
};
pub use error::{Error, Result};
pub use tensor::Tensor;
