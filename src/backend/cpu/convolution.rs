//! The 2-D convolution on the [`Cpu`](crate::Cpu) backend, as products: each image is
//! unfolded into its columns (im2col: one row per weight element `(c, ky, kx)`, one
//! column per output pixel, zeros where a tap falls in the padding), then
//! `y = w · columns + b`, `dcolumns = wᵀ · dy` folded back onto the input (col2im),
//! and `dw += dy · columnsᵀ`, each through `gemm`. The images of a batch are split
//! between the backend's threads; each thread unfolds into a scratch buffer of its
//! own, kept from call to call, and sums its images' weight gradients into a slice of
//! the caller's scratch, which are then added in thread order (so the result does not
//! depend on scheduling). A step allocates nothing once the buffers have grown.

use std::cell::RefCell;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::backend::cpu::matmul::gemm_into;
use crate::backend::Conv2dGeometry;

/// Convolutions of fewer multiply-adds than this run on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;

thread_local! {
    /// A thread's unfolded image (`C·kh·kw × OH·OW`), reused from call to call.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's per-task weight and bias gradient sums.
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch vector of `len` elements from `key` (contents unspecified),
/// or on a fresh one where the thread's is already in use (a nested call).
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// The number of tasks a batch is split into: one per thread, at most one per image,
/// and one for small convolutions.
fn tasks(pool: Option<&ThreadPool>, g: &Conv2dGeometry) -> usize {
    let macs = g.batch() * g.output_sample_len() * g.im2col_depth();
    match pool {
        Some(pool) if macs >= PAR_MIN_MACS => pool.current_num_threads().min(g.batch()),
        _ => 1,
    }
}

/// Splits the batch into `tasks` contiguous runs of images and runs
/// `f(first_image, image_count, chunk)` for each, on `pool` when there are several:
/// `chunk` is the task's part of `out`, which is cut into `tasks` pieces of
/// `chunk_len(images_per_task)` elements.
fn split_images<F>(
    pool: Option<&ThreadPool>,
    batch: usize,
    tasks: usize,
    out: &mut [f32],
    chunk_len: impl Fn(usize) -> usize,
    f: F,
) where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    let per = batch.div_ceil(tasks);
    let run = |(t, chunk): (usize, &mut [f32])| {
        if let Some(left) = batch.checked_sub(t * per).filter(|&left| left > 0) {
            f(t * per, per.min(left), chunk)
        }
    };
    let len = chunk_len(per);
    match pool {
        Some(pool) if tasks > 1 => {
            pool.install(|| out.par_chunks_mut(len).enumerate().for_each(run))
        }
        _ => out.chunks_mut(len).enumerate().for_each(run),
    }
}

/// Unfolds one image `x` (`C × H × W`) into `columns` (`C·kh·kw × OH·OW`).
fn im2col(g: &Conv2dGeometry, x: &[f32], columns: &mut [f32]) {
    let (kh, kw) = g.kernel();
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let sx = g.stride().1;
    for c in 0..g.in_channels() {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let r = (c * kh + ky) * kw + kx;
                let out = &mut columns[r * oh * ow..(r + 1) * oh * ow];
                let cols = g.cols_reading(kx);
                for oy in 0..oh {
                    let line = &mut out[oy * ow..(oy + 1) * ow];
                    let Some(iy) = g.input_y(oy, ky) else {
                        line.fill(0.0);
                        continue;
                    };
                    line[..cols.start].fill(0.0);
                    line[cols.end..].fill(0.0);
                    if cols.is_empty() {
                        continue;
                    }
                    let ix0 = g.input_x(cols.start, kx).unwrap_or(0);
                    let src = &plane[iy * w..(iy + 1) * w];
                    if sx == 1 {
                        line[cols.clone()].copy_from_slice(&src[ix0..ix0 + cols.len()]);
                    } else {
                        for (i, v) in line[cols.clone()].iter_mut().enumerate() {
                            *v = src[ix0 + i * sx];
                        }
                    }
                }
            }
        }
    }
}

