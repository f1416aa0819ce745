//! Threads for the [`Cpu`](crate::Cpu) backend: one rayon pool per thread count,
//! shared by every `Cpu` that uses that count, and the helpers that split large work
//! into chunks while small work stays on the calling thread (no hand-off per seed
//! mini-batch).

use std::sync::Mutex;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::backend::reference::definitions::{self, Real, SUM_BLOCK};
use crate::error::{Error, Result};

/// Elementwise work below this many elements runs on the calling thread.
const PAR_MIN_ELEMENTS: usize = 1 << 15;

/// Output elements per chunk of elementwise work (32 KiB of `f32`).
const CHUNK_ELEMENTS: usize = 1 << 13;

/// Blocks of [`SUM_BLOCK`] terms per chunk of a parallel sum: a power of two, so that
/// each chunk's sum is a node of [`definitions::blocked_sum`]'s tree.
const SUM_CHUNK_BLOCKS: usize = 128;

/// The environment variable that sets the default thread count.
pub const THREADS_VAR: &str = "MINIDL_THREADS";

/// The thread count `MINIDL_THREADS` asks for, or every core the process may use.
pub(crate) fn threads_from_env() -> Result<usize> {
    match std::env::var(THREADS_VAR) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::InvalidArgument(format!(
                "{THREADS_VAR} must be a whole number of threads, at least 1; it is {v:?}"
            ))),
        },
        Err(std::env::VarError::NotPresent) => Ok(all_cores()),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::InvalidArgument(format!(
            "{THREADS_VAR} must be a whole number of threads, at least 1; it is {v:?}"
        ))),
    }
}

/// Every core the process may use (1 where that cannot be told).
pub(crate) fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The pool of `threads` threads (at least 2), built on first use and kept for the
/// life of the process, so that backends made and dropped in a loop share it.
pub(crate) fn pool(threads: usize) -> Result<&'static ThreadPool> {
    static POOLS: Mutex<Vec<(usize, &'static ThreadPool)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, pool)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(pool);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("minidl-cpu-{i}"))
        .build()
        .map_err(|e| Error::Threads(format!("cannot start {threads}: {e}")))?;
    let pool: &'static ThreadPool = Box::leak(Box::new(pool));
    pools.push((threads, pool));
    Ok(pool)
}

/// Runs `f` over matching row ranges of `out` (`rows × out_width`) and of each input
/// (`rows × in_widths[i]`): on the calling thread when `pool` is `None` or the work
/// is small, else in chunks of rows on the pool. `f` gets the chunk's slices.
pub(crate) fn for_each_rows<const N: usize>(
    pool: Option<&ThreadPool>,
    rows: usize,
    in_widths: [usize; N],
    inputs: [&[f32]; N],
    out_width: usize,
    out: &mut [f32],
    f: impl Fn([&[f32]; N], &mut [f32]) + Send + Sync,
) {
    let out = &mut out[..rows * out_width];
    let work = rows * out_width.max(in_widths.into_iter().max().unwrap_or(0));
    match pool {
        Some(pool) if work >= PAR_MIN_ELEMENTS && rows > 1 && out_width > 0 => {
            let widest = out_width.max(in_widths.into_iter().max().unwrap_or(0));
            let chunk_rows = (CHUNK_ELEMENTS / widest.max(1)).max(1);
            pool.install(|| {
                out.par_chunks_mut(chunk_rows * out_width)
                    .enumerate()
                    .for_each(|(j, o)| {
                        let (first, count) = (j * chunk_rows, o.len() / out_width);
                        let ins = std::array::from_fn(|i| {
                            &inputs[i][first * in_widths[i]..(first + count) * in_widths[i]]
                        });
                        f(ins, o)
                    })
            })
        }
        _ => f(
            std::array::from_fn(|i| &inputs[i][..rows * in_widths[i]]),
            out,
        ),
    }
}

/// Runs `f` over matching chunks of the elementwise inputs and `out` (all of
/// `out.len()` elements); see [`for_each_rows`].
pub(crate) fn for_each_chunk<const N: usize>(
    pool: Option<&ThreadPool>,
    inputs: [&[f32]; N],
    out: &mut [f32],
    f: impl Fn([&[f32]; N], &mut [f32]) + Send + Sync,
) {
    for_each_rows(pool, out.len(), [1; N], inputs, 1, out, f)
}

