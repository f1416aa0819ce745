//! Layers and losses, each written once over the [`Backend`](crate::Backend) trait.

mod activation;
mod cross_entropy;
mod linear;
mod loss;
mod module;
mod scratch;
mod sequential;

pub use activation::{
    Activation, Elementwise, LeakyReLU, LeakyReluFn, ReLU, ReluFn, Sigmoid, SigmoidFn, Tanh, TanhFn,
};
pub use cross_entropy::CrossEntropyLoss;
pub use linear::Linear;
pub use loss::{Loss, MseLoss};
pub use module::{LayerKind, Module, Parameter};
pub use sequential::Sequential;
