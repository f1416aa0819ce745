//! The three products of a linear layer on the [`Cpu`](crate::Cpu) backend:
//! `y = act(x·wᵀ + b)`, `dx = dz·w` and `dw += dzᵀ·x`, plus the bias gradient. Large
//! products go to the `gemm` crate (packed, vectorized, threaded); small ones run in
//! the plain kernels below on the calling thread, which allocate nothing and, for the
//! gradients, add in the reference's order.
//!
//! `y = x·wᵀ` multiplies by a transposed copy of `w` where `w`'s rows lie a multiple
//! of 4 KiB apart (see [`through_transpose`]).
//!
//! Dimensions follow [`Backend`](crate::Backend): `x: n×k`, `w: m×k`, `y: n×m`,
//! row-major.

use std::cell::RefCell;

use rayon::ThreadPool;

use crate::backend::cpu::parallel::for_each_rows;
use crate::backend::cpu::scratch::with_scratch;
use crate::backend::cpu::transpose::transpose;
use crate::backend::reference::definitions::activate;
use crate::backend::Act;

/// Products of fewer multiply-adds than this run in the small kernels: below it,
/// `gemm`'s packing costs more than it saves (and it allocates its packing buffers).
pub(crate) const SMALL_PRODUCT: usize = 1 << 16;

/// Products of at least this many multiply-adds use the pool, when there is one.
const PAR_MIN_PRODUCT: usize = 1 << 20;

/// Lanes of the small kernels' accumulators: a multiple of every x86 and ARM vector
/// width for `f32` up to 512 bits, so that the compiler vectorizes them.
const LANES: usize = 16;

/// The `f32` row stride of `w` whose multiples [`forward`] avoids: 4 KiB, the span of
/// one way of the L1 data cache on the x86 cores minidl has run on (64 sets of 64 bytes).
const ALIASING_STRIDE: usize = 1024;

thread_local! {
    /// The calling thread's transposed weight (`k × m`) for [`forward`], reused from
    /// call to call.
    static TRANSPOSED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`forward`] multiplies by a transposed copy of `w` (`m × k`) rather than
/// by `w` read column-wise: where `w`'s rows lie a multiple of [`ALIASING_STRIDE`]
/// apart. `gemm` packs a column-wise `w` by gathering down its columns, and at such a
/// stride every read of a gather falls into the same cache set. On a Zen 5 EPYC the
/// product of 256×1024 by (1024×1024)ᵀ took 3.6–3.7 ms that way at one thread, and
/// 2.2–2.3 ms from a row-major copy made in 0.42 ms; at a width of 1000 the two ways
/// took about the same time, so there the copy would only cost. On an Intel Xeon the
/// copy took 1.41 ms one value at a time and 1.01–1.03 ms through AVX registers, as
/// it is made now (docs/performance.md).
fn through_transpose(k: usize) -> bool {
    k.is_multiple_of(ALIASING_STRIDE)
}

/// The threads a product of `macs` multiply-adds runs on.
fn threads_for(pool: Option<&ThreadPool>, macs: usize) -> Option<&ThreadPool> {
    pool.filter(|_| macs >= PAR_MIN_PRODUCT)
}

/// `dst (rows × cols, row-major) = [dst +] lhs·rhs` through `gemm`, where `lhs` is
/// `rows × inner` and `rhs` is `inner × cols`, each given as (slice, row stride,
/// column stride). Runs on `pool` when given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into(
    pool: Option<&ThreadPool>,
    (rows, cols, inner): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
) {
    // The bounds `gemm` relies on, checked here once so that the call below is sound.
    let last = |r: usize, c: usize, rs: usize, cs: usize| (r - 1) * rs + (c - 1) * cs;
    assert!(rows > 0 && cols > 0 && inner > 0);
    assert!(dst.len() >= rows * cols);
    assert!(lhs.len() > last(rows, inner, lhs_rs, lhs_cs));
    assert!(rhs.len() > last(inner, cols, rhs_rs, rhs_cs));
    let mut call = |parallelism| {
        // SAFETY: every index `gemm` reads or writes is below the lengths asserted
        // above; `dst` is borrowed mutably, so it overlaps neither input.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                inner,
                dst.as_mut_ptr(),
                1,
                cols as isize,
                accumulate,
                lhs.as_ptr(),
                lhs_cs as isize,
                lhs_rs as isize,
                rhs.as_ptr(),
                rhs_cs as isize,
                rhs_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        }
    };
    match pool {
        Some(pool) => pool.install(|| call(gemm::Parallelism::Rayon(pool.current_num_threads()))),
        None => call(gemm::Parallelism::None),
    }
}

/// `Σ a[i]·b[i]` in [`LANES`] interleaved partial sums (which the compiler keeps in
/// vector registers), then the rest in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (a_rest, b_rest) = (
        a.chunks_exact(LANES).remainder(),
        b.chunks_exact(LANES).remainder(),
    );
    for (a, b) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for j in 0..LANES {
            acc[j] += a[j] * b[j];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (a, b) in a_rest.iter().zip(b_rest) {
        sum += a * b;
    }
    sum
}

/// `y = act(x·wᵀ + b)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    pool: Option<&ThreadPool>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    act: Act,
    y: &mut [f32],
    (n, k, m): (usize, usize, usize),
) {
    let macs = n * k * m;
    if macs < SMALL_PRODUCT || k == 0 || m == 0 {
        return forward_small(x, w, b, act, y, (n, k, m));
    }
    let pool = threads_for(pool, macs);
    if through_transpose(k) {
        with_scratch(&TRANSPOSED, k * m, |wt| {
            transpose(pool, w, (m, k), wt);
            gemm_into(pool, (n, m, k), y, false, (x, k, 1), (wt, m, 1));
        });
    } else {
        gemm_into(pool, (n, m, k), y, false, (x, k, 1), (w, 1, k));
    }
    // The bias and activation in one pass over each chunk of rows.
    for_each_rows(pool, n, [], [], m, y, |[], y| {
        for row in y.chunks_exact_mut(m) {
            for (v, &b) in row.iter_mut().zip(b) {
                *v = activate(*v + b, act);
            }
        }
    });
}

