//! `Sequential`: layers run one after another, forward in order and backward in
//! reverse, with widths checked when it is built.

use super::module::{LayerKind, Module, Parameter};
use crate::backend::{Backend, DeviceTensor};
use crate::error::{Error, Result};

/// A chain of layers. Parameter names are prefixed with the layer's index, as in
/// PyTorch's `nn.Sequential` (`"0.weight"`, `"2.bias"`, ...).
pub struct Sequential<B: Backend> {
    layers: Vec<Box<dyn Module<B>>>,
}

impl<B: Backend> Sequential<B> {
    /// Chains `layers`. Fails when there are none, or when a layer's input width is not
    /// the output width of the layer with fixed widths before it (naming both).
    pub fn new(layers: Vec<Box<dyn Module<B>>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::InvalidArgument(
                "a Sequential needs at least one layer".into(),
            ));
        }
        let mut previous: Option<(usize, String, usize)> = None;
        for (i, layer) in layers.iter().enumerate() {
            let Some((input, output)) = layer.widths() else {
                continue;
            };
            if let Some((j, name, width)) = &previous {
                if *width != input {
                    return Err(Error::shape(
                        "Sequential",
                        format!(
                            "layer {j} {name} outputs width {width} but layer {i} {} takes width {input}",
                            layer.name()
                        ),
                    ));
                }
            }
            previous = Some((i, layer.name(), output));
        }
        Ok(Sequential { layers })
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Module<B>>] {
        &self.layers
    }
}

impl<B: Backend> Module<B> for Sequential<B> {
    fn name(&self) -> String {
        let names: Vec<String> = self.layers.iter().map(|l| l.name()).collect();
        format!("Sequential[{}]", names.join(", "))
    }

    fn widths(&self) -> Option<(usize, usize)> {
        let mut fixed = self.layers.iter().filter_map(|l| l.widths());
        let (input, _) = fixed.next()?;
        let (_, output) = self.layers.iter().rev().find_map(|l| l.widths())?;
        Some((input, output))
    }

    fn kinds(&self) -> Vec<LayerKind> {
        self.layers.iter().flat_map(|l| l.kinds()).collect()
    }

    fn forward(&mut self, backend: &B, input: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let (first, rest) = self
            .layers
            .split_first_mut()
            .expect("checked non-empty in new");
        let mut x = first.forward(backend, input)?;
        for layer in rest {
            x = layer.forward(backend, x)?;
        }
        Ok(x)
    }

    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let (last, rest) = self
            .layers
            .split_last_mut()
            .expect("checked non-empty in new");
        let mut g = last.backward(backend, grad_output)?;
        for layer in rest.iter_mut().rev() {
            g = layer.backward(backend, g)?;
        }
        Ok(g)
    }

    fn parameters(&self) -> Vec<Parameter<'_, B>> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| {
                layer.parameters().into_iter().map(move |p| Parameter {
                    name: format!("{i}.{}", p.name),
                    ..p
                })
            })
            .collect()
    }
}
