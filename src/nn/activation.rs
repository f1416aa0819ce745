//! Parameter-free elementwise layers: `ReLU` and `Tanh`.

use super::module::Module;
use super::scratch::Scratch;
use crate::backend::{Backend, DeviceTensor};
use crate::error::{Error, Result};

type Forward<B> = fn(&B, &DeviceTensor<B>, &DeviceTensor<B>) -> Result<()>;
type Backward<B> = fn(&B, &DeviceTensor<B>, &DeviceTensor<B>, &DeviceTensor<B>) -> Result<()>;

/// The state an elementwise layer keeps: the tensor its backward needs (the input for
/// ReLU, the output for Tanh) and its reusable output and gradient buffers.
struct Pointwise<B: Backend> {
    saved: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad: Scratch<B>,
    grad_view: Option<DeviceTensor<B>>,
}

impl<B: Backend> Pointwise<B> {
    fn new() -> Self {
        Pointwise {
            saved: None,
            output: Scratch::new(),
            output_view: None,
            grad: Scratch::new(),
            grad_view: None,
        }
    }

    fn forward(
        &mut self,
        backend: &B,
        x: &DeviceTensor<B>,
        op: Forward<B>,
        save_input: bool,
    ) -> Result<&DeviceTensor<B>> {
        let y = self.output.get(backend, x.rows(), x.cols())?;
        op(backend, x, &y)?;
        self.saved = Some(if save_input { x.clone() } else { y.clone() });
        Ok(self.output_view.insert(y))
    }

    fn backward(
        &mut self,
        backend: &B,
        name: &str,
        dy: &DeviceTensor<B>,
        op: Backward<B>,
    ) -> Result<&DeviceTensor<B>> {
        let Some(saved) = &self.saved else {
            return Err(Error::InvalidArgument(format!(
                "{name}: backward called before forward"
            )));
        };
        if dy.shape() != saved.shape() {
            return Err(Error::shape(
                name,
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
        op(backend, saved, dy, &dx)?;
        Ok(self.grad_view.insert(dx))
    }
}

/// `max(x, 0)`, elementwise.
pub struct ReLU<B: Backend>(Pointwise<B>);

impl<B: Backend> ReLU<B> {
    /// A ReLU layer.
    pub fn new() -> Self {
        ReLU(Pointwise::new())
    }
}

impl<B: Backend> Default for ReLU<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Module<B> for ReLU<B> {
    fn name(&self) -> String {
        "ReLU".into()
    }
    fn widths(&self) -> Option<(usize, usize)> {
        None
    }
    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.0.forward(backend, input, B::relu_forward, true)
    }
    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.0
            .backward(backend, "ReLU", grad_output, B::relu_backward)
    }
}

/// `tanh(x)`, elementwise.
pub struct Tanh<B: Backend>(Pointwise<B>);

impl<B: Backend> Tanh<B> {
    /// A Tanh layer.
    pub fn new() -> Self {
        Tanh(Pointwise::new())
    }
}

impl<B: Backend> Default for Tanh<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> Module<B> for Tanh<B> {
    fn name(&self) -> String {
        "Tanh".into()
    }
    fn widths(&self) -> Option<(usize, usize)> {
        None
    }
    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.0.forward(backend, input, B::tanh_forward, false)
    }
    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.0
            .backward(backend, "Tanh", grad_output, B::tanh_backward)
    }
}
