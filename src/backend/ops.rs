//! [`Ops`]: the op set of minidl, the same for every [`Backend`]. Each op checks its
//! arguments once, here ([`check`]): that every tensor lives on this backend's device,
//! their shapes, and that no output aliases an input; then it runs the backend's
//! unchecked kernel. So every backend rejects exactly the same calls with exactly the
//! same errors, and a backend only computes.

use crate::backend::{
    check, Act, AdamStep, Backend, Conv2dGeometry, DeviceTensor, GradMode, LossKind, MomentumStep,
    Pool2dGeometry, Reduction, UpsampleGeometry,
};
use crate::error::Result;
use crate::tensor::Tensor;

/// The checked op set, implemented for every [`Backend`]. Every op returns an error,
/// never panics, on bad shapes or outputs that alias inputs.
pub trait Ops: Backend {
    /// Waits for the recorded work and copies `src` back as a `[rows, cols]` host tensor.
    fn download(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        check::same_device(self, "download", &[Some(src)])?;
        self.download_unchecked(src)
    }

    /// Sets every element of `dst` to zero.
    fn zero(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        check::same_device(self, "zero", &[Some(dst)])?;
        self.zero_unchecked(dst)
    }

    /// Overwrites `dst` with `data` (row-major, exactly `dst.len()` values), after all
    /// previously recorded work.
    fn write(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        check::same_device(self, "write", &[Some(dst)])?;
        check::write(dst, data)?;
        self.write_unchecked(dst, data)
    }

    /// Copies `src` into `dst` (same shape, distinct buffers), after the recorded work.
    fn copy(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        check::same_device(self, "copy", &[Some(src), Some(dst)])?;
        check::copy(src, dst)?;
        self.copy_unchecked(src, dst)
    }

