//! Layers and losses, each written once over the [`Backend`](crate::Backend) trait.

mod activation;
mod linear;
mod loss;
mod module;
mod scratch;
mod sequential;

pub use activation::{
    Activation, Elementwise, LeakyReLU, LeakyReluFn, ReLU, ReluFn, Sigmoid, SigmoidFn, Tanh, TanhFn,
};
pub use linear::Linear;
pub use loss::{CrossEntropy, CrossEntropyLoss, Loss, LossFunction, Mse, MseLoss, Reduced};
pub use module::{LayerKind, Module, Parameter};
pub use sequential::Sequential;
