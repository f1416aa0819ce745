//! The fast CPU backend: host buffers, the linear layer's products through the
//! `gemm` crate, large elementwise ops, losses and optimizer steps in parallel chunks,
//! and a fused epoch for narrow MLPs. Every op is tested against
//! [`Reference`](crate::Reference), the plain loops that define it.

mod convolution;
mod direct_convolution;
mod matmul;
mod mlp_epoch;
mod parallel;
mod resample;
mod scratch;
mod transpose;

pub use parallel::THREADS_VAR;

use rayon::ThreadPool;

use crate::backend::host::{self, with_slices, HostBuffer, HOST_DEVICE};
use crate::backend::reference::definitions;
use crate::backend::StateLayout;
use crate::backend::{
    Act, AdamStep, Backend, Conv2dGeometry, DeviceTensor, GradMode, LossKind, MlpRecipe, MlpSpec,
    MlpTrainer, MomentumStep, Pool2dGeometry, Reduction, UpsampleGeometry,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The CPU backend. Large products and elementwise ops run on a pool of threads
/// (every core by default; [`THREADS_VAR`] or [`Cpu::with_threads`] sets the count),
/// small ones on the calling thread. Cheap to copy; its tensors live in host memory.
#[derive(Clone, Copy)]
pub struct Cpu {
    threads: usize,
    pool: Option<&'static ThreadPool>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Default for Cpu {
    /// [`Cpu::new`].
    fn default() -> Self {
        Cpu::new()
    }
}

impl Cpu {
    /// A backend on the thread count [`THREADS_VAR`] (`MINIDL_THREADS`) asks for, else
    /// on every core. Where the variable is not a count, or the threads cannot start,
    /// it logs a warning and runs on one thread; [`Cpu::from_env`] returns the error
    /// instead.
    pub fn new() -> Self {
        Cpu::from_env().unwrap_or_else(|e| {
            log::warn!("{e}; the CPU backend runs on one thread");
            Cpu::single_threaded()
        })
    }

    /// [`Cpu::new`], failing where `MINIDL_THREADS` is set to something other than a
    /// whole number of at least 1, or where the threads cannot start.
    pub fn from_env() -> Result<Self> {
        Cpu::with_threads(parallel::threads_from_env()?)
    }

    /// A backend on `threads` threads (1: every op on the calling thread). Fails on 0,
    /// or where the threads cannot start. Backends with the same count share one pool.
    pub fn with_threads(threads: usize) -> Result<Self> {
        match threads {
            0 => Err(Error::InvalidArgument(
                "the CPU backend needs at least 1 thread".into(),
            )),
            1 => Ok(Cpu::single_threaded()),
            n => Ok(Cpu {
                threads: n,
                pool: Some(parallel::pool(n)?),
            }),
        }
    }

    fn single_threaded() -> Self {
        Cpu {
            threads: 1,
            pool: None,
        }
    }

    /// The number of threads large ops run on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Every core the process may use: the default thread count.
    pub fn all_cores() -> usize {
        parallel::all_cores()
    }
}

impl Backend for Cpu {
    type Buffer = HostBuffer;

    fn name(&self) -> String {
        "cpu".to_string()
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
        with_slices([], dst, |_, out| {
            parallel::for_each_chunk(self.pool, [], out, |[], o| o.fill(0.0))
        });
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn write_unchecked(&self, dst: &DeviceTensor<Self>, data: &[f32]) -> Result<()> {
        with_slices([], dst, |_, out| {
            parallel::for_each_chunk(self.pool, [data], out, |[d], o| o.copy_from_slice(d))
        });
        Ok(())
    }

    fn copy_unchecked(&self, src: &DeviceTensor<Self>, dst: &DeviceTensor<Self>) -> Result<()> {
        with_slices([src], dst, |[s], out| {
            parallel::for_each_chunk(self.pool, [s], out, |[s], o| o.copy_from_slice(s))
        });
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
            matmul::forward(self.pool, x, w, b, act, out, (n, k, m))
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
        let dims = (n, k, m);
        let accumulate = mode == GradMode::Accumulate;
        // For the identity the gate gives dy itself (y is dy there).
        let y = y.unwrap_or(dy);
        let gate = |dy: &[f32], y: &[f32], dz: &mut [f32]| {
            parallel::for_each_chunk(self.pool, [dy, y], dz, |[dy, y], dz| {
                definitions::gate(dy, y, act, dz)
            })
        };
        // The three products and the bias sums from the gated gradient `dz`.
        host::with_gated(dy, y, gate, |dz| {
            let input = |pool| {
                dx.map(|dx| {
                    with_slices([w], dx, |[w], out| {
                        matmul::backward_input(pool, dz, w, out, dims)
                    })
                })
            };
            let weight = |pool| {
                with_slices([x], dw, |[x], out| {
                    matmul::backward_weight(pool, dz, x, out, dims, accumulate)
                })
            };
            // Two large products on two threads: one each, side by side, rather than
            // each split between the threads in turn.
            match self
                .pool
                .filter(|p| dx.is_some() && matmul::side_by_side(p, dims))
            {
                Some(pool) => {
                    pool.join(|| input(None), || weight(None));
                }
                None => {
                    input(self.pool);
                    weight(self.pool);
                }
            }
            with_slices([], db, |_, out| {
                matmul::backward_bias(dz, out, (n, m), accumulate)
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
            parallel::for_each_chunk(self.pool, [x], out, |[x], y| {
                definitions::activation_forward(act, x, y)
            })
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
            parallel::for_each_chunk(self.pool, [s, dy], out, |[s, dy], dx| {
                definitions::activation_backward(act, s, dy, dx)
            })
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
                LossKind::Mse => {
                    let sum =
                        parallel::blocked_sum(self.pool, p.len(), 1, definitions::mse_term(p, t));
                    sum * reduction.loss_scale(pred.len())
                }
                LossKind::CrossEntropy => {
                    let [n, c] = pred.shape();
                    let term = definitions::cross_entropy_term(p, t, c);
                    parallel::blocked_sum(self.pool, n, c, term) * reduction.loss_scale(n)
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
            LossKind::Mse => {
                let factor = reduction.mse_grad_scale(pred.len());
                parallel::for_each_chunk(self.pool, [p, t], out, |[p, t], g| {
                    definitions::mse_grad(p, t, factor, g)
                })
            }
            LossKind::CrossEntropy => {
                let [n, c] = pred.shape();
                let scale = reduction.loss_scale(n);
                parallel::for_each_rows(self.pool, n, [c, 1], [p, t], c, out, |[z, l], g| {
                    definitions::cross_entropy_grad(z, l, c, scale, g)
                })
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
        with_slices([grad], param, |[g], p| {
            parallel::for_each_chunk(self.pool, [g], p, |[g], p| definitions::sgd_step(p, g, lr))
        });
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
            parallel::for_each_chunk(self.pool, [g, p], v, |[g, p], v| {
                definitions::momentum_velocity(v, g, p, hyper)
            })
        });
        with_slices([grad, velocity], param, |[g, v], p| {
            parallel::for_each_chunk(self.pool, [g, v], p, |[g, v], p| {
                definitions::momentum_update(p, g, v, hyper)
            })
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
        let n = param.len();
        with_slices([grad, param], state, |[g, p], s| {
            let ([m, v], c) = StateLayout::ADAM.split_mut(s, n);
            parallel::for_each_chunk_pair(self.pool, [g, p], m, v, |[g, p], m, v| {
                definitions::adam_moments_of(m, v, g, p, hyper)
            });
            definitions::adam_corrections(c, hyper);
        });
        with_slices([state], param, |[s], p| {
            let ([m, v], c) = StateLayout::ADAM.split(s, n);
            let c = [c[0], c[1]];
            parallel::for_each_chunk(self.pool, [m, v], p, |[m, v], p| {
                definitions::adam_update_of(p, m, v, c, hyper)
            })
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
            if direct_convolution::applies(g) {
                direct_convolution::forward(self.pool, g, x, w, b, y)
            } else {
                convolution::forward(self.pool, g, x, w, b, y)
            }
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
                if direct_convolution::applies(g) {
                    direct_convolution::backward_input(self.pool, g, dy, w, dx)
                } else {
                    convolution::backward_input(self.pool, g, dy, w, dx)
                }
            });
        }
        let accumulate = mode == GradMode::Accumulate;
        with_slices([x, dy], dw, |[x, dy], dw| {
            with_slices([], db, |_, db| {
                if direct_convolution::applies(g) {
                    direct_convolution::backward_weight(self.pool, g, x, dy, dw, db, accumulate)
                } else {
                    convolution::backward_weight(self.pool, g, x, dy, dw, db, accumulate)
                }
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
        with_slices([x], y, |[x], y| {
            resample::max_pool_forward(self.pool, g, x, y)
        });
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
            resample::max_pool_backward(self.pool, g, x, dy, dx)
        });
        Ok(())
    }

    fn avg_pool2d_forward_unchecked(
        &self,
        g: &Pool2dGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], y| {
            resample::avg_pool_forward(self.pool, g, x, y)
        });
        Ok(())
    }

    fn avg_pool2d_backward_unchecked(
        &self,
        g: &Pool2dGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([dy], dx, |[dy], dx| {
            resample::avg_pool_backward(self.pool, g, dy, dx)
        });
        Ok(())
    }

    fn upsample_nearest_forward_unchecked(
        &self,
        g: &UpsampleGeometry,
        x: &DeviceTensor<Self>,
        y: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([x], y, |[x], y| {
            resample::upsample_forward(self.pool, g, x, y)
        });
        Ok(())
    }

    fn upsample_nearest_backward_unchecked(
        &self,
        g: &UpsampleGeometry,
        dy: &DeviceTensor<Self>,
        dx: &DeviceTensor<Self>,
    ) -> Result<()> {
        with_slices([dy], dx, |[dy], dx| {
            resample::upsample_backward(self.pool, g, dy, dx)
        });
        Ok(())
    }

    fn mlp_trainer(&self) -> Option<&dyn MlpTrainer<Self>> {
        Some(self)
    }
}

/// The CPU's fused epoch (`src/backend/cpu/mlp_epoch.rs`) for networks whose every product is small;
/// wider ones train step by step, where the products use `gemm` and the threads.
impl MlpTrainer<Cpu> for Cpu {
    fn backend(&self) -> &Cpu {
        self
    }

    fn mlp_fits(&self, spec: &MlpSpec, batch_size: usize) -> bool {
        mlp_epoch::fits(spec, batch_size)
    }

    fn why_not(&self, spec: &MlpSpec, batch_size: usize) -> String {
        format!(
            "the CPU's fused epoch takes networks whose layers each multiply fewer than \
             {} values per batch (batch × inputs × outputs); {spec:?} with batches of \
             {batch_size} is wider: train it step by step",
            matmul::SMALL_PRODUCT
        )
    }

    /// The runs on the backend's threads, one run per task (each computed as it would
    /// be alone, so bit for bit the same).
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
        host::mlp_epoch_runs(runs, tensors, self.pool, |p, x, t, rows, l| {
            mlp_epoch::run(spec, p, x, t, rows, epoch, l)
        });
        Ok(())
    }
}
