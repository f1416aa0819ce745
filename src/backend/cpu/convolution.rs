//! The 2-D convolution on the [`Cpu`](crate::Cpu) backend, as products: each image is
//! unfolded into its columns (im2col: one row per weight element `(c, ky, kx)`, one
//! column per output pixel, zeros where a tap falls in the padding), then
//! `y = w · columns + b`, `dcolumns = wᵀ · dy` folded back onto the input (col2im),
//! and `dw += dy · columnsᵀ`, each through `gemm`. The images of a batch are split
//! between the backend's threads; each thread unfolds its images side by side into one
//! matrix (a scratch buffer of its own, kept from call to call) in groups small enough
//! to stay in its caches, so that each op is a few large products per thread, and sums its weight gradients into a slice of the caller's
//! scratch, which are then added in thread order (so the result does not depend on
//! scheduling). minidl allocates nothing in a step once the buffers have grown; the
//! `gemm` crate allocates its packing buffers in each product it computes (a few
//! allocations per product, so a fixed number per step).

use std::cell::RefCell;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::backend::cpu::matmul::{gemm_into, SMALL_PRODUCT};
use crate::backend::Conv2dGeometry;

/// Convolutions of fewer multiply-adds than this run on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;

thread_local! {
    /// A thread's unfolded images (`C·kh·kw × images·OH·OW`), reused from call to call.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A thread's output-shaped matrix (`O × images·OH·OW`), reused from call to call.
    static GATHERED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

/// Unfolds one image `x` (`C × H × W`) into the columns of `columns` that are its own:
/// row `r = (c, ky, kx)` of the unfolding goes to `columns[r·stride ..][.. OH·OW]`, so
/// that several images unfold side by side into one `C·kh·kw × (images·OH·OW)` matrix.
fn im2col(g: &Conv2dGeometry, x: &[f32], columns: &mut [f32], stride: usize) {
    let (kh, kw) = g.kernel();
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let sx = g.stride().1;
    for c in 0..g.in_channels() {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let r = (c * kh + ky) * kw + kx;
                let out = &mut columns[r * stride..r * stride + oh * ow];
                let cols = g.cols_reading(kx);
                let ix0 = g.input_x(cols.start, kx).unwrap_or(0);
                for (oy, line) in out.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = g.input_y(oy, ky).filter(|_| !cols.is_empty()) else {
                        line.fill(0.0);
                        continue;
                    };
                    line[..cols.start].fill(0.0);
                    line[cols.end..].fill(0.0);
                    let src = &plane[iy * w..(iy + 1) * w];
                    let dst = &mut line[cols.clone()];
                    if sx == 1 {
                        for (d, s) in dst.iter_mut().zip(&src[ix0..]) {
                            *d = *s;
                        }
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = src[ix0 + i * sx];
                        }
                    }
                }
            }
        }
    }
}

/// Folds one image's columns (laid out as [`im2col`] writes them) back onto it: `dx`
/// (`C × H × W`, written over) gets, at each pixel, the sum of the entries that read it.
fn col2im(g: &Conv2dGeometry, columns: &[f32], stride: usize, dx: &mut [f32]) {
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
                let src = &columns[r * stride..r * stride + oh * ow];
                let cols = g.cols_reading(kx);
                if cols.is_empty() {
                    continue;
                }
                let ix0 = g.input_x(cols.start, kx).unwrap_or(0);
                for oy in g.rows_reading(ky) {
                    let Some(iy) = g.input_y(oy, ky) else {
                        continue;
                    };
                    let line = &src[oy * ow + cols.start..oy * ow + cols.end];
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    if sx == 1 {
                        for (d, v) in dst[ix0..].iter_mut().zip(line) {
                            *d += v;
                        }
                    } else {
                        for (i, v) in line.iter().enumerate() {
                            dst[ix0 + i * sx] += v;
                        }
                    }
                }
            }
        }
    }
}

/// The sizes of a convolution's products: `C·kh·kw` (the unfolding's rows), `OH·OW`
/// (an image's output pixels) and `O`.
fn sizes(g: &Conv2dGeometry) -> (usize, usize, usize) {
    (
        g.im2col_depth(),
        g.out_height() * g.out_width(),
        g.out_channels(),
    )
}

/// `dst (rows × cols) = [dst +] lhs·rhs`, operands given as (slice, row stride, column
/// stride): through `gemm` where it is large, else by plain loops that allocate nothing
/// (`gemm` allocates its packing buffers in every call, which costs more than a small
/// product).
fn product(
    (rows, cols, inner): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
) {
    if rows * cols * inner >= SMALL_PRODUCT {
        return gemm_into(None, (rows, cols, inner), dst, accumulate, lhs, rhs);
    }
    let ((a, a_rs, a_cs), (b, b_rs, b_cs)) = (lhs, rhs);
    for (i, d) in dst.chunks_exact_mut(cols).take(rows).enumerate() {
        if !accumulate {
            d.fill(0.0);
        }
        for p in 0..inner {
            let factor = a[i * a_rs + p * a_cs];
            if b_cs == 1 {
                for (d, b) in d.iter_mut().zip(&b[p * b_rs..p * b_rs + cols]) {
                    *d += factor * b;
                }
            } else {
                for (j, d) in d.iter_mut().enumerate() {
                    *d += factor * b[p * b_rs + j * b_cs];
                }
            }
        }
    }
}

