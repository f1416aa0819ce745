//! The wgpu backend: every op is a WGSL compute kernel, recorded into a command encoder
//! and submitted in batches; the host waits only when it downloads a result.
//!
//! Folders: [`kernels`] holds the code the device runs and how it is called (the
//! calling convention, each family's parameter struct, the built-in shaders);
//! `runtime` the adapter, device, buffers, recording and launching; `ops` one
//! launch file per op family; [`products`] the matrix products' kernels, among which
//! its tuner chooses; [`epoch`] the generated whole-epoch MLP trainer. This file
//! routes each op of the [`Backend`] trait to its launch.

pub mod epoch;
pub mod kernels;
pub(crate) mod ops;
pub mod products;
pub(crate) mod runtime;

pub use ops::conv_lowering::{ConvLowering, ConvPass};
pub use ops::convolution::{CONV_ENV, MEASURED_IMAGES, UNFOLD_CHANNELS, UNFOLD_FROM};
pub use ops::unfolded_conv::SCRATCH_ELEMENTS;
pub use runtime::adapter::{AdapterSummary, ADAPTER_ENV};
pub use runtime::buffer::GpuBuffer;
pub use runtime::context::{Gpu, LOOP_BUDGET};
pub use runtime::recorder::GpuStats;

use crate::backend::{
    Act, AdamStep, Backend, Conv2dGeometry, DeviceTensor, DeviceTimer, GradMode, LossKind,
    MlpTrainer, MomentumStep, Pool2dGeometry, Reduction, UpsampleGeometry,
};
use crate::error::Result;
use crate::tensor::Tensor;
use runtime::context::lock;

impl Backend for Gpu {
    type Buffer = GpuBuffer;

    fn name(&self) -> String {
        self.ctx.adapter.name.clone()
    }

    fn device_id(&self) -> u64 {
        self.ctx.id
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        self.alloc_tensor(rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        self.upload_tensor(tensor)
    }

    fn download_unchecked(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        self.download_tensor(src)
    }

    fn zero_unchecked(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        self.zero_tensor(dst)
    }

    fn flush(&self) -> Result<()> {
        self.submit(&mut lock(&self.ctx.recorder))
    }

    fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    fn write_unchecked(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        self.write_data(dst, data)
    }

    fn copy_unchecked(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        self.copy_data(src, dst)
    }

    fn linear_forward_unchecked(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::linear::forward(self, x, w, b, act, y)
    }

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
    ) -> Result<()> {
        ops::linear::backward(self, x, w, y, dy, act, dx, dw, db, mode)
    }

    fn activation_forward_unchecked(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::activation::forward(self, act, x, y)
    }

    fn activation_backward_unchecked(
        &self,
        act: Act,
        saved: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::activation::backward(self, act, saved, dy, dx)
    }

    fn loss_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        match kind {
            LossKind::Mse => ops::mse::loss(self, pred, target, reduction, out),
            LossKind::CrossEntropy => ops::cross_entropy::loss(self, pred, target, reduction, out),
        }
    }

    fn loss_grad_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        match kind {
            LossKind::Mse => ops::mse::grad(self, pred, target, reduction, grad),
            LossKind::CrossEntropy => ops::cross_entropy::grad(self, pred, target, reduction, grad),
        }
    }

    fn sgd_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        ops::update::sgd(self, param, grad, lr)
    }

    fn momentum_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        ops::update::momentum(self, param, grad, velocity, hyper)
    }

    fn adam_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        ops::update::adam(self, param, grad, state, hyper)
    }

    fn conv2d_forward_unchecked(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::convolution::conv2d_forward(self, g, x, w, b, y)
    }

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
    ) -> Result<()> {
        ops::convolution::conv2d_backward(self, g, x, w, dy, dx, dw, db, mode)
    }

    fn max_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::max_pool2d_forward(self, g, x, y)
    }

    fn max_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::max_pool2d_backward(self, g, x, dy, dx)
    }

    fn avg_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::avg_pool2d_forward(self, g, x, y)
    }

    fn avg_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::avg_pool2d_backward(self, g, dy, dx)
    }

    fn upsample_nearest_forward_unchecked(
        &self,
        g: &UpsampleGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::upsample_nearest_forward(self, g, x, y)
    }

    fn upsample_nearest_backward_unchecked(
        &self,
        g: &UpsampleGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        ops::image::upsample_nearest_backward(self, g, dy, dx)
    }

    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        Some(self)
    }

    fn timer(&self) -> Option<&dyn DeviceTimer> {
        self.has_timestamps().then_some(self as &dyn DeviceTimer)
    }
}
