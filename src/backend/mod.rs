//! The [`Backend`] trait: the op set every module is written against, once, for the CPU
//! reference ([`Cpu`]) and the wgpu backend ([`Gpu`]).
//!
//! Ops write into tensors the caller allocated, so that a training step allocates
//! nothing: a module allocates its buffers once and reuses them. Parameter gradients
//! accumulate (`+=`) as in PyTorch; [`Backend::zero`] clears them.

pub mod check;
pub mod cpu;
mod device_tensor;
pub mod gpu;
pub mod mlp;
pub mod optim;
pub mod reference;

pub use cpu::Cpu;
pub use device_tensor::DeviceTensor;
pub use gpu::Gpu;
pub use mlp::{Act, MlpEpoch, MlpLayer, MlpSpec};
pub use optim::{AdamStep, MomentumStep};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::tensor::Tensor;

/// A fresh buffer id, unique across backends for the life of the process.
pub(crate) fn next_buffer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A backend's storage handle: cheap to clone, shared by clones, identified by `id`.
pub trait BufferHandle: Clone + Send + Sync + std::fmt::Debug {
    /// A number unique to this buffer among all live buffers of the process.
    fn id(&self) -> u64;
    /// Capacity in `f32` elements.
    fn len(&self) -> usize;
    /// Whether the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How [`Backend::mse_loss`] reduces the squared errors, as PyTorch's `MSELoss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Σ (p − t)²; the gradient is 2 (p − t).
    #[default]
    Sum,
    /// Σ (p − t)² / N over all N elements; the gradient is 2 (p − t) / N.
    Mean,
}

impl Reduction {
    /// The factor applied to Σ (p − t)² for `count` elements.
    pub fn loss_scale(self, count: usize) -> f32 {
        match self {
            Reduction::Sum => 1.0,
            Reduction::Mean => 1.0 / count as f32,
        }
    }

    /// The factor applied to (p − t) in the gradient for `count` elements.
    pub fn grad_scale(self, count: usize) -> f32 {
        match self {
            Reduction::Sum => 2.0,
            Reduction::Mean => 2.0 / count as f32,
        }
    }
}