/// The unfolded values a thread keeps at once (512 KiB of them): its images are unfolded
/// side by side in groups of at most this many values (at least one image), which stay
/// in its caches while the product reads them.
const COLUMN_BUDGET: usize = 1 << 17;

/// The images unfolded side by side into one product.
fn group(g: &Conv2dGeometry) -> usize {
    let (depth, pixels, _) = sizes(g);
    (COLUMN_BUDGET / (depth * pixels).max(1)).clamp(1, g.batch())
}

/// Unfolds images `first..first + count` of `x` side by side into `columns`
/// (`C·kh·kw × count·OH·OW`).
fn unfold(g: &Conv2dGeometry, x: &[f32], first: usize, count: usize, columns: &mut [f32]) {
    let (x_len, pixels) = (g.input_sample_len(), g.out_height() * g.out_width());
    for i in 0..count {
        let n = first + i;
        let x_n = &x[n * x_len..(n + 1) * x_len];
        im2col(g, x_n, &mut columns[i * pixels..], count * pixels);
    }
}

/// Lays images `first..first + count` of `dy` (`O × OH·OW` each) side by side into
/// `gathered` (`O × count·OH·OW`), the layout of the unfolded product.
fn gather(g: &Conv2dGeometry, dy: &[f32], first: usize, count: usize, gathered: &mut [f32]) {
    let (_, pixels, _) = sizes(g);
    let y_len = g.output_sample_len();
    for i in 0..count {
        let dy_n = &dy[(first + i) * y_len..(first + i + 1) * y_len];
        for (o, row) in dy_n.chunks_exact(pixels).enumerate() {
            let at = o * count * pixels + i * pixels;
            gathered[at..at + pixels].copy_from_slice(row);
        }
    }
}

/// `y = conv(x, w) + b` for the whole batch (`y` written over): per task, its images
/// unfolded side by side, one product `w · columns`, then each image's output rows
/// with the bias added.
pub(crate) fn forward(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let (depth, pixels, outs) = sizes(g);
    let y_len = g.output_sample_len();
    let tasks = tasks(pool, g);
    let group = group(g);
    split_images(
        pool,
        g.batch(),
        tasks,
        y,
        |per| per * y_len,
        |first, count, y| {
            with_scratch(&COLUMNS, depth * group * pixels, |columns| {
                with_scratch(&GATHERED, outs * group * pixels, |unfolded_out| {
                    for (start, y) in (first..first + count)
                        .step_by(group)
                        .zip(y.chunks_mut(group * y_len))
                    {
                        let count = y.len() / y_len;
                        let wide = count * pixels;
                        unfold(g, x, start, count, columns);
                        product(
                            (outs, wide, depth),
                            unfolded_out,
                            false,
                            (w, depth, 1),
                            (columns, wide, 1),
                        );
                        for (i, y_n) in y.chunks_exact_mut(y_len).enumerate() {
                            for (o, row) in y_n.chunks_exact_mut(pixels).enumerate() {
                                let at = o * wide + i * pixels;
                                for (d, s) in row.iter_mut().zip(&unfolded_out[at..at + pixels]) {
                                    *d = s + b[o];
                                }
                            }
                        }
                    }
                })
            })
        },
    );
}

/// `dx = conv_inputᵀ(dy)` for the whole batch (`dx` written over): per task,
/// `wᵀ · dy` for its images side by side, folded back onto each image.
pub(crate) fn backward_input(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let (depth, pixels, outs) = sizes(g);
    let x_len = g.input_sample_len();
    let tasks = tasks(pool, g);
    let group = group(g);
    split_images(
        pool,
        g.batch(),
        tasks,
        dx,
        |per| per * x_len,
        |first, count, dx| {
            with_scratch(&COLUMNS, depth * group * pixels, |columns| {
                with_scratch(&GATHERED, outs * group * pixels, |gathered| {
                    for (start, dx) in (first..first + count)
                        .step_by(group)
                        .zip(dx.chunks_mut(group * x_len))
                    {
                        let count = dx.len() / x_len;
                        let wide = count * pixels;
                        gather(g, dy, start, count, gathered);
                        product(
                            (depth, wide, outs),
                            columns,
                            false,
                            (w, 1, depth),
                            (gathered, wide, 1),
                        );
                        for (i, dx_n) in dx.chunks_exact_mut(x_len).enumerate() {
                            col2im(g, &columns[i * pixels..], wide, dx_n);
                        }
                    }
                })
            })
        },
    );
}

/// `dw (+)= dy · columnsᵀ` and `db (+)= Σ_pixels dy` over the batch, added to the
/// gradients where `accumulate`, written over them otherwise: per task one product
/// over its images side by side, then the tasks' sums added in task order.
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
    let (depth, pixels, outs) = sizes(g);
    let tasks = tasks(pool, g);
    let group = group(g);
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
                with_scratch(&COLUMNS, depth * group * pixels, |columns| {
                    with_scratch(&GATHERED, outs * group * pixels, |gathered| {
                        for start in (first..first + count).step_by(group) {
                            let count = group.min(first + count - start);
                            let wide = count * pixels;
                            unfold(g, x, start, count, columns);
                            gather(g, dy, start, count, gathered);
                            product(
                                (outs, depth, wide),
                                pw,
                                start != first,
                                (gathered, wide, 1),
                                (columns, 1, wide),
                            );
                            for (o, sum) in pb.iter_mut().enumerate() {
                                *sum += gathered[o * wide..(o + 1) * wide].iter().sum::<f32>();
                            }
                        }
                    })
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
