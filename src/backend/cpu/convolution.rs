//! The 2-D convolution on the [`Cpu`](crate::Cpu) backend, as products: each image is
//! unfolded into its columns (im2col: one row per weight element `(c, ky, kx)`, one
//! column per output pixel, zeros where a tap falls in the padding), then
//! `y = w · columns + b`, `dcolumns = wᵀ · dy` folded back onto the input (col2im),
//! and `dw += dy · columnsᵀ`, each through `gemm`. The images of a batch are split
//! between the backend's threads; each thread unfolds its images side by side into one
//! matrix (a scratch buffer of its own, kept from call to call) in groups small enough
//! to stay in its caches, so that each op is a few large products per thread, and sums
//! its weight gradients into a slice of the caller's scratch, which are then added in
//! thread order (so the result does not depend on scheduling). minidl allocates
//! nothing in a step once the buffers have grown; the `gemm` crate allocates its
//! packing buffers in each product it computes (a few allocations per product, so a
//! fixed number per step). Convolutions of stride 1 with few output channels are
//! computed without the unfolding instead (`direct_convolution`; the backend picks).

use std::cell::RefCell;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::backend::cpu::matmul::{gemm_into, SMALL_PRODUCT};
use crate::backend::cpu::scratch::with_scratch;
use crate::backend::Conv2dGeometry;

/// Convolutions of fewer multiply-adds than this run on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;

