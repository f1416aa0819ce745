//! Parameter-free elementwise layers: [`ReLU`], [`Tanh`], [`Sigmoid`] and
//! [`LeakyReLU`], one [`Elementwise`] layer each, told apart by their [`Activation`].

use super::module::{LayerKind, Module};
use super::scratch::Scratch;
use crate::backend::optim::check_non_negative;
use crate::backend::{Act, Backend, DeviceTensor};
use crate::error::{Error, Result};

/// The function an [`Elementwise`] layer applies: its forward and backward ops.
pub trait Activation<B: Backend>: Send + 'static {
    /// The layer's name in messages.
    const NAME: &'static str;
    /// Whether the backward needs the forward input (`true`) or output (`false`).
    const BACKWARD_FROM_INPUT: bool;
    /// The fused kernels' code for this function, if they have one.
    const FUSED: Option<Act> = None;
    /// `y = f(x)`.
    fn forward(&self, backend: &B, x: &DeviceTensor<B>, y: &DeviceTensor<B>) -> Result<()>;
    /// `dx = dy · f'(x)`, from the saved input or output.
    fn backward(
        &self,
        backend: &B,
        saved: &DeviceTensor<B>,
        dy: &DeviceTensor<B>,
        dx: &DeviceTensor<B>,
    ) -> Result<()>;
}

/// `max(x, 0)`; its backward reads the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReluFn;

impl<B: Backend> Activation<B> for ReluFn {
    const NAME: &'static str = "ReLU";
    const BACKWARD_FROM_INPUT: bool = true;
    const FUSED: Option<Act> = Some(Act::Relu);
    fn forward(&self, backend: &B, x: &DeviceTensor<B>, y: &DeviceTensor<B>) -> Result<()> {
        backend.relu_forward(x, y)
    }
    fn backward(
        &self,
        backend: &B,
        x: &DeviceTensor<B>,
        dy: &DeviceTensor<B>,
        dx: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.relu_backward(x, dy, dx)
    }
}

/// `tanh(x)`; its backward reads the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct TanhFn;

impl<B: Backend> Activation<B> for TanhFn {
    const NAME: &'static str = "Tanh";
    const BACKWARD_FROM_INPUT: bool = false;
    const FUSED: Option<Act> = Some(Act::Tanh);
    fn forward(&self, backend: &B, x: &DeviceTensor<B>, y: &DeviceTensor<B>) -> Result<()> {
        backend.tanh_forward(x, y)
    }
    fn backward(
        &self,
        backend: &B,
        y: &DeviceTensor<B>,
        dy: &DeviceTensor<B>,
        dx: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.tanh_backward(y, dy, dx)
    }
}

/// The logistic function `1 / (1 + e^(−x))`; its backward reads the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct SigmoidFn;

impl<B: Backend> Activation<B> for SigmoidFn {
    const NAME: &'static str = "Sigmoid";
    const BACKWARD_FROM_INPUT: bool = false;
    const FUSED: Option<Act> = Some(Act::Sigmoid);
    fn forward(&self, backend: &B, x: &DeviceTensor<B>, y: &DeviceTensor<B>) -> Result<()> {
        backend.sigmoid_forward(x, y)
    }
    fn backward(
        &self,
        backend: &B,
        y: &DeviceTensor<B>,
        dy: &DeviceTensor<B>,
        dx: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.sigmoid_backward(y, dy, dx)
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

impl<B: Backend> Activation<B> for LeakyReluFn {
    const NAME: &'static str = "LeakyReLU";
    const BACKWARD_FROM_INPUT: bool = true;
    fn forward(&self, backend: &B, x: &DeviceTensor<B>, y: &DeviceTensor<B>) -> Result<()> {
        backend.leaky_relu_forward(x, self.negative_slope, y)
    }
    fn backward(
        &self,
        backend: &B,
        x: &DeviceTensor<B>,
        dy: &DeviceTensor<B>,
        dx: &DeviceTensor<B>,
    ) -> Result<()> {
        backend.leaky_relu_backward(x, dy, self.negative_slope, dx)
    }
}

/// A layer applying the activation `A` elementwise. It keeps the tensor its backward
/// needs and reuses its output and gradient buffers from step to step.
pub struct Elementwise<B: Backend, A: Activation<B>> {
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

impl<B: Backend, A: Activation<B> + Default> Elementwise<B, A> {
    /// A layer of this activation (`ReLU::new()`, `Tanh::new()`, ...).
    pub fn new() -> Self {
        Self::with(A::default())
    }
}

impl<B: Backend, A: Activation<B> + Default> Default for Elementwise<B, A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend, A: Activation<B>> Elementwise<B, A> {
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

impl<B: Backend, A: Activation<B>> Module<B> for Elementwise<B, A> {
    fn name(&self) -> String {
        A::NAME.into()
    }

    fn widths(&self) -> Option<(usize, usize)> {
        None
    }

    fn kinds(&self) -> Vec<LayerKind> {
        vec![A::FUSED.map_or(LayerKind::Other, LayerKind::Activation)]
    }

    fn forward(&mut self, backend: &B, x: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let y = self.output.get(backend, x.rows(), x.cols())?;
        self.activation.forward(backend, x, &y)?;
        self.saved = Some(if A::BACKWARD_FROM_INPUT {
            x.clone()
        } else {
            y.clone()
        });
        Ok(self.output_view.insert(y))
    }

    fn backward(&mut self, backend: &B, dy: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let Some(saved) = &self.saved else {
            return Err(Error::InvalidArgument(format!(
                "{}: backward called before forward",
                A::NAME
            )));
        };
        if dy.shape() != saved.shape() {
            return Err(Error::shape(
                A::NAME,
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
        self.activation.backward(backend, saved, dy, &dx)?;
        Ok(self.grad_view.insert(dx))
    }
}
