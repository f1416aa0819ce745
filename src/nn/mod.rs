//! Layers and losses, each written once over the [`Backend`](crate::Backend) trait:
//! fully connected and convolutional layers, pooling, upsampling, activations, losses
//! and the `Sequential` that chains them.

mod activation;
mod conv;
mod flatten;
mod linear;
mod loss;
mod model_list;
mod module;
mod pool;
mod scratch;
mod sequential;
mod upsample;

pub use activation::{
    Activation, Elementwise, LeakyReLU, LeakyReluFn, ReLU, ReluFn, Sigmoid, SigmoidFn, Tanh, TanhFn,
};
pub use conv::Conv2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use loss::{CrossEntropy, CrossEntropyLoss, Loss, LossFunction, Mse, MseLoss, Reduced};
pub use model_list::{
    build_model, describe, parse_model, takes_images, LayerSpec, ModelListError, RowShape,
};
pub use module::{LayerKind, Module, Parameter};
pub use pool::{AvgPool2d, MaxPool2d};
pub use sequential::Sequential;
pub use upsample::NearestUpsampling;