thread_local! {
    /// A thread's unfolded images (`C·kh·kw × images·OH·OW`), reused from call to call.
    pub(super) static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A thread's padded image (the unfolding of stride-1 convolutions).
    pub(super) static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A thread's output-shaped matrix (`O × images·OH·OW`), reused from call to call.
    pub(super) static GATHERED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's per-task weight and bias gradient sums.
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The number of tasks a batch is split into: one per thread, at most one per image,
/// and one for small convolutions.
pub(super) fn tasks(pool: Option<&ThreadPool>, g: &Conv2dGeometry) -> usize {
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
pub(super) fn split_images<F>(
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

/// How a convolution's images are unfolded: `row` values for each output row and `span`
/// for each image. A convolution of stride 1 is unfolded at the width of its padded
/// input (`padded` gives that input's height, width and plane length), so that each
/// unfolded row is one contiguous run of the padded image, copied at once; the
/// `row − OW` values past each output row are computed and dropped (their gradients are
/// zeros). Other strides unfold output pixel by output pixel (`im2col`).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    row: usize,
    pub(super) span: usize,
    pub(super) padded: Option<(usize, usize, usize)>,
}

pub(super) fn layout(g: &Conv2dGeometry) -> Layout {
    let (oh, ow) = g.output_size();
    if g.stride() != (1, 1) {
        return Layout {
            row: ow,
            span: oh * ow,
            padded: None,
        };
    }
    let ((h, w), (ph, pw), (_, kw), (_, dw)) =
        (g.input_size(), g.padding(), g.kernel(), g.dilation());
    let (rows, cols) = (h + 2 * ph, w + 2 * pw);
    // The last unfolded row reads `(kw − 1)·dw` values past the padded plane.
    let plane = rows * cols + (kw - 1) * dw;
    Layout {
        row: cols,
        span: oh * cols,
        padded: Some((rows, cols, plane)),
    }
}

/// Copies image `x` (`C × H × W`) into `padded` (`C` planes of the layout's padded size,
/// zeros around and after it).
pub(super) fn pad(
    g: &Conv2dGeometry,
    (_, cols, plane): (usize, usize, usize),
    x: &[f32],
    padded: &mut [f32],
) {
    let ((h, w), (ph, pw)) = (g.input_size(), g.padding());
    for (src, dst) in x.chunks_exact(h * w).zip(padded.chunks_exact_mut(plane)) {
        dst.fill(0.0);
        for (line, out) in src.chunks_exact(w).zip(dst[ph * cols..].chunks_mut(cols)) {
            out[pw..pw + w].copy_from_slice(line);
        }
    }
}

/// The offset in a padded plane that unfolded row `(ky, kx)` starts at.
pub(super) fn tap_start(g: &Conv2dGeometry, cols: usize, ky: usize, kx: usize) -> usize {
    let (dh, dw) = g.dilation();
    ky * dh * cols + kx * dw
}

/// [`im2col`] at the padded width: row `r = (c, ky, kx)` of the unfolding is the
/// padded plane `c` from that tap's offset on.
fn unfold_padded(
    g: &Conv2dGeometry,
    padded: (usize, usize, usize),
    x: &[f32],
    scratch: &mut [f32],
    columns: &mut [f32],
    stride: usize,
) {
    let (_, cols, plane) = padded;
    let (kh, kw) = g.kernel();
    let span = g.out_height() * cols;
    pad(g, padded, x, scratch);
    for (c, image) in scratch
        .chunks_exact(plane)
        .enumerate()
        .take(g.in_channels())
    {
        for ky in 0..kh {
            for kx in 0..kw {
                let (r, start) = ((c * kh + ky) * kw + kx, tap_start(g, cols, ky, kx));
                columns[r * stride..r * stride + span].copy_from_slice(&image[start..start + span]);
            }
        }
    }
}

/// [`col2im`] at the padded width: each unfolded row added onto its padded plane from
/// its tap's offset on, then the image cut out of the padding into `dx` (written over).
fn fold_padded(
    g: &Conv2dGeometry,
    padded: (usize, usize, usize),
    columns: &[f32],
    stride: usize,
    scratch: &mut [f32],
    dx: &mut [f32],
) {
    let (_, cols, plane) = padded;
    let ((h, w), (ph, pw), (kh, kw)) = (g.input_size(), g.padding(), g.kernel());
    let span = g.out_height() * cols;
    for (c, image) in scratch
        .chunks_exact_mut(plane)
        .enumerate()
        .take(g.in_channels())
    {
        image.fill(0.0);
        for ky in 0..kh {
            for kx in 0..kw {
                let (r, start) = ((c * kh + ky) * kw + kx, tap_start(g, cols, ky, kx));
                let src = &columns[r * stride..r * stride + span];
                for (d, v) in image[start..start + span].iter_mut().zip(src) {
                    *d += v;
                }
            }
        }
        let out = &mut dx[c * h * w..(c + 1) * h * w];
        for (iy, line) in out.chunks_exact_mut(w).enumerate() {
            let at = (iy + ph) * cols + pw;
            line.copy_from_slice(&image[at..at + w]);
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
    let (depth, _, _) = sizes(g);
    (COLUMN_BUDGET / (depth * layout(g).span).max(1)).clamp(1, g.batch())
}

/// Unfolds images `first..first + count` of `x` side by side into `columns`
/// (`C·kh·kw × count·OH·OW`).
fn unfold(g: &Conv2dGeometry, x: &[f32], first: usize, count: usize, columns: &mut [f32]) {
    let (x_len, l) = (g.input_sample_len(), layout(g));
    for i in 0..count {
        let n = first + i;
        let x_n = &x[n * x_len..(n + 1) * x_len];
        let at = &mut columns[i * l.span..];
        match l.padded {
            Some(padded) => with_scratch(&PADDED, g.in_channels() * padded.2, |scratch| {
                unfold_padded(g, padded, x_n, scratch, at, count * l.span)
            }),
            None => im2col(g, x_n, at, count * l.span),
        }
    }
}

/// Folds the unfolded gradient of images laid side by side (`count` of them, from
/// `columns`) back onto each image of `dx` (written over).
fn fold(g: &Conv2dGeometry, columns: &[f32], count: usize, dx: &mut [f32]) {
    let (x_len, l) = (g.input_sample_len(), layout(g));
    for (i, dx_n) in dx.chunks_exact_mut(x_len).enumerate().take(count) {
        let at = &columns[i * l.span..];
        match l.padded {
            Some(padded) => with_scratch(&PADDED, g.in_channels() * padded.2, |scratch| {
                fold_padded(g, padded, at, count * l.span, scratch, dx_n)
            }),
            None => col2im(g, at, count * l.span, dx_n),
        }
    }
}

/// Lays images `first..first + count` of `dy` (`O × OH·OW` each) side by side into
/// `gathered` (`O × count·OH·OW`), the layout of the unfolded product.
fn gather(g: &Conv2dGeometry, dy: &[f32], first: usize, count: usize, gathered: &mut [f32]) {
    let (_, pixels, _) = sizes(g);
    let (y_len, l, ow) = (g.output_sample_len(), layout(g), g.out_width());
    for i in 0..count {
        let dy_n = &dy[(first + i) * y_len..(first + i + 1) * y_len];
        for (o, plane) in dy_n.chunks_exact(pixels).enumerate() {
            let at = o * count * l.span + i * l.span;
            let dst = &mut gathered[at..at + l.span];
            if l.row == ow {
                dst.copy_from_slice(plane);
                continue;
            }
            // The values past each output row get zero gradients.
            for (out, line) in dst.chunks_exact_mut(l.row).zip(plane.chunks_exact(ow)) {
                out[..ow].copy_from_slice(line);
                out[ow..].fill(0.0);
            }
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
    let (y_len, l, ow) = (g.output_sample_len(), layout(g), g.out_width());
    let tasks = tasks(pool, g);
    let group = group(g);
    split_images(
        pool,
        g.batch(),
        tasks,
        y,
        |per| per * y_len,
        |first, count, y| {
            with_scratch(&COLUMNS, depth * group * l.span, |columns| {
                with_scratch(&GATHERED, outs * group * l.span, |unfolded_out| {
                    for (start, y) in (first..first + count)
                        .step_by(group)
                        .zip(y.chunks_mut(group * y_len))
                    {
                        let count = y.len() / y_len;
                        let wide = count * l.span;
                        unfold(g, x, start, count, columns);
                        product(
                            (outs, wide, depth),
                            unfolded_out,
                            false,
                            (w, depth, 1),
                            (columns, wide, 1),
                        );
                        for (i, y_n) in y.chunks_exact_mut(y_len).enumerate() {
                            for (o, plane) in y_n.chunks_exact_mut(pixels).enumerate() {
                                let at = o * wide + i * l.span;
                                let src = unfolded_out[at..at + l.span].chunks_exact(l.row);
                                for (line, src) in plane.chunks_exact_mut(ow).zip(src) {
                                    for (d, s) in line.iter_mut().zip(src) {
                                        *d = s + b[o];
                                    }
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
    let (depth, _, outs) = sizes(g);
    let (x_len, span) = (g.input_sample_len(), layout(g).span);
    let tasks = tasks(pool, g);
    let group = group(g);
    split_images(
        pool,
        g.batch(),
        tasks,
        dx,
        |per| per * x_len,
        |first, count, dx| {
            with_scratch(&COLUMNS, depth * group * span, |columns| {
                with_scratch(&GATHERED, outs * group * span, |gathered| {
                    for (start, dx) in (first..first + count)
                        .step_by(group)
                        .zip(dx.chunks_mut(group * x_len))
                    {
                        let count = dx.len() / x_len;
                        let wide = count * span;
                        gather(g, dy, start, count, gathered);
                        product(
                            (depth, wide, outs),
                            columns,
                            false,
                            (w, 1, depth),
                            (gathered, wide, 1),
                        );
                        fold(g, columns, count, dx);
                    }
                })
            })
        },
    );
}

/// `dw (+)= dy · columnsᵀ` and `db (+)= Σ_pixels dy` over the batch, added to the
/// gradients where `accumulate`, written over them otherwise: per task one product
/// over its images side by side, summed by [`sum_weight_partials`].
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
    let (depth, _, outs) = sizes(g);
    let span = layout(g).span;
    let group = group(g);
    sum_weight_partials(pool, g, dw, db, accumulate, |first, count, pw, pb| {
        with_scratch(&COLUMNS, depth * group * span, |columns| {
            with_scratch(&GATHERED, outs * group * span, |gathered| {
                for start in (first..first + count).step_by(group) {
                    let count = group.min(first + count - start);
                    let wide = count * span;
                    unfold(g, x, start, count, columns);
                    gather(g, dy, start, count, gathered);
                    product(
                        (outs, depth, wide),
                        pw,
                        true,
                        (gathered, wide, 1),
                        (columns, 1, wide),
                    );
                    for (o, sum) in pb.iter_mut().enumerate() {
                        *sum += gathered[o * wide..(o + 1) * wide].iter().sum::<f32>();
                    }
                }
            })
        })
    });
}

/// Runs `f(first_image, image_count, dw_sum, db_sum)` for each task of the batch (see
/// [`split_images`]), each adding its images' weight and bias gradients onto sums of
/// its own that start at zero, then adds the tasks' sums onto `dw` and `db` in task
/// order (or writes them over, unless `accumulate`), so that the result does not
/// depend on scheduling.
pub(super) fn sum_weight_partials<F>(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    dw: &mut [f32],
    db: &mut [f32],
    accumulate: bool,
    f: F,
) where
    F: Fn(usize, usize, &mut [f32], &mut [f32]) + Sync,
{
    let (weights, outs) = (dw.len(), db.len());
    let tasks = tasks(pool, g);
    let part = weights + outs;
    with_scratch(&PARTIALS, tasks * part, |partials| {
        split_images(
            pool,
            g.batch(),
            tasks,
            partials,
            |_| part,
            |first, count, partial| {
                partial.fill(0.0);
                let (pw, pb) = partial.split_at_mut(weights);
                f(first, count, pw, pb)
            },
        );
        let used = g.batch().div_ceil(g.batch().div_ceil(tasks));
        for (t, partial) in partials.chunks_exact(part).take(used).enumerate() {
            let (pw, pb) = partial.split_at(weights);
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
