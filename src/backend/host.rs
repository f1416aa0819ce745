//! Host memory for the CPU backends ([`Cpu`](crate::Cpu) and
//! [`Reference`](crate::Reference)): a shared `f32` buffer and the locking that
//! hands an op its input and output slices.

use std::cell::RefCell;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{next_buffer_id, Backend, BufferHandle, DeviceTensor};

/// The device of every host buffer: host memory, which every CPU backend can use.
pub(crate) const HOST_DEVICE: u64 = 0;

/// A host buffer shared by the [`DeviceTensor`]s that view it.
#[derive(Debug, Clone)]
pub struct HostBuffer {
    data: Arc<RwLock<Vec<f32>>>,
    len: usize,
    id: u64,
}

impl BufferHandle for HostBuffer {
    fn id(&self) -> u64 {
        self.id
    }
    fn len(&self) -> usize {
        self.len
    }
    fn device(&self) -> u64 {
        HOST_DEVICE
    }
}

impl HostBuffer {
    /// A buffer holding `data`, with a fresh id.
    pub(crate) fn new(data: Vec<f32>) -> Self {
        HostBuffer {
            len: data.len(),
            data: Arc::new(RwLock::new(data)),
            id: next_buffer_id(),
        }
    }

    /// The buffer's data, read-locked (a poisoned lock is taken over: every op leaves
    /// the data valid `f32`s).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Vec<f32>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The buffer's data, write-locked.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Vec<f32>> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` on the `N` input slices with each distinct buffer read-locked once (two
/// views of one buffer must not take its lock twice). Allocates nothing.
pub(crate) fn with_inputs<B, const N: usize, R>(
    inputs: [&DeviceTensor<B>; N],
    f: impl FnOnce([&[f32]; N]) -> R,
) -> R
where
    B: Backend<Buffer = HostBuffer>,
{
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
    f(slices)
}

/// [`with_inputs`], with `out`'s slice write-locked too. `out` shares no buffer with an
/// input (the checked ops refuse aliasing). Allocates nothing.
pub(crate) fn with_slices<B, const N: usize, R>(
    inputs: [&DeviceTensor<B>; N],
    out: &DeviceTensor<B>,
    f: impl FnOnce([&[f32]; N], &mut [f32]) -> R,
) -> R
where
    B: Backend<Buffer = HostBuffer>,
{
    with_inputs(inputs, |slices| {
        let mut out_guard = out.buffer().write();
        f(
            slices,
            &mut out_guard[out.offset()..out.offset() + out.len()],
        )
    })
}

thread_local! {
    /// The gated output gradient of a linear backward, reused from call to call so that
    /// a training step allocates nothing once it has grown to the largest batch.
    static GATED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the gated output gradient `dz`, which `gate(dy, y, dz)` writes into a
/// scratch buffer of the thread (reused from call to call). `dy` and `y` are locked
/// only while `gate` runs, so that `f` may lock any tensor. Not reentrant: `f` must not
/// call it again.
pub(crate) fn with_gated<B, R>(
    dy: &DeviceTensor<B>,
    y: &DeviceTensor<B>,
    gate: impl FnOnce(&[f32], &[f32], &mut [f32]),
    f: impl FnOnce(&[f32]) -> R,
) -> R
where
    B: Backend<Buffer = HostBuffer>,
{
    GATED.with_borrow_mut(|dz| {
        dz.resize(dy.len(), 0.0);
        with_inputs([dy, y], |[dy, y]| gate(dy, y, dz));
        f(dz)
    })
}

/// A zero-filled `rows × cols` tensor in a host buffer of its own, failing with
/// [`Error::TooLarge`](crate::Error::TooLarge) instead of aborting when it cannot.
pub(crate) fn alloc<B: Backend<Buffer = HostBuffer>>(
    rows: usize,
    cols: usize,
) -> crate::Result<DeviceTensor<B>> {
    let too_large = |bytes: u64| crate::Error::TooLarge {
        what: format!("a {rows}×{cols} tensor"),
        bytes,
        limit: isize::MAX as u64,
    };
    let len = rows
        .checked_mul(cols)
        .filter(|&n| n <= isize::MAX as usize / 4)
        .ok_or_else(|| too_large((rows as u64).saturating_mul(cols as u64).saturating_mul(4)))?;
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| too_large(len as u64 * 4))?;
    data.resize(len, 0.0);
    DeviceTensor::new(HostBuffer::new(data), 0, rows, cols)
}

/// A copy of a host tensor of rank 1 or 2 in a host buffer of its own (`[n]` becomes
/// `1 × n`).
pub(crate) fn upload<B: Backend<Buffer = HostBuffer>>(
    tensor: &crate::Tensor,
) -> crate::Result<DeviceTensor<B>> {
    let (rows, cols) = tensor.matrix_dims()?;
    DeviceTensor::new(HostBuffer::new(tensor.data().to_vec()), 0, rows, cols)
}

/// A copy of the tensor's elements as a host [`Tensor`](crate::Tensor).
pub(crate) fn download<B: Backend<Buffer = HostBuffer>>(
    src: &DeviceTensor<B>,
) -> crate::Result<crate::Tensor> {
    let guard = src.buffer().read();
    crate::Tensor::new(
        &src.shape(),
        guard[src.offset()..src.offset() + src.len()].to_vec(),
    )
}

/// One fused epoch of each of `runs` runs on host buffers, laid out as
/// [`MlpTrainer::mlp_epoch_runs`](crate::backend::MlpTrainer::mlp_epoch_runs) takes
/// them: `epoch(params, inputs, targets, rows, losses)` on run `r`'s slices, one run
/// per task on `pool` where there is one and more than one run, else in turn.
pub(crate) fn mlp_epoch_runs<B>(
    runs: usize,
    [params, inputs, targets, losses]: [&DeviceTensor<B>; 4],
    pool: Option<&rayon::ThreadPool>,
    epoch: impl Fn(&mut [f32], &[f32], &[f32], usize, &mut [f32]) + Sync,
) where
    B: Backend<Buffer = HostBuffer>,
{
    let rows = inputs.rows() / runs;
    let (x_len, t_len) = (rows * inputs.cols(), rows * targets.cols());
    let (p_len, l_len) = (params.cols(), (losses.rows() / runs).max(1));
    with_slices([inputs, targets], params, |[x, t], p| {
        with_slices([], losses, |_, l| {
            let run = |r: usize, p: &mut [f32], l: &mut [f32]| {
                let x = &x[r * x_len..(r + 1) * x_len];
                let t = &t[r * t_len..(r + 1) * t_len];
                epoch(p, x, t, rows, l);
            };
            match pool {
                // One run per task: split only in halves, the runs of a seed epoch
                // (about 1 ms each) kept the second thread idle much of the time (32
                // seed runs of 300 epochs on 2 threads: 8.5–10.4 s, against 5.4–6.1 s
                // so).
                Some(pool) if runs > 1 => pool.install(|| {
                    use rayon::prelude::*;
                    p.par_chunks_mut(p_len)
                        .zip(l.par_chunks_mut(l_len))
                        .with_max_len(1)
                        .enumerate()
                        .for_each(|(r, (p, l))| run(r, p, l))
                }),
                _ => p
                    .chunks_mut(p_len)
                    .zip(l.chunks_mut(l_len))
                    .enumerate()
                    .for_each(|(r, (p, l))| run(r, p, l)),
            }
        })
    });
}