/// [`forward`] for small products: one [`dot`] per output.
fn forward_small(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    act: Act,
    y: &mut [f32],
    (n, k, m): (usize, usize, usize),
) {
    for (xr, yr) in x.chunks_exact(k.max(1)).zip(y.chunks_exact_mut(m)).take(n) {
        for ((v, wc), &b) in yr.iter_mut().zip(w.chunks_exact(k.max(1))).zip(b) {
            let z = if k == 0 { 0.0 } else { dot(xr, wc) };
            *v = activate(z + b, act);
        }
    }
}

/// Whether a linear layer's two backward products over `(n, k, m)` (the same
/// multiply-adds each) run side by side, one on each of `pool`'s threads, rather than
/// one after the other, each split between them: where the pool has two threads and
/// each product is large enough to be split at all. (On the wide step the gain
/// measured so far is within the machine's noise: docs/performance.md.)
pub(crate) fn side_by_side(pool: &ThreadPool, (n, k, m): (usize, usize, usize)) -> bool {
    pool.current_num_threads() == 2 && n * k * m >= PAR_MIN_PRODUCT
}

/// `dx = dz·w` (overwrites `dx`).
pub(crate) fn backward_input(
    pool: Option<&ThreadPool>,
    dz: &[f32],
    w: &[f32],
    dx: &mut [f32],
    (n, k, m): (usize, usize, usize),
) {
    let macs = n * k * m;
    if macs < SMALL_PRODUCT || m == 0 {
        return backward_input_small(dz, w, dx, (n, k, m));
    }
    gemm_into(
        threads_for(pool, macs),
        (n, k, m),
        dx,
        false,
        (dz, m, 1),
        (w, k, 1),
    );
}

/// [`backward_input`] for small products: each output a sum over `c` in order, as the
/// reference adds it, [`LANES`] outputs at a time.
fn backward_input_small(dz: &[f32], w: &[f32], dx: &mut [f32], (n, k, m): (usize, usize, usize)) {
    for r in 0..n {
        let dzr = &dz[r * m..(r + 1) * m];
        let dxr = &mut dx[r * k..(r + 1) * k];
        for i0 in (0..k).step_by(LANES) {
            let width = LANES.min(k - i0);
            let mut acc = [0.0f32; LANES];
            for (c, &d) in dzr.iter().enumerate() {
                let wc = &w[c * k + i0..c * k + i0 + width];
                for (a, &wv) in acc.iter_mut().zip(wc) {
                    *a += d * wv;
                }
            }
            dxr[i0..i0 + width].copy_from_slice(&acc[..width]);
        }
    }
}

/// `dw += dzᵀ·x`, or `dw = dzᵀ·x` where `accumulate` is false.
pub(crate) fn backward_weight(
    pool: Option<&ThreadPool>,
    dz: &[f32],
    x: &[f32],
    dw: &mut [f32],
    (n, k, m): (usize, usize, usize),
    accumulate: bool,
) {
    let macs = n * k * m;
    if macs < SMALL_PRODUCT || n == 0 {
        return backward_weight_small(dz, x, dw, (n, k, m), accumulate);
    }
    let dims = (m, k, n);
    gemm_into(
        threads_for(pool, macs),
        dims,
        dw,
        accumulate,
        (dz, 1, m),
        (x, k, 1),
    );
}

/// [`backward_weight`] for small products: each sum `Σ_r dz[r][c] · x[r][i]` in order
/// of `r`, as the reference adds it, then added to its element of `dw` (or written over
/// it where `accumulate` is false).
fn backward_weight_small(
    dz: &[f32],
    x: &[f32],
    dw: &mut [f32],
    (n, k, m): (usize, usize, usize),
    accumulate: bool,
) {
    for c in 0..m {
        for i0 in (0..k).step_by(LANES) {
            let width = LANES.min(k - i0);
            let mut acc = [0.0f32; LANES];
            for r in 0..n {
                let d = dz[r * m + c];
                let xr = &x[r * k + i0..r * k + i0 + width];
                for (a, &xv) in acc.iter_mut().zip(xr) {
                    *a += d * xv;
                }
            }
            store(&mut dw[c * k + i0..c * k + i0 + width], &acc, accumulate);
        }
    }
}

/// `out += sums` (or `out = sums` where `accumulate` is false), elementwise.
fn store(out: &mut [f32], sums: &[f32], accumulate: bool) {
    for (o, &sum) in out.iter_mut().zip(sums) {
        if accumulate {
            *o += sum;
        } else {
            *o = sum;
        }
    }
}

/// `db += Σ_r dz[r]` (or `db = …` where `accumulate` is false), each column summed in
/// order of `r` as the reference adds it.
pub(crate) fn backward_bias(dz: &[f32], db: &mut [f32], (n, m): (usize, usize), accumulate: bool) {
    for c0 in (0..m).step_by(LANES) {
        let width = LANES.min(m - c0);
        let mut acc = [0.0f32; LANES];
        for r in 0..n {
            for (a, &d) in acc.iter_mut().zip(&dz[r * m + c0..r * m + c0 + width]) {
                *a += d;
            }
        }
        store(&mut db[c0..c0 + width], &acc, accumulate);
    }
}
