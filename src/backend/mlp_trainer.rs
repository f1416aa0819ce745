//! [`MlpTrainer`]: a whole epoch of mini-batch training on a narrow MLP in one op, beside
//! the op set rather than in it, for one network or for many independent ones at once.
//! A backend offers one through [`Backend::mlp_trainer`]; `fit` and `fit_runs` ask
//! once.

use crate::backend::{check, Backend, DeviceTensor, MlpRecipe, MlpSpec};
use crate::error::{Error, Result};

/// A backend's fully fused MLP trainer.
pub trait MlpTrainer<B: Backend>: Send + Sync {
    /// The backend whose tensors the trainer takes.
    fn backend(&self) -> &B;

    /// Whether [`MlpTrainer::mlp_epoch`] can train `spec` in mini-batches of
    /// `batch_size` (a GPU needs the network and one batch's activations in workgroup
    /// memory).
    fn mlp_fits(&self, spec: &MlpSpec, batch_size: usize) -> bool;

    /// The kernel of [`MlpTrainer::mlp_epoch_runs`] (and of
    /// [`MlpTrainer::mlp_epoch`], one run), reached only through them: the arguments
    /// are checked and the spec fits.
    #[allow(clippy::too_many_arguments)]
    fn mlp_epoch_runs_unchecked(
        &self,
        spec: &MlpSpec,
        runs: usize,
        params: &DeviceTensor<B>,
        inputs: &DeviceTensor<B>,
        targets: &DeviceTensor<B>,
        epoch: &MlpRecipe,
        losses: &DeviceTensor<B>,
    ) -> Result<()>;

    /// Builds what [`MlpTrainer::mlp_epoch`] for `spec` and epochs like `epoch`
    /// (the GPU generates and compiles its kernel), so that the first epoch does not
    /// pay for it; `mlp_epoch` builds it where this was not called.
    fn prepare(&self, _spec: &MlpSpec, _epoch: &MlpRecipe) -> Result<()> {
        Ok(())
    }

    /// Whether training `spec` with epochs like `epoch` for `steps` mini-batch steps
    /// in all (every run's, where several train together) is worth its build: `fit`'s
    /// [`Fusion::Auto`](crate::train::Fusion::Auto) asks before it builds anything. By
    /// default always (nothing to build); the GPU answers no for a short run whose
    /// kernel is not compiled yet.
    fn pays(&self, _spec: &MlpSpec, _epoch: &MlpRecipe, _steps: usize) -> bool {
        true
    }

    /// A short description of why `spec` does not fit with `batch_size`, for the
    /// error of [`MlpTrainer::mlp_epoch`].
    fn why_not(&self, spec: &MlpSpec, batch_size: usize) -> String {
        format!("the fused trainer cannot take {spec:?} with batches of {batch_size}")
    }

    /// One whole epoch of mini-batch training on the MLP `spec`, in one op:
    /// mini-batches of `epoch.batch_size` rows of `inputs`/`targets` in order, each
    /// one's loss (`epoch.loss`) written to its row of `losses`, the packed `params`
    /// and the update rule's state after them updated in place by `epoch.rule` (see
    /// [`UpdateRule::packed_len`](crate::backend::UpdateRule::packed_len)). Checks its arguments, and fails with
    /// [`Error::InvalidArgument`] where [`MlpTrainer::mlp_fits`] is false. It is
    /// [`MlpTrainer::mlp_epoch_runs`] with one run. Do not override: a backend
    /// implements [`MlpTrainer::mlp_epoch_runs_unchecked`].
    fn mlp_epoch(
        &self,
        spec: &MlpSpec,
        params: &DeviceTensor<B>,
        inputs: &DeviceTensor<B>,
        targets: &DeviceTensor<B>,
        epoch: &MlpRecipe,
        losses: &DeviceTensor<B>,
    ) -> Result<()> {
        self.mlp_epoch_runs(spec, 1, params, inputs, targets, epoch, losses)
    }

    /// One epoch of each of `runs` independent trainings of the MLP `spec` with the
    /// same hyperparameters, in one op: run `r` is [`MlpTrainer::mlp_epoch`] on row `r`
    /// of `params` (`runs ×` [`UpdateRule::packed_len`](crate::backend::UpdateRule::packed_len)),
    /// the `r`-th of `runs` equal shares of the rows of `inputs` and `targets`, and
    /// the `r`-th equal share of `losses`, with the same result as that call (on a
    /// GPU within rounding, on the CPU backends bit for bit). Checks its arguments, and
    /// fails with [`Error::InvalidArgument`] where [`MlpTrainer::mlp_fits`] is false.
    /// Do not override: a backend implements [`MlpTrainer::mlp_epoch_runs_unchecked`].
    #[allow(clippy::too_many_arguments)]
    fn mlp_epoch_runs(
        &self,
        spec: &MlpSpec,
        runs: usize,
        params: &DeviceTensor<B>,
        inputs: &DeviceTensor<B>,
        targets: &DeviceTensor<B>,
        epoch: &MlpRecipe,
        losses: &DeviceTensor<B>,
    ) -> Result<()> {
        let all = [Some(params), Some(inputs), Some(targets), Some(losses)];
        check::same_device(self.backend(), "mlp_epoch", &all)?;
        check::mlp_epoch_runs(spec, runs, params, inputs, targets, epoch, losses)?;
        if !self.mlp_fits(spec, epoch.batch_size) {
            return Err(Error::InvalidArgument(self.why_not(spec, epoch.batch_size)));
        }
        self.mlp_epoch_runs_unchecked(spec, runs, params, inputs, targets, epoch, losses)
    }
}
