//! The [`Backend`] trait: what a backend implements (storage, transfer and its
//! unchecked kernels), for the fast CPU backend ([`Cpu`]), the wgpu backend ([`Gpu`])
//! and the plain-loop oracle both are tested against ([`Reference`]).
//! Modules call the checked op set, [`Ops`], which every backend has: each op checks
//! its arguments once ([`check`]) and then runs the backend's kernel. The fused MLP
//! trainer ([`MlpTrainer`]) and device timing ([`DeviceTimer`]) are traits of their
//! own that a backend offers through [`Backend::mlp_trainer`] and [`Backend::timer`].
//!
//! Ops write into tensors the caller allocated, so that a training step allocates
//! nothing: a module allocates its buffers once and reuses them. Parameter gradients
//! accumulate (`+=`) as in PyTorch, and [`Ops::zero`] clears them; or a backward
//! writes over them ([`GradMode::Overwrite`]), which spares a training step its clears.

pub mod act;
pub mod auto;
pub mod check;
pub mod cpu;
mod device_tensor;
pub mod gpu;
pub mod host;
pub mod image_geometry;
pub mod mlp;
mod mlp_trainer;
mod ops;
pub mod reference;
mod state_layout;
mod timer;
pub mod update;

pub use act::Act;
pub use cpu::Cpu;
pub use device_tensor::DeviceTensor;
pub use gpu::Gpu;
pub use image_geometry::{
    Conv2dGeometry, Conv2dSpec, Pool2dGeometry, Pool2dSpec, UpsampleGeometry,
};
pub use mlp::{MlpLayer, MlpRecipe, MlpSpec};
pub use mlp_trainer::MlpTrainer;
pub use ops::Ops;
pub use reference::Reference;
pub use state_layout::StateLayout;
pub use timer::DeviceTimer;
pub use update::{AdamStep, MomentumStep, UpdateRule};

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
    /// The device the buffer lives on: [`Backend::device_id`] of the backend that made
    /// it.
    fn device(&self) -> u64;
    /// Whether the buffer holds no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loss family: which loss [`Ops::loss`] and [`Ops::loss_grad`] compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// The squared error of predictions against targets of the same shape, as
    /// PyTorch's `MSELoss`.
    Mse,
    /// Softmax and cross-entropy in one op, as PyTorch's `CrossEntropyLoss` on class
    /// indices: `logits` (`n × classes`) against `labels` (`n × 1`, each a class index
    /// stored as a float), with the stable log-sum-exp. A label that is not a whole
    /// number below `classes` makes the loss NaN.
    CrossEntropy,
}

/// What a backward does with the parameter gradients it computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradMode {
    /// Adds them to what the gradient tensors hold, as PyTorch does; a training step
    /// clears the gradients first ([`Ops::zero`]).
    #[default]
    Accumulate,
    /// Writes them over what the gradient tensors hold: the same numbers as a clear
    /// followed by an accumulating backward, without the clear.
    Overwrite,
}

/// How a loss reduces its terms, as PyTorch's `reduction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The sum: Σ (p − t)² for MSE, whose gradient is 2 (p − t); the sum over the
    /// rows for cross-entropy.
    #[default]
    Sum,
    /// The sum divided by the element count N for MSE (gradient 2 (p − t) / N), by
    /// the row count for cross-entropy.
    Mean,
}

impl Reduction {
    /// The factor a loss summed over `count` terms takes: 1 for a sum, 1/count for a
    /// mean (MSE's Σ (p − t)², cross-entropy's Σ over rows, and cross-entropy's
    /// gradient).
    pub fn loss_scale(self, count: usize) -> f32 {
        match self {
            Reduction::Sum => 1.0,
            Reduction::Mean => 1.0 / count as f32,
        }
    }

    /// The factor applied to (p − t) in MSE's gradient for `count` elements: twice
    /// [`Reduction::loss_scale`].
    pub fn mse_grad_scale(self, count: usize) -> f32 {
        match self {
            Reduction::Sum => 2.0,
            Reduction::Mean => 2.0 / count as f32,
        }
    }
}

/// What a backend implements: storage, transfer and the op kernels. The kernels are
/// *unchecked*: they may assume the shapes and aliasing rules of [`check`] hold, since
/// they are reached only through the checked op set [`Ops`], which every backend gets
/// from this trait. Kernels may run asynchronously (the GPU records them);
/// [`Ops::download`] returns the finished result.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The storage behind a [`DeviceTensor`].
    type Buffer: BufferHandle;

    /// A short human-readable name: `"cpu"`, or the GPU adapter's name.
    fn name(&self) -> String;

    /// The device this backend's buffers live on: equal for backends that can use each
    /// other's tensors (every `Cpu` and `Reference`; clones of one `Gpu`), distinct
    /// otherwise.
    fn device_id(&self) -> u64;

    /// A new zero-filled `rows × cols` tensor.
    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>>;

    /// Copies a host tensor of rank 1 or 2 into a new device tensor (`[n]` becomes `1 × n`).
    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>>;

    /// The kernel of [`Ops::download`].
    fn download_unchecked(&self, src: &DeviceTensor<Self>) -> Result<Tensor>;

    /// The kernel of [`Ops::zero`].
    fn zero_unchecked(&self, dst: &DeviceTensor<Self>) -> Result<()>;

    /// Hands recorded work to the device without waiting for it (no-op on the CPU).
    fn flush(&self) -> Result<()>;

    /// Waits until all recorded work has finished (no-op on the CPU).
    fn synchronize(&self) -> Result<()>;

    /// The kernel of [`Ops::write`].
    fn write_unchecked(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()>;

    /// The kernel of [`Ops::copy`].
    fn copy_unchecked(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()>;

    /// The kernel of [`Ops::linear_act_forward`].
    fn linear_forward_unchecked(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::linear_act_backward_mode`]; `y` is `Some` exactly when
    /// `act` is not the identity.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward_unchecked(
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
    ) -> Result<()>;

    /// The kernel of [`Ops::activation_forward`].
    fn activation_forward_unchecked(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::activation_backward`].
    fn activation_backward_unchecked(
        &self,
        act: Act,
        saved: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::loss`].
    fn loss_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::loss_grad`].
    fn loss_grad_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::sgd_step`].
    fn sgd_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()>;

    /// The kernel of [`Ops::momentum_step`].
    fn momentum_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()>;

    /// The kernel of [`Ops::adam_step`].
    fn adam_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()>;

    /// The kernel of [`Ops::conv2d_forward`].
    fn conv2d_forward_unchecked(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::conv2d_backward`].
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward_unchecked(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: Option<&DeviceTensor<Self>>,
        dw: &DeviceTensor<Self>,
        db: &DeviceTensor<Self>,
        mode: GradMode,
    ) -> Result<()>;

    /// The kernel of [`Ops::max_pool2d_forward`].
    fn max_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::max_pool2d_backward`].
    fn max_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::avg_pool2d_forward`].
    fn avg_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::avg_pool2d_backward`].
    fn avg_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::upsample_nearest_forward`].
    fn upsample_nearest_forward_unchecked(
        &self,
        g: &UpsampleGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The kernel of [`Ops::upsample_nearest_backward`].
    fn upsample_nearest_backward_unchecked(
        &self,
        g: &UpsampleGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()>;

    /// The fully fused MLP trainer of this backend, if it has one.
    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        None
    }

    /// The device timer of this backend, if it has one (the GPU needs the
    /// `TIMESTAMP_QUERY` features).
    fn timer(&self) -> Option<&dyn DeviceTimer> {
        None
    }
}