/// The op set of minidl. Every op validates its arguments with [`check`] and returns an
/// error, never panics, on bad shapes or aliasing outputs. Ops may run asynchronously
/// (the GPU records them); [`Backend::download`] returns the finished result.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The storage behind a [`DeviceTensor`].
    type Buffer: BufferHandle;

    /// A short human-readable name: `"cpu"`, or the GPU adapter's name.
    fn name(&self) -> String;

    /// A new zero-filled `rows × cols` tensor.
    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>>;

    /// Copies a host tensor of rank 1 or 2 into a new device tensor (`[n]` becomes `1 × n`).
    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>>;

    /// Overwrites `dst` with `data` (row-major, exactly `dst.len()` values), after all
    /// previously recorded work.
    fn write(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()>;

    /// Waits for the recorded work and copies `src` back as a `[rows, cols]` host tensor.
    fn download(&self, src: &DeviceTensor<Self>) -> Result<Tensor>;

    /// Sets every element of `dst` to zero.
    fn zero(&self, dst: &DeviceTensor<Self>) -> Result<()>;

    /// Copies `src` into `dst` (same shape, distinct buffers), after the recorded work.
    fn copy(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()>;

    /// `y = x · wᵀ + b` with `x: n×k`, `w: m×k`, `b: 1×m`, `y: n×m`:
    /// [`Backend::linear_act_forward`] with no activation.
    fn linear_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        self.linear_act_forward(x, w, b, Act::Identity, y)
    }

    /// Backward of [`Backend::linear_forward`] given `dy: n×m`: `dx = dy · w` (overwritten,
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
    /// [`Backend::linear_forward`]. The same numbers as the linear op followed by the
    /// activation's op.
    fn linear_act_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// Backward of [`Backend::linear_act_forward`] given its output `y` (needed, and
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
    ) -> Result<()>;

    /// `y = max(x, 0)`.
    fn relu_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()>;

    /// `dx = dy` where `x > 0`, else 0.
    fn relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// `y = tanh(x)`.
    fn tanh_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()>;

    /// `dx = dy · (1 − y²)` where `y = tanh(x)` is the forward output.
    fn tanh_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// `y = 1 / (1 + e^(−x))`.
    fn sigmoid_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()>;

    /// `dx = dy · y (1 − y)` where `y` is the forward output.
    fn sigmoid_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// `y = x` where `x > 0`, else `slope · x` (`slope` finite).
    fn leaky_relu_forward(
        &self,
        x: &DeviceTensor<Self>,
        slope: f32,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// `dx = dy` where `x > 0`, else `slope · dy`.
    fn leaky_relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        slope: f32,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// Softmax and cross-entropy in one op, as PyTorch's `CrossEntropyLoss` on class
    /// indices: the loss of `logits` (`n × classes`) against `labels` (`n × 1`, each a
    /// class index stored as a float), computed with the stable log-sum-exp, reduced
    /// over the rows (`Mean` divides by `n`) into the single element of `out`. A label
    /// that is not a whole number below `classes` makes the loss NaN.
    fn cross_entropy_loss(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The gradient of [`Backend::cross_entropy_loss`] with respect to the logits,
    /// `scale · (softmax(z) − onehot(label))`, into `grad` (shaped like `logits`).
    fn cross_entropy_grad(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// Writes the MSE of `pred` against `target` (same shape) into the single element
    /// of `out` (a `1 × 1` view, typically one slot of a per-epoch loss vector).
    fn mse_loss(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The gradient of [`Backend::mse_loss`] with respect to `pred`, into `grad`.
    fn mse_grad(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// Plain SGD in place: `param -= lr · grad`.
    fn sgd_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()>;

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
    ) -> Result<()>;

    /// One step of Adam in place, as PyTorch's `Adam`: `state` is `1 × (2n + 2)` for
    /// an `n`-element `param`, holding the running means `m` and `v` and the bias
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
    ) -> Result<()>;

    /// Whether [`Backend::mlp_epoch`] can train `spec` in mini-batches of `batch_size`
    /// (a GPU needs the network and one batch's activations in workgroup memory).
    fn mlp_fits(&self, spec: &MlpSpec, batch_size: usize) -> bool;

    /// One whole epoch of mini-batch SGD on the MLP `spec`, in one op: mini-batches of
    /// `epoch.batch_size` rows of `inputs`/`targets` in order, each one's MSE loss
    /// written to its row of `losses`, the packed `params` updated in place (see
    /// [`MlpSpec`]). The CPU defines it as the composition of the ops above
    /// ([`reference::mlp_epoch`]); the GPU runs it as one single-workgroup dispatch
    /// (several in a row for epochs longer than llvmpipe's loop limit allows). Fails with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) where
    /// [`Backend::mlp_fits`] is false.
    fn mlp_epoch(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<Self>,
        inputs: &DeviceTensor<Self>,
        targets: &DeviceTensor<Self>,
        epoch: &MlpEpoch,
        losses: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// Marks the start of device work to time (a no-op where the backend has no
    /// device timer, as the CPU).
    fn timer_start(&self) -> Result<()> {
        Ok(())
    }

    /// Marks the end of the work begun by [`Backend::timer_start`], without waiting.
    fn timer_stop(&self) -> Result<()> {
        Ok(())
    }

    /// The device time between the last start and stop, in milliseconds, waiting for
    /// it; `None` where the backend has no device timer (the GPU needs the
    /// `TIMESTAMP_QUERY` features) or no stop was recorded since the last read.
    fn timer_read(&self) -> Result<Option<f64>> {
        Ok(None)
    }

    /// Hands recorded work to the device without waiting for it (no-op on the CPU).
    fn flush(&self) -> Result<()>;

    /// Waits until all recorded work has finished (no-op on the CPU).
    fn synchronize(&self) -> Result<()>;
}
