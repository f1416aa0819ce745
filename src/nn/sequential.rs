//! `Sequential`: layers run one after another, forward in order and backward in
//! reverse, with widths checked when it is built.

use super::module::{LayerKind, Module, Parameter};
use crate::backend::{Act, Backend, DeviceTensor, GradMode};
use crate::error::{Error, Result};

/// A chain of layers. Parameter names are prefixed with the layer's index, as in
/// PyTorch's `nn.Sequential` (`"0.weight"`, `"2.bias"`, ...).
///
/// A layer followed by an activation layer runs both in one op where it can
/// ([`Module::forward_with_activation`]: a `Linear` and any activation are one kernel forward
/// and three backward, instead of two and four).
pub struct Sequential<B: Backend> {
    layers: Vec<Box<dyn Module<B>>>,
    /// For each layer, the activation of the next layer when that is all it is.
    next_act: Vec<Option<Act>>,
    /// For each layer, whether the last forward fused it with the next one.
    fused: Vec<bool>,
    output: Option<DeviceTensor<B>>,
    grad_input: Option<DeviceTensor<B>>,
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
        let next_act = (0..layers.len())
            .map(|i| match layers.get(i + 1).map(|l| l.kinds()).as_deref() {
                Some([LayerKind::Activation(act)]) => Some(*act),
                _ => None,
            })
            .collect();
        Ok(Sequential {
            fused: vec![false; layers.len()],
            next_act,
            layers,
            output: None,
            grad_input: None,
        })
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
        let mut x = input.clone();
        let mut i = 0;
        while i < self.layers.len() {
            self.fused[i] = false;
            if let Some(act) = self.next_act[i] {
                if let Some(y) = self.layers[i].forward_with_activation(backend, &x, act)? {
                    x = y.clone();
                    self.fused[i] = true;
                    i += 2;
                    continue;
                }
            }
            x = self.layers[i].forward(backend, &x)?.clone();
            i += 1;
        }
        Ok(self.output.insert(x))
    }

    fn backward(&mut self, backend: &B, grad_output: &DeviceTensor<B>) -> Result<&DeviceTensor<B>> {
        let mut g = grad_output.clone();
        let mut i = self.layers.len();
        while i > 0 {
            i -= 1;
            match self.next_act.get(i.wrapping_sub(1)).copied().flatten() {
                // Layer i is the activation the layer before it ran fused.
                Some(act) if i > 0 && self.fused[i - 1] => {
                    g = match self.layers[i - 1].backward_with_activation(backend, &g, act)? {
                        Some(dx) => dx.clone(),
                        None => {
                            return Err(Error::InvalidArgument(format!(
                                "{}: fused backward unavailable after a fused forward",
                                self.layers[i - 1].name()
                            )))
                        }
                    };
                    i -= 1;
                }
                _ => g = self.layers[i].backward(backend, &g)?.clone(),
            }
        }
        Ok(self.grad_input.insert(g))
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

    fn set_grad_mode(&mut self, mode: GradMode) -> bool {
        // Every layer is told, not only those before the first that cannot.
        let mut all = true;
        for layer in &mut self.layers {
            all &= layer.set_grad_mode(mode);
        }
        // Where a layer cannot overwrite, every layer accumulates (and the caller clears).
        if !all {
            for layer in &mut self.layers {
                layer.set_grad_mode(GradMode::Accumulate);
            }
        }
        all
    }

    /// Passed on to the first layer: the others' input gradients are the gradients of
    /// the layers before them.
    fn set_input_grad(&mut self, needed: bool) -> bool {
        self.layers
            .first_mut()
            .is_some_and(|first| first.set_input_grad(needed))
    }

    fn zero_grad(&self, backend: &B) -> Result<()> {
        for layer in &self.layers {
            layer.zero_grad(backend)?;
        }
        Ok(())
    }
}
