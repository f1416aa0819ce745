//! `Linear`: `y = x · wᵀ + b`, weight stored `[out, in]` as in PyTorch, with PyTorch's
//! default initialisation.

use rand::{Rng, RngExt};

use super::module::{LayerKind, Module, Parameter};
use super::scratch::Scratch;
use crate::backend::{Act, Backend, DeviceTensor, GradMode, Ops};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A fully connected layer from `in_features` to `out_features`.
pub struct Linear<B: Backend> {
    in_features: usize,
    out_features: usize,
    weight: DeviceTensor<B>,
    bias: DeviceTensor<B>,
    weight_grad: DeviceTensor<B>,
    bias_grad: DeviceTensor<B>,
    input: Option<DeviceTensor<B>>,
    output: Scratch<B>,
    output_view: Option<DeviceTensor<B>>,
    grad_input: Scratch<B>,
    grad_input_view: Option<DeviceTensor<B>>,
    /// Whether `backward` adds to the gradients or writes over them.
    grad_mode: GradMode,
    /// Whether `backward` computes the input gradient.
    input_grad: bool,
}

impl<B: Backend> Linear<B> {
    /// A layer initialised as PyTorch's `nn.Linear`: weight and bias uniform in
    /// ±1/√in_features, drawn from `rng` (weight first, row by row, then bias).
    pub fn new(
        backend: &B,
        in_features: usize,
        out_features: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidArgument(format!(
                "Linear({in_features}→{out_features}): both sizes must be at least 1"
            )));
        }
        let bound = 1.0 / (in_features as f32).sqrt();
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = Tensor::new(
            &[out_features, in_features],
            draw(out_features * in_features),
        )?;
        let bias = Tensor::new(&[out_features], draw(out_features))?;
        Self::from_tensors(backend, &weight, &bias)
    }

    /// A layer with the given `[out, in]` weight and `[out]` bias.
    pub fn from_tensors(backend: &B, weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let [out_features, in_features] = weight.shape()[..] else {
            return Err(Error::shape(
                "Linear",
                format!("weight must be [out, in], got {:?}", weight.shape()),
            ));
        };
        if bias.shape() != [out_features] {
            return Err(Error::shape(
                "Linear",
                format!(
                    "bias must be [{out_features}] for a {:?} weight, got {:?}",
                    weight.shape(),
                    bias.shape()
                ),
            ));
        }
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidArgument(format!(
                "Linear({in_features}→{out_features}): both sizes must be at least 1"
            )));
        }
        for (what, t, cols) in [
            ("weight", weight, in_features),
            ("bias", bias, out_features),
        ] {
            if let Some(i) = t.data().iter().position(|v| !v.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "Linear({in_features}→{out_features}): {what} element [{}, {}] is {}",
                    i / cols,
                    i % cols,
                    t.data()[i]
                )));
            }
        }
        Ok(Linear {
            in_features,
            out_features,
            weight: backend.upload(weight)?,
            bias: backend.upload(bias)?,
            weight_grad: backend.alloc(out_features, in_features)?,
            bias_grad: backend.alloc(1, out_features)?,
            input: None,
            output: Scratch::new(),
            output_view: None,
            grad_input: Scratch::new(),
            grad_input_view: None,
            grad_mode: GradMode::Accumulate,
            input_grad: true,
        })
    }

    /// `act(input · wᵀ + b)`, keeping the input and output for the backward.
    fn forward_with(
        &mut self,
        backend: &B,
        input: &DeviceTensor<B>,
        act: Act,
    ) -> Result<&DeviceTensor<B>> {
        if input.cols() != self.in_features {
            return Err(Error::shape(
                self.name(),
                format!(
                    "expected input width {}, got a {}×{} input",
                    self.in_features,
                    input.rows(),
                    input.cols()
                ),
            ));
        }
        let y = self.output.get(backend, input.rows(), self.out_features)?;
        backend.linear_act_forward(input, &self.weight, &self.bias, act, &y)?;
        self.input = Some(input.clone());
        Ok(self.output_view.insert(y))
    }

    /// The backward of [`Linear::forward_with`] with the same `act`.
    fn backward_with(
        &mut self,
        backend: &B,
        grad_output: &DeviceTensor<B>,
        act: Act,
    ) -> Result<&DeviceTensor<B>> {
        let (Some(x), Some(y)) = (&self.input, &self.output_view) else {
            return Err(Error::InvalidArgument(format!(
                "{}: backward called before forward",
                self.name()
            )));
        };
        if grad_output.shape() != [x.rows(), self.out_features] {
            return Err(Error::shape(
                self.name(),
                format!(
                    "output gradient should be {}×{}, got {}×{}",
                    x.rows(),
                    self.out_features,
                    grad_output.rows(),
                    grad_output.cols()
                ),
            ));
        }
        let dx = self.grad_input.get(backend, x.rows(), self.in_features)?;
        backend.linear_act_backward_mode(
            x,
            &self.weight,
            Some(y),
            grad_output,
            act,
            self.input_grad.then_some(&dx),
            &self.weight_grad,
            &self.bias_grad,
            self.grad_mode,
        )?;
        Ok(self.grad_input_view.insert(dx))
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &DeviceTensor<B> {
        &self.weight
    }

    /// The bias, a `1 × out` row.
    pub fn bias(&self) -> &DeviceTensor<B> {
        &self.bias
    }
}

impl<B: Backend> Module<B> for Linear<B> {
    fn name(&self) -> String {
        format!("Linear({}→{})", self.in_features, self.out_features)
    }

    fn widths(&self) -> Option<(usize, usize)> {
        Some((self.in_features, self.out_features))
    }

    fn kinds(&self) -> Vec<LayerKind> {
        vec![LayerKind::Linear {
            inputs: self.in_features,
            outputs: self.out_features,
        }]
    }

    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.forward_with(backend, input, Act::Identity)
    }

    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        self.backward_with(backend, grad_output, Act::Identity)
    }

    fn forward_with_activation(
        &mut self,
        backend: &B,
        input: &DeviceTensor<B>,
        act: Act,
    ) -> Result<Option<&DeviceTensor<B>>> {
        self.forward_with(backend, input, act).map(Some)
    }

    fn backward_with_activation(
        &mut self,
        backend: &B,
        grad_output: &DeviceTensor<B>,
        act: Act,
    ) -> Result<Option<&DeviceTensor<B>>> {
        self.backward_with(backend, grad_output, act).map(Some)
    }

    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        vec![
            Parameter {
                name: "weight".into(),
                shape: vec![self.out_features, self.in_features],
                value: &self.weight,
                grad: &self.weight_grad,
            },
            Parameter {
                name: "bias".into(),
                shape: vec![self.out_features],
                value: &self.bias,
                grad: &self.bias_grad,
            },
        ]
    }

    fn set_grad_mode(&mut self, mode: GradMode) -> bool {
        self.grad_mode = mode;
        true
    }

    fn set_input_grad(&mut self, needed: bool) -> bool {
        self.input_grad = needed;
        !needed
    }

    fn zero_grad(&self, backend: &B) -> Result<()> {
        backend.zero(&self.weight_grad)?;
        backend.zero(&self.bias_grad)
    }
}