/// [`for_each_chunk`] with two outputs of the same length.
pub(crate) fn for_each_chunk_pair<const N: usize>(
    pool: Option<&ThreadPool>,
    inputs: [&[f32]; N],
    out_a: &mut [f32],
    out_b: &mut [f32],
    f: impl Fn([&[f32]; N], &mut [f32], &mut [f32]) + Send + Sync,
) {
    match pool {
        Some(pool) if out_a.len() >= PAR_MIN_ELEMENTS => pool.install(|| {
            out_a
                .par_chunks_mut(CHUNK_ELEMENTS)
                .zip(out_b.par_chunks_mut(CHUNK_ELEMENTS))
                .enumerate()
                .for_each(|(j, (a, b))| {
                    let first = j * CHUNK_ELEMENTS;
                    f(inputs.map(|s| &s[first..first + a.len()]), a, b)
                })
        }),
        _ => f(inputs, out_a, out_b),
    }
}

/// [`definitions::blocked_sum`] bit for bit, in parallel when `pool` is given and the
/// work (`n` terms of `cost` elements each) is large: chunks of a power of two of
/// blocks (fewer for costly terms) are summed on the pool, and as each chunk's sum is
/// a node of the reference's tree, adding them as its levels do gives its result.
pub(crate) fn blocked_sum<T: Real>(
    pool: Option<&ThreadPool>,
    n: usize,
    cost: usize,
    term: impl Fn(usize) -> T + Sync,
) -> T {
    let chunk = (SUM_CHUNK_BLOCKS / cost.max(1).next_power_of_two()).max(1) * SUM_BLOCK;
    match pool {
        Some(pool) if n.saturating_mul(cost) >= PAR_MIN_ELEMENTS && n > chunk => {
            pool.install(|| chunk_sums(0, n.div_ceil(chunk), n, chunk, &term))
        }
        _ => definitions::blocked_sum(n, term),
    }
}

/// The sum of chunks `first..first + count`, split as the reference splits blocks:
/// the first power-of-two half and the rest, the halves in parallel.
fn chunk_sums<T: Real>(
    first: usize,
    count: usize,
    n: usize,
    chunk: usize,
    term: &(impl Fn(usize) -> T + Sync),
) -> T {
    if count == 1 {
        let start = first * chunk;
        let len = chunk.min(n - start);
        return definitions::blocked_sum(len, |i| term(start + i));
    }
    let half = count.next_power_of_two() / 2;
    let (a, b) = rayon::join(
        || chunk_sums(first, half, n, chunk, term),
        || chunk_sums(first + half, count - half, n, chunk, term),
    );
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parallel_blocked_sum_is_the_references_bit_for_bit() {
        let pool = pool(2).unwrap();
        // Mixed magnitudes, so that a different order rounds differently.
        let values: Vec<f32> = (0..300_000i64)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 10f32.powi((i % 7) as i32 - 3))
            .collect();
        for n in [
            0,
            1,
            8191,
            8192,
            8193,
            32_768,
            40_000,
            65_536 + 64 * 3,
            300_000,
        ] {
            let want = definitions::blocked_sum(n, |i| values[i]);
            for cost in [1, 3, 100, 1000] {
                let got = blocked_sum(Some(pool), n, cost, |i| values[i]);
                assert_eq!(got.to_bits(), want.to_bits(), "n = {n}, cost {cost}");
            }
        }
    }

    #[test]
    fn row_chunks_cover_every_row_once() {
        let pool = pool(2).unwrap();
        for (rows, width) in [(1, 5), (3, 1), (100_000, 1), (40_000, 3), (33, 2048)] {
            let input: Vec<f32> = (0..rows * 2).map(|i| i as f32).collect();
            let mut out = vec![0.0; rows * width];
            for_each_rows(
                Some(pool),
                rows,
                [2],
                [&input],
                width,
                &mut out,
                |[x], o| {
                    for (r, row) in o.chunks_mut(width).enumerate() {
                        row.fill(x[2 * r] + 1.0);
                    }
                },
            );
            for (r, row) in out.chunks(width).enumerate() {
                assert!(
                    row.iter().all(|&v| v == (2 * r) as f32 + 1.0),
                    "{rows}×{width} row {r}"
                );
            }
        }
    }
}
