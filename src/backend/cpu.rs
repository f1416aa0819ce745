//! The CPU reference backend: host buffers and the plain loops of
//! [`super::reference`] run in `f32`. It defines what every op means; the
//! GPU backend is tested against it.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::backend::{
    check, next_buffer_id, reference, Act, AdamStep, Backend, BufferHandle, DeviceTensor, MlpEpoch,
    MlpSpec, MomentumStep, Reduction,
};
use crate::error::Result;
use crate::tensor::Tensor;

/// The CPU reference backend. Stateless; clones are interchangeable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// A host buffer shared by the [`DeviceTensor`]s that view it.
#[derive(Debug, Clone)]
pub struct CpuBuffer {
    data: Arc<RwLock<Vec<f32>>>,
    len: usize,
    id: u64,
}

impl BufferHandle for CpuBuffer {
    fn id(&self) -> u64 {
        self.id
    }
    fn len(&self) -> usize {
        self.len
    }
}

impl CpuBuffer {
    fn new(data: Vec<f32>) -> Self {
        CpuBuffer {
            len: data.len(),
            data: Arc::new(RwLock::new(data)),
            id: next_buffer_id(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<f32>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` on the input slices with each distinct buffer read-locked once (two views
/// of one buffer must not take its lock twice), and `out`'s slice write-locked.
fn with_slices<R>(
    inputs: &[&DeviceTensor<Cpu>],
    out: &DeviceTensor<Cpu>,
    f: impl FnOnce(&[&[f32]], &mut [f32]) -> R,
) -> R {
    let mut guards: Vec<(u64, RwLockReadGuard<'_, Vec<f32>>)> = Vec::with_capacity(inputs.len());
    for t in inputs {
        if !guards.iter().any(|(id, _)| *id == t.buffer().id) {
            guards.push((t.buffer().id, t.buffer().read()));
        }
    }
    let slices: Vec<&[f32]> = inputs
        .iter()
        .map(|t| {
            let guard = &guards
                .iter()
                .find(|(id, _)| *id == t.buffer().id)
                .expect("locked above")
                .1;
            &guard[t.offset()..t.offset() + t.len()]
        })
        .collect();
    let mut out_guard = out.buffer().data.write().unwrap_or_else(|e| e.into_inner());
    f(
        &slices,
        &mut out_guard[out.offset()..out.offset() + out.len()],
    )
}

impl Backend for Cpu {
    type Buffer = CpuBuffer;

    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        DeviceTensor::new(CpuBuffer::new(vec![0.0; rows * cols]), 0, rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        let (rows, cols) = tensor.matrix_dims()?;
        DeviceTensor::new(CpuBuffer::new(tensor.data().to_vec()), 0, rows, cols)
    }

    fn write(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        check::write(dst, data)?;
        with_slices(&[], dst, |_, out| out.copy_from_slice(data));
        Ok(())
    }

    fn download(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        let guard = src.buffer().read();
        Tensor::new(
            &src.shape(),
            guard[src.offset()..src.offset() + src.len()].to_vec(),
        )
    }

    fn zero(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        with_slices(&[], dst, |_, out| out.fill(0.0));
        Ok(())
    }

    fn copy(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        check::copy(src, dst)?;
        with_slices(&[src], dst, |i, out| out.copy_from_slice(i[0]));
        Ok(())
    }

    fn linear_act_forward(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::linear_forward(x, w, b, y)?;
        let [n, k] = x.shape();
        let m = w.rows();
        with_slices(&[x, w, b], y, |i, out| {
            reference::linear_forward(i[0], i[1], i[2], out, n, k, m);
            reference::activate_in_place(out, act);
        });
        Ok(())
    }

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
        check::linear_act_backward(x, w, y, dy, act, dx, dw, db)?;
        // dz in a host buffer of its own (the identity needs none).
        let gated;
        let dz = match (act, y) {
            (Act::Identity, _) | (_, None) => dy,
            (_, Some(y)) => {
                gated = self.alloc(dy.rows(), dy.cols())?;
                with_slices(&[dy, y], &gated, |i, out| {
                    reference::gate(i[0], i[1], act, out)
                });
                &gated
            }
        };
        let [n, k] = x.shape();
        let m = w.rows();
        if let Some(dx) = dx {
            with_slices(&[dz, w], dx, |i, out| {
                reference::linear_backward_input(i[0], i[1], out, n, k, m)
            });
        }
        with_slices(&[dz, x], dw, |i, out| {
            reference::linear_backward_weight(i[0], i[1], out, n, k, m)
        });
        with_slices(&[dz], db, |i, out| {
            reference::linear_backward_bias(i[0], out, n, m)
        });
        Ok(())
    }

    fn relu_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("relu_forward", &[x], y)?;
        with_slices(&[x], y, |i, out| reference::relu_forward(i[0], out));
        Ok(())
    }

    fn relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("relu_backward", &[x, dy], dx)?;
        with_slices(&[x, dy], dx, |i, out| {
            reference::relu_backward(i[0], i[1], out)
        });
        Ok(())
    }

    fn tanh_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("tanh_forward", &[x], y)?;
        with_slices(&[x], y, |i, out| reference::tanh_forward(i[0], out));
        Ok(())
    }

    fn tanh_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("tanh_backward", &[y, dy], dx)?;
        with_slices(&[y, dy], dx, |i, out| {
            reference::tanh_backward(i[0], i[1], out)
        });
        Ok(())
    }

    fn sigmoid_forward(&self, x: &DeviceTensor<Self>, y: &DeviceTensor<Self>) -> Result<()> {
        check::elementwise("sigmoid_forward", &[x], y)?;
        with_slices(&[x], y, |i, out| reference::sigmoid_forward(i[0], out));
        Ok(())
    }

    fn sigmoid_backward(
        &self,
        y: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("sigmoid_backward", &[y, dy], dx)?;
        with_slices(&[y, dy], dx, |i, out| {
            reference::sigmoid_backward(i[0], i[1], out)
        });
        Ok(())
    }

    fn leaky_relu_forward(
        &self,
        x: &DeviceTensor<Self>,
        slope: f32,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::leaky_relu("leaky_relu_forward", slope, &[x], y)?;
        with_slices(&[x], y, |i, out| {
            reference::leaky_relu_forward(i[0], slope, out)
        });
        Ok(())
    }

    fn leaky_relu_backward(
        &self,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        slope: f32,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::leaky_relu("leaky_relu_backward", slope, &[x, dy], dx)?;
        with_slices(&[x, dy], dx, |i, out| {
            reference::leaky_relu_backward(i[0], i[1], slope, out)
        });
        Ok(())
    }

    fn cross_entropy_loss(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::cross_entropy("cross_entropy_loss", logits, labels, out, true)?;
        let [n, c] = logits.shape();
        let scale = reduction.loss_scale(n);
        with_slices(&[logits, labels], out, |i, out| {
            out[0] = reference::cross_entropy_loss(i[0], i[1], c, scale)
        });
        Ok(())
    }

    fn cross_entropy_grad(
        &self,
        logits: &DeviceTensor<Self>,
        labels: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::cross_entropy("cross_entropy_grad", logits, labels, grad, false)?;
        let [n, c] = logits.shape();
        let scale = reduction.loss_scale(n);
        with_slices(&[logits, labels], grad, |i, out| {
            reference::cross_entropy_grad(i[0], i[1], c, scale, out)
        });
        Ok(())
    }

    fn mse_loss(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::mse_loss(pred, target, out)?;
        let scale = reduction.loss_scale(pred.len());
        with_slices(&[pred, target], out, |i, out| {
            out[0] = reference::mse_loss(i[0], i[1], scale)
        });
        Ok(())
    }

    fn mse_grad(
        &self,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::elementwise("mse_grad", &[pred, target], grad)?;
        let factor = reduction.grad_scale(pred.len());
        with_slices(&[pred, target], grad, |i, out| {
            reference::mse_grad(i[0], i[1], factor, out)
        });
        Ok(())
    }

    fn sgd_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        check::sgd_step(param, grad, lr)?;
        with_slices(&[grad], param, |i, out| reference::sgd_step(out, i[0], lr));
        Ok(())
    }

    fn momentum_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        check::momentum_step(param, grad, velocity, hyper)?;
        with_slices(&[grad, param], velocity, |i, out| {
            reference::momentum_velocity(out, i[0], i[1], hyper)
        });
        with_slices(&[grad, velocity], param, |i, out| {
            reference::momentum_update(out, i[0], i[1], hyper)
        });
        Ok(())
    }

    fn adam_step(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        check::adam_step(param, grad, state, hyper)?;
        with_slices(&[grad, param], state, |i, out| {
            reference::adam_moments(out, i[0], i[1], hyper)
        });
        with_slices(&[state], param, |i, out| {
            reference::adam_update(out, i[0], hyper)
        });
        Ok(())
    }

    fn mlp_fits(&self, _spec: &MlpSpec, batch_size: usize) -> bool {
        batch_size > 0
    }

    fn mlp_epoch(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<Self>,
        inputs: &DeviceTensor<Self>,
        targets: &DeviceTensor<Self>,
        epoch: &MlpEpoch,
        losses: &DeviceTensor<Self>,
    ) -> Result<()> {
        check::mlp_epoch(spec, params, inputs, targets, epoch, losses)?;
        let mut step_losses = vec![0.0; losses.len()];
        with_slices(&[inputs, targets], params, |i, p| {
            reference::mlp_epoch(spec, p, i[0], i[1], inputs.rows(), epoch, &mut step_losses)
        });
        self.write(losses, &step_losses)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
