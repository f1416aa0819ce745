//! The CPU reference backend: host buffers and the plain loops of
//! [`super::reference`] run in `f32`. It defines what every op means; the
//! GPU backend is tested against it.

use std::cell::RefCell;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::backend::{
    next_buffer_id, reference, Act, AdamStep, Backend, BufferHandle, DeviceTensor, LossKind,
    MlpEpoch, MlpSpec, MlpTrainer, MomentumStep, Reduction,
};
use crate::error::{Error, Result};
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
    fn device(&self) -> u64 {
        CPU_DEVICE
    }
}

/// The device of every CPU buffer: host memory, which every `Cpu` can use.
const CPU_DEVICE: u64 = 0;

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

/// Runs `f` on the `N` input slices with each distinct buffer read-locked once (two
/// views of one buffer must not take its lock twice), and `out`'s slice write-locked.
/// Allocates nothing.
fn with_slices<const N: usize, R>(
    inputs: [&DeviceTensor<Cpu>; N],
    out: &DeviceTensor<Cpu>,
    f: impl FnOnce([&[f32]; N], &mut [f32]) -> R,
) -> R {
    // For each input, the first input that views the same buffer (itself if none).
    let owner: [usize; N] = std::array::from_fn(|i| {
        (0..i)
            .find(|&j| inputs[j].buffer().id == inputs[i].buffer().id)
            .unwrap_or(i)
    });
    let guards: [Option<RwLockReadGuard<'_, Vec<f32>>>; N] =
        std::array::from_fn(|i| (owner[i] == i).then(|| inputs[i].buffer().read()));
    let slices: [&[f32]; N] = std::array::from_fn(|i| {
        let guard = guards[owner[i]].as_ref().expect("locked above");
        let t = inputs[i];
        &guard[t.offset()..t.offset() + t.len()]
    });
    let mut out_guard = out.buffer().data.write().unwrap_or_else(|e| e.into_inner());
    f(
        slices,
        &mut out_guard[out.offset()..out.offset() + out.len()],
    )
}

thread_local! {
    /// The gated output gradient of a linear backward, reused from call to call so that
    /// a training step allocates nothing once it has grown to the largest batch.
    static GATED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Backend for Cpu {
    type Buffer = CpuBuffer;

    fn name(&self) -> String {
        "cpu".to_string()
    }

    fn device_id(&self) -> u64 {
        CPU_DEVICE
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        let too_large = |bytes: u64| Error::TooLarge {
            what: format!("a {rows}×{cols} tensor"),
            bytes,
            limit: isize::MAX as u64,
        };
        let len = rows
            .checked_mul(cols)
            .filter(|&n| n <= isize::MAX as usize / 4)
            .ok_or_else(|| {
                too_large((rows as u64).saturating_mul(cols as u64).saturating_mul(4))
            })?;
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| too_large(len as u64 * 4))?;
        data.resize(len, 0.0);
        DeviceTensor::new(CpuBuffer::new(data), 0, rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        let (rows, cols) = tensor.matrix_dims()?;
        DeviceTensor::new(CpuBuffer::new(tensor.data().to_vec()), 0, rows, cols)
    }

    fn download_unchecked(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        let guard = src.buffer().read();
        Tensor::new(
            &src.shape(),
            guard[src.offset()..src.offset() + src.len()].to_vec(),
        )
    }

    fn zero_unchecked(&self, dst: &DeviceTensor<Self>) -> Result<()> {
        with_slices([], dst, |_, out| out.fill(0.0));
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn write_unchecked(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        with_slices([], dst, |_, out| out.copy_from_slice(data));
        Ok(())
    }

    fn copy_unchecked(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        with_slices([src], dst, |[s], out| out.copy_from_slice(s));
        Ok(())
    }

    fn linear_forward_unchecked(
        &self,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        act: Act,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        let [n, k] = x.shape();
        let m = w.rows();
        with_slices([x, w, b], y, |[x, w, b], out| {
            reference::linear_forward(x, w, b, out, n, k, m);
            reference::activate_in_place(out, act);
        });
        Ok(())
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
    ) -> Result<()> {
        let [n, k] = x.shape();
        let m = w.rows();
        match y {
            // The identity: dz is dy itself.
            None => {
                if let Some(dx) = dx {
                    with_slices([dy, w], dx, |[dz, w], out| {
                        reference::linear_backward_input(dz, w, out, n, k, m)
                    });
                }
                with_slices([dy, x], dw, |[dz, x], out| {
                    reference::linear_backward_weight(dz, x, out, n, k, m)
                });
                with_slices([dy], db, |[dz], out| {
                    reference::linear_backward_bias(dz, out, n, m)
                });
            }
            Some(y) => GATED.with_borrow_mut(|dz| {
                dz.resize(dy.len(), 0.0);
                {
                    // One read lock per buffer, as in `with_slices`.
                    let dy_guard = dy.buffer().read();
                    let y_guard;
                    let y_data = if y.buffer().id == dy.buffer().id {
                        &dy_guard
                    } else {
                        y_guard = y.buffer().read();
                        &y_guard
                    };
                    reference::gate(
                        &dy_guard[dy.offset()..dy.offset() + dy.len()],
                        &y_data[y.offset()..y.offset() + y.len()],
                        act,
                        dz,
                    );
                }
                if let Some(dx) = dx {
                    with_slices([w], dx, |[w], out| {
                        reference::linear_backward_input(dz, w, out, n, k, m)
                    });
                }
                with_slices([x], dw, |[x], out| {
                    reference::linear_backward_weight(dz, x, out, n, k, m)
                });
                with_slices([], db, |_, out| {
                    reference::linear_backward_bias(dz, out, n, m)
                });
            }),
        }
        Ok(())
    }

    fn activation_forward_unchecked(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], out| {
            reference::activation_forward(act, x, out)
        });
        Ok(())
    }

    fn activation_backward_unchecked(
        &self,
        act: Act,
        saved: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([saved, dy], dx, |[s, dy], out| {
            reference::activation_backward(act, s, dy, out)
        });
        Ok(())
    }

    fn loss_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        out: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([pred, target], out, |[p, t], out| {
            out[0] = match kind {
                LossKind::Mse => reference::mse_loss(p, t, reduction.loss_scale(pred.len())),
                LossKind::CrossEntropy => {
                    let [n, c] = pred.shape();
                    reference::cross_entropy_loss(p, t, c, reduction.loss_scale(n))
                }
            }
        });
        Ok(())
    }

    fn loss_grad_unchecked(
        &self,
        kind: LossKind,
        pred: &DeviceTensor<Self>,
        target: &DeviceTensor<Self>,
        reduction: Reduction,
        grad: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([pred, target], grad, |[p, t], out| match kind {
            LossKind::Mse => reference::mse_grad(p, t, reduction.grad_scale(pred.len()), out),
            LossKind::CrossEntropy => {
                let [n, c] = pred.shape();
                reference::cross_entropy_grad(p, t, c, reduction.loss_scale(n), out)
            }
        });
        Ok(())
    }

    fn sgd_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        lr: f32,
    ) -> Result<()> {
        with_slices([grad], param, |[g], p| reference::sgd_step(p, g, lr));
        Ok(())
    }

    fn momentum_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        velocity: &DeviceTensor<Self>,
        hyper: &MomentumStep,
    ) -> Result<()> {
        with_slices([grad, param], velocity, |[g, p], v| {
            reference::momentum_velocity(v, g, p, hyper)
        });
        with_slices([grad, velocity], param, |[g, v], p| {
            reference::momentum_update(p, g, v, hyper)
        });
        Ok(())
    }

    fn adam_step_unchecked(
        &self,
        param: &DeviceTensor<Self>,
        grad: &DeviceTensor<Self>,
        state: &DeviceTensor<Self>,
        hyper: &AdamStep,
    ) -> Result<()> {
        with_slices([grad, param], state, |[g, p], s| {
            reference::adam_moments(s, g, p, hyper)
        });
        with_slices([state], param, |[s], p| reference::adam_update(p, s, hyper));
        Ok(())
    }

    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        Some(self)
    }
}

/// The CPU's fused epoch: the reference's composition of the ops ([`reference::mlp_epoch`]),
/// so that it equals the step-by-step path bit for bit.
impl MlpTrainer<Cpu> for Cpu {
    fn backend(&self) -> &Cpu {
        self
    }

    fn mlp_fits(&self, _spec: &MlpSpec, batch_size: usize) -> bool {
        batch_size > 0
    }

    fn mlp_epoch_unchecked(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<Self>,
        inputs: &DeviceTensor<Self>,
        targets: &DeviceTensor<Self>,
        epoch: &MlpEpoch,
        losses: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([inputs, targets], params, |[x, t], p| {
            with_slices([], losses, |_, l| {
                reference::mlp_epoch(spec, p, x, t, inputs.rows(), epoch, l)
            })
        });
        Ok(())
    }
}
