//! The oracle backend, [`Reference`]: host buffers and the plain loops of
//! [`definitions`](super::definitions) run in `f32`, one thread, in the order the
//! definitions give. The fast backends ([`Cpu`](crate::Cpu) and [`Gpu`](crate::Gpu))
//! are tested against it; it is not meant to train on (use the `Cpu` backend).

use super::{definitions, images};
use crate::backend::host::{self, with_slices, HostBuffer, HOST_DEVICE};
use crate::backend::{
    Act, AdamStep, Backend, Conv2dGeometry, DeviceTensor, GradMode, LossKind, MlpRecipe, MlpSpec,
    MlpTrainer, MomentumStep, Pool2dGeometry, Reduction, UpsampleGeometry,
};
use crate::error::Result;
use crate::tensor::Tensor;

/// The oracle backend: every op as [`definitions`] defines it, in `f32`, on one
/// thread.
/// Stateless; its tensors live in host memory, like [`Cpu`](crate::Cpu)'s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference;

impl Backend for Reference {
    type Buffer = HostBuffer;

    fn name(&self) -> String {
        "reference".to_string()
    }

    fn device_id(&self) -> u64 {
        HOST_DEVICE
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<DeviceTensor<Self>> {
        host::alloc(rows, cols)
    }

    fn upload(&self, tensor: &Tensor) -> Result<DeviceTensor<Self>> {
        host::upload(tensor)
    }

    fn download_unchecked(&self, src: &DeviceTensor<Self>) -> Result<Tensor> {
        host::download(src)
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
            definitions::linear_forward(x, w, b, out, n, k, m);
            definitions::activate_in_place(out, act);
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
        mode: GradMode,
    ) -> Result<()> {
        let [n, k] = x.shape();
        let m = w.rows();
        // Overwriting is clearing, then accumulating: 0 + Σ is Σ exactly.
        if mode == GradMode::Overwrite {
            self.zero_unchecked(dw)?;
            self.zero_unchecked(db)?;
        }
        // For the identity the gate gives dy itself (y is dy there).
        let y = y.unwrap_or(dy);
        let gate = |dy: &[f32], y: &[f32], dz: &mut [f32]| definitions::gate(dy, y, act, dz);
        host::with_gated(dy, y, gate, |dz| {
            if let Some(dx) = dx {
                with_slices([w], dx, |[w], out| {
                    definitions::linear_backward_input(dz, w, out, n, k, m)
                });
            }
            with_slices([x], dw, |[x], out| {
                definitions::linear_backward_weight(dz, x, out, n, k, m)
            });
            with_slices([], db, |_, out| {
                definitions::linear_backward_bias(dz, out, n, m)
            });
        });
        Ok(())
    }

    fn activation_forward_unchecked(
        &self,
        act: Act,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], out| {
            definitions::activation_forward(act, x, out)
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
            definitions::activation_backward(act, s, dy, out)
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
                LossKind::Mse => definitions::mse_loss(p, t, reduction.loss_scale(pred.len())),
                LossKind::CrossEntropy => {
                    let [n, c] = pred.shape();
                    definitions::cross_entropy_loss(p, t, c, reduction.loss_scale(n))
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
            LossKind::Mse => definitions::mse_grad(p, t, reduction.mse_grad_scale(pred.len()), out),
            LossKind::CrossEntropy => {
                let [n, c] = pred.shape();
                definitions::cross_entropy_grad(p, t, c, reduction.loss_scale(n), out)
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
        with_slices([grad], param, |[g], p| definitions::sgd_step(p, g, lr));
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
            definitions::momentum_velocity(v, g, p, hyper)
        });
        with_slices([grad, velocity], param, |[g, v], p| {
            definitions::momentum_update(p, g, v, hyper)
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
            definitions::adam_moments(s, g, p, hyper)
        });
        with_slices([state], param, |[s], p| {
            definitions::adam_update(p, s, hyper)
        });
        Ok(())
    }

    fn conv2d_forward_unchecked(
        &self,
        g: &Conv2dGeometry,
        x: &DeviceTensor<Self>,
        w: &DeviceTensor<Self>,
        b: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x, w, b], y, |[x, w, b], y| {
            images::conv2d_forward(g, x, w, b, y)
        });
        Ok(())
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
        if let Some(dx) = dx {
            with_slices([dy, w], dx, |[dy, w], dx| {
                images::conv2d_backward_input(g, dy, w, dx)
            });
        }
        if mode == GradMode::Overwrite {
            self.zero_unchecked(dw)?;
            self.zero_unchecked(db)?;
        }
        with_slices([x, dy], dw, |[x, dy], dw| {
            with_slices([], db, |_, db| {
                images::conv2d_backward_weight(g, x, dy, dw, db)
            })
        });
        Ok(())
    }

    fn max_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], y| images::max_pool2d_forward(g, x, y));
        Ok(())
    }

    fn max_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x, dy], dx, |[x, dy], dx| {
            images::max_pool2d_backward(g, x, dy, dx)
        });
        Ok(())
    }

    fn avg_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], y| images::avg_pool2d_forward(g, x, y));
        Ok(())
    }

    fn avg_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([dy], dx, |[dy], dx| images::avg_pool2d_backward(g, dy, dx));
        Ok(())
    }

    fn upsample_nearest_forward_unchecked(
        &self,
        g: &UpsampleGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], y| images::upsample_nearest_forward(g, x, y));
        Ok(())
    }

    fn upsample_nearest_backward_unchecked(
        &self,
        g: &UpsampleGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([dy], dx, |[dy], dx| {
            images::upsample_nearest_backward(g, dy, dx)
        });
        Ok(())
    }

    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        Some(self)
    }
}

/// The reference's fused epoch: its composition of the ops ([`definitions::mlp_epoch`]),
/// so that it equals the step-by-step path bit for bit.
impl MlpTrainer<Reference> for Reference {
    fn backend(&self) -> &Reference {
        self
    }

    fn mlp_fits(&self, _spec: &MlpSpec, batch_size: usize) -> bool {
        batch_size > 0
    }

    /// The runs in turn.
    fn mlp_epoch_runs_unchecked(
        &self,
        spec: &MlpSpec,
        runs: usize,
        params: &DeviceTensor<Self>,
        inputs: &DeviceTensor<Self>,
        targets: &DeviceTensor<Self>,
        epoch: &MlpRecipe,
        losses: &DeviceTensor<Self>,
    ) -> Result<()> {
        let tensors = [params, inputs, targets, losses];
        host::mlp_epoch_runs(runs, tensors, None, |p, x, t, rows, l| {
            definitions::mlp_epoch(spec, p, x, t, rows, epoch, l)
        });
        Ok(())
    }
}
