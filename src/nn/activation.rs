//! Parameter-free elementwise layers: [`ReLU`], [`Tanh`], [`Sigmoid`] and
//! [`LeakyReLU`], one [`Elementwise`] layer each, told apart by their [`Activation`].

use super::module::{LayerKind, Module};
use super::scratch::Scratch;
use crate::backend::{Act, Backend, DeviceTensor, Ops};
use crate::error::check_non_negative;
use crate::error::{Error, Result};

/// The function an [`Elementwise`] layer applies: an [`Act`] of the activation family,
/// which the backend's activation ops (and the fused kernels) compute.
pub trait Activation: Send + 'static {
    /// The activation.
    fn act(&self) -> Act;
}

/// `max(x, 0)`; its backward reads the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReluFn;

impl Activation for ReluFn {
    fn act(&self) -> Act {
        Act::Relu
    }
}

/// `tanh(x)`; its backward reads the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct TanhFn;

impl Activation for TanhFn {
    fn act(&self) -> Act {
        Act::Tanh
    }
}

/// The logistic function `1 / (1 + e^(−x))`; its backward reads the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct SigmoidFn;

impl Activation for SigmoidFn {
    fn act(&self) -> Act {
        Act::Sigmoid
    }
}

/// `x` where `x > 0`, else `negative_slope · x` (PyTorch's `LeakyReLU`, default slope
/// 0.01); its backward reads the input.
#[derive(Debug, Clone, Copy)]
pub struct LeakyReluFn {
    negative_slope: f32,
}

impl LeakyReluFn {
    /// The function with `negative_slope`, which must be finite and not negative.
    pub fn new(negative_slope: f32) -> Result<Self> {
        check_non_negative("LeakyReLU negative slope", negative_slope, false)?;
        Ok(LeakyReluFn { negative_slope })
    }

    /// The slope for negative inputs.
    pub fn negative_slope(&self) -> f32 {
        self.negative_slope
    }
}

impl Default for LeakyReluFn {
    /// PyTorch's default slope, 0.01.
    fn default() -> Self {
        LeakyReluFn {
            negative_slope: 0.01,
        }
    }
}

impl Activation for LeakyReluFn {
    fn act(&self) -> Act {
        Act::LeakyRelu(self.negative_slope)
    }
}

/// A layer applying the activation `A` elementwise. It keeps the tensor its backward
/// needs and reuses its output and gradient buffers from step to step.
pub struct Elementwise<B: Backend, A: Activation> {
    activation: A,
    saved: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad: Scratch<B>,
    grad_view: Option<DeviceTensor<B>>,
}

/// `max(x, 0)`, elementwise.
pub type ReLU<B> = Elementwise<B, ReluFn>;

/// `tanh(x)`, elementwise.
pub type Tanh<B> = Elementwise<B, TanhFn>;

/// `1 / (1 + e^(−x))`, elementwise.
pub type Sigmoid<B> = Elementwise<B, SigmoidFn>;

/// `x` where `x > 0`, else `negative_slope · x`, elementwise
/// (`LeakyReLU::new()` has PyTorch's slope 0.01; see [`LeakyReLU::with_slope`]).
pub type LeakyReLU<B> = Elementwise<B, LeakyReluFn>;

impl<B: Backend> Elementwise<B, LeakyReluFn> {
    /// A LeakyReLU layer with `negative_slope` (finite, not negative).
    pub fn with_slope(negative_slope: f32) -> Result<Self> {
        Ok(Self::with(LeakyReluFn::new(negative_slope)?))
    }
}

impl<B: Backend, A: Activation + Default> Elementwise<B, A> {
    /// A layer of this activation (`ReLU::new()`, `Tanh::new()`, ...).
    pub fn new() -> Self {
        Self::with(A::default())
    }
}

impl<B: Backend, A: Activation + Default> Default for Elementwise<B, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend, A: Activation> Elementwise<B, A> {
    /// A layer applying `activation`.
    pub fn with(activation: A) -> Self {
        Elementwise {
            activation,
            saved: None,
            output: Scratch::new(),
            output_view: None,
            grad: Scratch::new(),
            grad_view: None,
        }
    }
}

impl<B: Backend, A: Activation> Module<B> for Elementwise<B, A> {
    fn name(&self) -> String {
        self.activation.act().name().into()
    }

    fn widths(&self) -> Option<(usize, usize)> {
        None
    }

    fn kinds(&self) -> Vec<LayerKind> {
        vec![LayerKind::Activation(self.activation.act())]
    }

    fn forward(&mut self, backend: &B, x: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let y = self.output.get(backend, x.rows(), x.cols())?;
        let act = self.activation.act();
        backend.activation_forward(act, x, &y)?;
        self.saved = Some(if act.backward_from_input() {
            x.clone()
        } else {
            y.clone()
        });
        Ok(self.output_view.insert(y))
    }

    fn backward(&mut self, backend: &B, dy: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let act = self.activation.act();
        let Some(saved) = &self.saved else {
            return Err(Error::InvalidArgument(format!(
                "{}: backward called before forward",
                act.name()
            )));
        };
        if dy.shape() != saved.shape() {
            return Err(Error::shape(
                act.name(),
                format!(
                    "output gradient should be {}×{}, got {}×{}",
                    saved.rows(),
                    saved.cols(),
                    dy.rows(),
                    dy.cols()
                ),
            ));
        }
        let dx = self.grad.get(backend, dy.rows(), dy.cols())?;
        backend.activation_backward(act, saved, dy, &dx)?;
        Ok(self.grad_view.insert(dx))
    }
}
