//! Many independent training runs: [`fit_runs`] trains them together where they share
//! a fused form (one op per epoch for all of them), else one after another;
//! [`run_many`] runs any closure per run on several threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::epochs::{Checked, Group};
use super::{Control, EpochReport, FitConfig};
use crate::backend::Backend;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::{Loss, Module};
use crate::optim::Optimizer;

/// One training of [`fit_runs`]: what [`fit`](super::fit) takes.
pub struct FitRun<'a, M: ?Sized, L: ?Sized, O: ?Sized> {
    /// The model, trained in place.
    pub model: &'a mut M,
    /// Its loss.
    pub loss: &'a mut L,
    /// Its optimizer.
    pub optimizer: &'a mut O,
    /// Its training set.
    pub data: &'a Dataset,
    /// How it trains.
    pub config: FitConfig,
}

/// Trains each of `runs` as [`fit`] trains it alone and returns each one's result, in
/// order: its reports, or the error that ended it (its model and optimizer then hold
/// what `fit` leaves them). `on_epoch(r, report, model)` is `fit`'s hook for run `r`; a
/// run that its hook stops, that fails or whose loss diverges ends there, and the
/// others go on. The outer error is a failure that ends every run (of the backend, or
/// of memory); each model then holds what `fit` leaves it after that error (where its
/// training stopped).
///
/// The runs train together where each would train on the fused path (with
/// [`Fusion::Auto`], where the steps of all of them together pay for its build) and
/// they share its form: the same network, loss, batch size and update rule, the same
/// number of points and the same epochs ([`FitConfig`] alike but for `seed`, `shuffle` and
/// `schedule`; the initial weights, the data, the learning rates and their schedules
/// may differ). Each epoch is then one [`MlpTrainer::mlp_epoch_runs`] for each group
/// of consecutive runs that train at the same rate that epoch (one for all of them
/// where they share the schedule): on the GPU one workgroup per run of one dispatch,
/// on the CPU backend the runs on its threads. Elsewhere the runs train one after
/// another, each alone ([`fit`] is `fit_runs` with one run). Either way each run's result is the one `fit` gives it: on
/// the CPU backend bit for bit. When they train together, each report's `millis` and
/// `gpu_millis` are those of the epoch of all of them.
///
/// ```
/// use minidl::data::disc_train_test;
/// use minidl::nn::MseLoss;
/// use minidl::optim::Sgd;
/// use minidl::train::{count_errors, fit_runs, FitConfig, FitRun};
/// use minidl::{seed, Cpu, Reduction};
/// use rand::rngs::ChaCha8Rng;
/// use rand::SeedableRng;
///
/// # fn main() -> minidl::Result<()> {
/// // The seed network from three seeds, trained together for 5 epochs.
/// let cpu = Cpu::new();
/// let seeds = [0u64, 1, 2];
/// let mut data = Vec::new();
/// let mut models = Vec::new();
/// for &s in &seeds {
///     data.push(disc_train_test(s)?);
///     models.push(seed::network(&cpu, &mut ChaCha8Rng::seed_from_u64(s + 1))?);
/// }
/// let mut losses: Vec<_> = seeds.iter().map(|_| MseLoss::new(Reduction::Sum)).collect();
/// let mut sgds = seeds.iter().map(|_| Sgd::new(0.01)).collect::<Result<Vec<_>, _>>()?;
/// let config = FitConfig { epochs: 5, ..FitConfig::default() };
/// let mut runs: Vec<_> = models
///     .iter_mut()
///     .zip(&mut losses)
///     .zip(&mut sgds)
///     .zip(&data)
///     .map(|(((model, loss), optimizer), (train, _))| FitRun {
///         model,
///         loss,
///         optimizer,
///         data: train,
///         config: config.clone(),
///     })
///     .collect();
/// let results = fit_runs(&cpu, &mut runs, |_, _, _| Ok(()))?;
/// drop(runs);
/// for ((result, model), (_, test)) in results.into_iter().zip(&mut models).zip(&data) {
///     let reports = result?;
///     assert!(reports.iter().all(|r| r.fused));
///     println!("{} test errors", count_errors(&cpu, model, test)?);
/// }
/// # Ok(())
/// # }
/// ```
///
/// [`MlpTrainer::mlp_epoch_runs`]: crate::backend::MlpTrainer::mlp_epoch_runs
/// [`fit`]: super::fit
/// [`Fusion::Auto`]: super::Fusion::Auto
pub fn fit_runs<B, M, L, O, R>(
    backend: &B,
    runs: &mut [FitRun<'_, M, L, O>],
    mut on_epoch: impl FnMut(usize, &EpochReport, &mut M) -> Result<R>,
) -> Result<Vec<Result<Vec<EpochReport>>>>
where
    R: Into<Control>,
    B: Backend,
    M: Module<B> + ?Sized,
    L: Loss<B> + ?Sized,
    O: Optimizer<B> + ?Sized,
{
    // Each run checked as `fit` checks it; they train together where every one passes
    // and they share a fused form, else each alone (as `fit` trains it), in turn.
    let mut checked = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        checked.push(Checked::of(backend, run));
    }
    if runs.len() > 1 && checked.iter().all(Result::is_ok) {
        let all: Vec<&Checked> = checked.iter().flatten().collect();
        if let Some(group) = Group::together(backend, runs, &all)? {
            return group.train(runs, on_epoch);
        }
    }
    Ok(runs
        .iter_mut()
        .zip(checked)
        .enumerate()
        .map(|(r, (run, checked))| {
            let group = Group::alone(backend, run, &checked?)?;
            let mut result = group.train(std::slice::from_mut(run), |_, report, model| {
                on_epoch(r, report, model)
            })?;
            result.pop().expect("one result per run")
        })
        .collect())
}

/// Runs `run(0)`, …, `run(count − 1)` on up to `threads` threads (each taking the next
/// index not yet taken) and returns their results in index order, or the error of the
/// lowest index that failed. With `threads` = 1 they run in turn on the calling thread.
/// Each run must depend on its index alone, so that its result is the same as when it
/// runs by itself: on the CPU backend, bit for bit.
pub fn run_many<T: Send>(
    count: usize,
    threads: usize,
    run: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if threads == 0 {
        return Err(Error::InvalidArgument(
            "run_many needs at least 1 thread".into(),
        ));
    }
    let threads = threads.min(count.max(1));
    if threads == 1 {
        return (0..count).map(run).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let result = run(i);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::InvalidArgument("a run did not finish".into()))))
        .collect()
}