    /// `y = x · wᵀ + b` with `x: n×k`, `w: m×k`, `b: 1×m`, `y: n×m`:
    /// [`Ops::linear_act_forward`] with no activation.
    fn linear_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        self.linear_act_forward(x, w, b, Act::Identity, y)
    }

    /// Backward of [`Ops::linear_forward`] given `dy: n×m`: `dx = dy · w` (overwritten,
    /// skipped when `dx` is `None`), `dw += dyᵀ · x`, `db += Σ_rows dy`.
    fn linear_backward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
    ) -> Result<()> {
        self.linear_act_backward(x, w, None, dy, Act::Identity, dx, dw, db)
    }

    /// A linear layer and its activation in one op: `y = act(x · wᵀ + b)`, shapes as
    /// [`Ops::linear_forward`]. The same numbers as the linear op followed by the
    /// activation's op.
    fn linear_act_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(
            self,
            "linear_forward",
            &[Some(x), Some(w), Some(b), Some(y)],
        )?;
        check::linear_forward(x, w, b, act, y)?;
        self.linear_forward_unchecked(x, w, b, act, y)
    }

    /// Backward of [`Ops::linear_act_forward`] given its output `y` (needed, and
    /// shaped `n×m`, unless `act` is the identity) and `dy: n×m`: with
    /// `dz = dy ⊙ act'(y)`, `dx = dz · w` (overwritten, skipped when `None`),
    /// `dw += dzᵀ · x`, `db += Σ_rows dz`. The same numbers as the activation's
    /// backward followed by the linear one.
    #[allow(clippy::too_many_arguments)]
    fn linear_act_backward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        y: Option<&DeviceTensor<Self>>,
        dy: &DeviceTensor<Self>,
        act: Act,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
    ) -> Result<()> {
        self.linear_act_backward_mode(x, w, y, dy, act, dx, dw, db, GradMode::Accumulate)
    }

    /// [`Ops::linear_act_backward`] with the parameter gradients added to `dw` and `db`
    /// ([`GradMode::Accumulate`]) or written over them ([`GradMode::Overwrite`], which
    /// spares a training step the clear before it).
    #[allow(clippy::too_many_arguments)]
    fn linear_act_backward_mode(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        y: Option<&DeviceTensor<Self>>,
        dy: &DeviceTensor<Self>,
        act: Act,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
        mode: GradMode,
    ) -> Result<()> {
        let all = [Some(x), Some(w), y, Some(dy), dx, Some(dw), Some(db)];
        check::same_device(self, "linear_backward", &all)?;
        check::linear_act_backward(x, w, y, dy, act, dx, dw, db)?;
        let y = y.filter(|_| act != Act::Identity);
        self.linear_backward_unchecked(x, w, y, dy, act, dx, dw, db, mode)
    }

    /// `y = act(x)`, elementwise (see [`definitions::activate`](super::reference::definitions::activate)).
    fn activation_forward(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(self, "activation_forward", &[Some(x), Some(y)])?;
        check::activation(act, "forward", &[x], y)?;
        self.activation_forward_unchecked(act, x, y)
    }

    /// `dx = dy ⊙ act'`, from `saved`: the forward input where
    /// [`Act::backward_from_input`], else the forward output (see
    /// [`definitions::gate_one`](super::reference::definitions::gate_one)).
    fn activation_backward(
        &self,
        act: Act,
        saved: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(
            self,
            "activation_backward",
            &[Some(saved), Some(dy), Some(dx)],
        )?;
        check::activation(act, "backward", &[saved, dy], dx)?;
        self.activation_backward_unchecked(act, saved, dy, dx)
    }

    /// Writes the loss `kind` of `pred` against `target`, reduced by `reduction`, into
    /// the single element of `out` (a `1 × 1` view, typically one slot of a per-epoch
    /// loss vector). For MSE `target` is shaped like `pred`; for cross-entropy `pred`
    /// holds `n × classes` logits and `target` `n × 1` class indices.
    fn loss(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(self, "loss", &[Some(pred), Some(target), Some(out)])?;
        check::loss(kind, pred, target, out)?;
        self.loss_unchecked(kind, pred, target, reduction, out)
    }

    /// The gradient of [`Ops::loss`] with respect to `pred`, into `grad` (shaped like
    /// `pred`): `2 (p − t)` times the reduction's factor for MSE,
    /// `scale · (softmax(z) − onehot(label))` for cross-entropy.
    fn loss_grad(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(self, "loss_grad", &[Some(pred), Some(target), Some(grad)])?;
        check::loss_grad(kind, pred, target, grad)?;
        self.loss_grad_unchecked(kind, pred, target, reduction, grad)
    }

    /// Plain SGD in place: `param -= lr · grad`.
    fn sgd_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        check::same_device(self, "sgd_step", &[Some(param), Some(grad)])?;
        check::sgd_step(param, grad, lr)?;
        self.sgd_step_unchecked(param, grad, lr)
    }

    /// One step of SGD with momentum in place, as PyTorch's `SGD` (`dampening = 0`):
    /// `g = grad + weight_decay · param`, `velocity = momentum · velocity + g`, then
    /// `param −= lr · (g + momentum · velocity)` with Nesterov, else
    /// `param −= lr · velocity`. `velocity` (shaped like `param`) starts at zero.
    fn momentum_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        let all = [Some(param), Some(grad), Some(velocity)];
        check::same_device(self, "momentum_step", &all)?;
        check::momentum_step(param, grad, velocity, hyper)?;
        self.momentum_step_unchecked(param, grad, velocity, hyper)
    }

    /// One step of Adam in place, as PyTorch's `Adam`: `state` is one row laid out as
    /// [`StateLayout::ADAM`](crate::backend::StateLayout::ADAM) for an `n`-element
    /// `param` (`2n + 2` values), holding the running means `m` and `v` and the bias
    /// corrections `c₁ = 1 − β₁ᵗ`, `c₂ = 1 − β₂ᵗ` of step `t`, all zero before the
    /// first step. With `g = grad + weight_decay · param`: `m += (1 − β₁)(g − m)`,
    /// `v = β₂ v + (1 − β₂) g²`, `c ← (1 − β) + β c` (which is `1 − βᵗ⁺¹`), then
    /// `param −= lr / c₁ · m / (√v / √c₂ + ε)`.
    fn adam_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        check::same_device(self, "adam_step", &[Some(param), Some(grad), Some(state)])?;
        check::adam_step(param, grad, state, hyper)?;
        self.adam_step_unchecked(param, grad, state, hyper)
    }

    /// The 2-D convolution of geometry `g`, as PyTorch's `Conv2d`: `x` holds `N` images
    /// of `C × H × W` pixels, one per row in (C, H, W) order (`N × C·H·W`); `w` the
    /// `[O, C, kh, kw]` weight as `O × C·kh·kw`; `b` the bias as `1 × O`; `y` (written
    /// over) the `N × O·OH·OW` output. See
    /// [`images::conv2d_forward`](super::reference::images::conv2d_forward).
    fn conv2d_forward(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::same_device(
            self,
            "conv2d_forward",
            &[Some(x), Some(w), Some(b), Some(y)],
        )?;
        check::conv2d_forward(g, x, w, b, y)?;
        self.conv2d_forward_unchecked(g, x, w, b, y)
    }

    /// Backward of [`Ops::conv2d_forward`] given `dy` (shaped like `y`): the input
    /// gradient into `dx` (written over; skipped when `None`), the weight and bias
    /// gradients into `dw` and `db`, added or written over as `mode` says. See
    /// [`images::conv2d_backward_input`](super::reference::images::conv2d_backward_input)
    /// and [`images::conv2d_backward_weight`](super::reference::images::conv2d_backward_weight).
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
        mode: GradMode,
    ) -> Result<()> {
        let all = [Some(x), Some(w), Some(dy), dx, Some(dw), Some(db)];
        check::same_device(self, "conv2d_backward", &all)?;
        check::conv2d_backward(g, x, w, dy, dx, dw, db)?;
        self.conv2d_backward_unchecked(g, x, w, dy, dx, dw, db, mode)
    }

    /// Max pooling of geometry `g`, as PyTorch's `MaxPool2d`: `x` is `N × C·H·W`, `y`
    /// (written over) `N × C·OH·OW`. See
    /// [`images::max_pool2d_forward`](super::reference::images::max_pool2d_forward).
    fn max_pool2d_forward(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "max_pool2d_forward";
        check::same_device(self, OP, &[Some(x), Some(y)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        check::resample(OP, g.batch(), &[("input", x, input)], ("output", y, output))?;
        self.max_pool2d_forward_unchecked(g, x, y)
    }

    /// Backward of [`Ops::max_pool2d_forward`] from its input `x` and `dy`: each
    /// output's gradient goes to the first maximum of its window; `dx` (shaped like
    /// `x`) is written over. See
    /// [`images::max_pool2d_backward`](super::reference::images::max_pool2d_backward).
    fn max_pool2d_backward(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "max_pool2d_backward";
        check::same_device(self, OP, &[Some(x), Some(dy), Some(dx)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        let ins = [("input", x, input), ("output gradient", dy, output)];
        check::resample(OP, g.batch(), &ins, ("input gradient", dx, input))?;
        self.max_pool2d_backward_unchecked(g, x, dy, dx)
    }

    /// Average pooling of geometry `g`, as PyTorch's `AvgPool2d` (padded positions
    /// count in the divisor `kh·kw`): `x` is `N × C·H·W`, `y` (written over)
    /// `N × C·OH·OW`. See
    /// [`images::avg_pool2d_forward`](super::reference::images::avg_pool2d_forward).
    fn avg_pool2d_forward(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "avg_pool2d_forward";
        check::same_device(self, OP, &[Some(x), Some(y)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        check::resample(OP, g.batch(), &[("input", x, input)], ("output", y, output))?;
        self.avg_pool2d_forward_unchecked(g, x, y)
    }

    /// Backward of [`Ops::avg_pool2d_forward`] from `dy`: each output's `dy / (kh·kw)`
    /// goes to every real pixel of its window; `dx` (`N × C·H·W`) is written over. See
    /// [`images::avg_pool2d_backward`](super::reference::images::avg_pool2d_backward).
    fn avg_pool2d_backward(
        &self,
        g: &Pool2dGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "avg_pool2d_backward";
        check::same_device(self, OP, &[Some(dy), Some(dx)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        let ins = [("output gradient", dy, output)];
        check::resample(OP, g.batch(), &ins, ("input gradient", dx, input))?;
        self.avg_pool2d_backward_unchecked(g, dy, dx)
    }

    /// Nearest-neighbour upsampling of geometry `g`, as PyTorch's
    /// `Upsample(mode = "nearest")` with an integer scale: `x` is `N × C·H·W`, `y`
    /// (written over) `N × C·sH·sW`. See
    /// [`images::upsample_nearest_forward`](super::reference::images::upsample_nearest_forward).
    fn upsample_nearest_forward(
        &self,
        g: &UpsampleGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "upsample_nearest_forward";
        check::same_device(self, OP, &[Some(x), Some(y)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        check::resample(OP, g.batch(), &[("input", x, input)], ("output", y, output))?;
        self.upsample_nearest_forward_unchecked(g, x, y)
    }

    /// Backward of [`Ops::upsample_nearest_forward`]: each input pixel's gradient is
    /// the sum of the `s²` output gradients it was copied to; `dx` is written over.
    fn upsample_nearest_backward(
        &self,
        g: &UpsampleGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        const OP: &str = "upsample_nearest_backward";
        check::same_device(self, OP, &[Some(dy), Some(dx)])?;
        let (input, output) = (g.input_sample_len(), g.output_sample_len());
        let ins = [("output gradient", dy, output)];
        check::resample(OP, g.batch(), &ins, ("input gradient", dx, input))?;
        self.upsample_nearest_backward_unchecked(g, dy, dx)
    }
}

impl<B: Backend> Ops for B {}