/// Folds `columns` back onto one image: `dx` (`C × H × W`, written over) gets, at each
/// pixel, the sum of the column entries that read it.
fn col2im(g: &Conv2dGeometry, columns: &[f32], dx: &mut [f32]) {
    let (kh, kw) = g.kernel();
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let sx = g.stride().1;
    dx.fill(0.0);
    for c in 0..g.in_channels() {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let r = (c * kh + ky) * kw + kx;
                let src = &columns[r * oh * ow..(r + 1) * oh * ow];
                let cols = g.cols_reading(kx);
                if cols.is_empty() {
                    continue;
                }
                let ix0 = g.input_x(cols.start, kx).unwrap_or(0);
                for oy in g.rows_reading(ky) {
                    let Some(iy) = g.input_y(oy, ky) else {
                        continue;
                    };
                    let line = &src[oy * ow..(oy + 1) * ow];
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    for (i, v) in line[cols.clone()].iter().enumerate() {
                        dst[ix0 + i * sx] += v;
                    }
                }
            }
        }
    }
}

/// `y = conv(x, w) + b` for the whole batch (`y` written over).
pub(crate) fn forward(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    let (depth, pixels, outs) = (
        g.im2col_depth(),
        g.out_height() * g.out_width(),
        g.out_channels(),
    );
    let tasks = tasks(pool, g);
    split_images(
        pool,
        g.batch(),
        tasks,
        y,
        |per| per * y_len,
        |first, count, y| {
            with_scratch(&COLUMNS, depth * pixels, |columns| {
                for (n, y_n) in (first..first + count).zip(y.chunks_exact_mut(y_len)) {
                    for (o, row) in y_n.chunks_exact_mut(pixels).enumerate() {
                        row.fill(b[o]);
                    }
                    im2col(g, &x[n * x_len..(n + 1) * x_len], columns);
                    gemm_into(
                        None,
                        (outs, pixels, depth),
                        y_n,
                        true,
                        (w, depth, 1),
                        (columns, pixels, 1),
                    );
                }
            })
        },
    );
}

/// `dx = conv_inputᵀ(dy)` for the whole batch (`dx` written over).
pub(crate) fn backward_input(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    let (depth, pixels, outs) = (
        g.im2col_depth(),
        g.out_height() * g.out_width(),
        g.out_channels(),
    );
    let tasks = tasks(pool, g);
    split_images(
        pool,
        g.batch(),
        tasks,
        dx,
        |per| per * x_len,
        |first, count, dx| {
            with_scratch(&COLUMNS, depth * pixels, |columns| {
                for (n, dx_n) in (first..first + count).zip(dx.chunks_exact_mut(x_len)) {
                    gemm_into(
                        None,
                        (depth, pixels, outs),
                        columns,
                        false,
                        (w, 1, depth),
                        (&dy[n * y_len..(n + 1) * y_len], pixels, 1),
                    );
                    col2im(g, columns, dx_n);
                }
            })
        },
    );
}

/// `dw (+)= Σ_n dy_n · columns_nᵀ` and `db (+)= Σ_n Σ_pixels dy_n`, added to the
/// gradients where `accumulate`, written over them otherwise.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_weight(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    accumulate: bool,
) {
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    let (depth, pixels, outs) = (
        g.im2col_depth(),
        g.out_height() * g.out_width(),
        g.out_channels(),
    );
    let tasks = tasks(pool, g);
    let part = outs * depth + outs;
    with_scratch(&PARTIALS, tasks * part, |partials| {
        split_images(
            pool,
            g.batch(),
            tasks,
            partials,
            |_| part,
            |first, count, partial| {
                let (pw, pb) = partial.split_at_mut(outs * depth);
                pb.fill(0.0);
                with_scratch(&COLUMNS, depth * pixels, |columns| {
                    for n in first..first + count {
                        let dy_n = &dy[n * y_len..(n + 1) * y_len];
                        im2col(g, &x[n * x_len..(n + 1) * x_len], columns);
                        gemm_into(
                            None,
                            (outs, depth, pixels),
                            pw,
                            n != first,
                            (dy_n, pixels, 1),
                            (columns, 1, pixels),
                        );
                        for (o, row) in dy_n.chunks_exact(pixels).enumerate() {
                            pb[o] += row.iter().sum::<f32>();
                        }
                    }
                });
            },
        );
        let used = g.batch().div_ceil(g.batch().div_ceil(tasks));
        for (t, partial) in partials.chunks_exact(part).take(used).enumerate() {
            let (pw, pb) = partial.split_at(outs * depth);
            for (dst, src) in [(&mut *dw, pw), (&mut *db, pb)] {
                if t == 0 && !accumulate {
                    dst.copy_from_slice(src);
                } else {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            }
        }
    });
}
