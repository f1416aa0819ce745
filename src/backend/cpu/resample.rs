//! Max and average pooling and nearest-neighbour upsampling on the [`Cpu`](crate::Cpu) backend,
//! on chunks of images in parallel: upsampling row by row (an input row spread into
//! one output row, copied to the others; the gradient summed in the reference's
//! order; runs of eight values at a time for a scale of 2), max pooling by a loop over each window's rows and columns (its range
//! computed once, instead of a test per tap) that scans in the reference's order and
//! keeps its rule; average pooling by the reference's own loops. Every way, each image
//! is computed exactly as the reference computes it, so the results are the
//! reference's bit for bit.

use rayon::ThreadPool;

use crate::backend::cpu::parallel::for_each_rows;
use crate::backend::reference::images;
use crate::backend::{Pool2dGeometry, UpsampleGeometry};

/// Runs `f(geometry of the chunk, inputs, output)` over chunks of whole images:
/// `in_widths` and `out_width` are per image, `with_batch` gives the geometry of a
/// chunk of that many images.
fn per_images<G, const N: usize>(
    pool: Option<&ThreadPool>,
    g: &G,
    batch: usize,
    (in_widths, inputs): ([usize; N], [&[f32]; N]),
    (out_width, out): (usize, &mut [f32]),
    with_batch: impl Fn(&G, usize) -> Option<G> + Send + Sync,
    f: impl Fn(&G, [&[f32]; N], &mut [f32]) + Send + Sync,
) where
    G: Sync,
{
    for_each_rows(pool, batch, in_widths, inputs, out_width, out, |ins, o| {
        let count = o.len() / out_width.max(1);
        if count == batch {
            f(g, ins, o)
        } else if let Some(part) = with_batch(g, count) {
            f(&part, ins, o)
        }
    })
}

/// The input positions `start..end` that window `o` of an axis covers: `o·stride −
/// padding` and the `kernel` after it, clipped to the input.
fn window(o: usize, kernel: usize, stride: usize, padding: usize, input: usize) -> (usize, usize) {
    let first = o * stride;
    (
        first.saturating_sub(padding).min(input),
        (first + kernel).saturating_sub(padding).min(input),
    )
}

/// The offset in `plane` (`w` wide) of the pixel that the window of rows `rows` and
/// columns `cols` takes: the first maximum in row-major order, or the last NaN (the
/// rule of
/// [`images::max_pool2d_forward`](crate::backend::reference::images::max_pool2d_forward)).
/// Branch-free selection: the comparisons of
/// random data would mispredict half the time.
#[inline]
fn argmax(plane: &[f32], w: usize, rows: (usize, usize), cols: (usize, usize)) -> usize {
    let mut best = rows.0 * w + cols.0;
    let mut max = plane[best];
    for iy in rows.0..rows.1 {
        let start = iy * w + cols.0;
        for (i, &v) in plane[start..iy * w + cols.1].iter().enumerate() {
            let take = v > max || v.is_nan();
            best = if take { start + i } else { best };
            max = if take { v } else { max };
        }
    }
    best
}

/// Calls `f(plane, output index in the plane, argmax offset in the plane)` for every
/// output of the pool of geometry `g` over `x`, planes and outputs in row-major order.
fn for_each_argmax(g: &Pool2dGeometry, x: &[f32], mut f: impl FnMut(usize, usize, usize)) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let ((kh, kw), (sh, sw), (ph, pw)) = (g.kernel(), g.stride(), g.padding());
    for (p, plane) in x.chunks_exact(h * w).enumerate().take(g.planes()) {
        for oy in 0..oh {
            let rows = window(oy, kh, sh, ph, h);
            for ox in 0..ow {
                let cols = window(ox, kw, sw, pw, w);
                f(p, oy * ow + ox, argmax(plane, w, rows, cols));
            }
        }
    }
}

/// Whether `g` is the common 2×2 window of stride 2 without padding, whose windows
/// tile the image: [`halving_row`] computes it a row at a time, in a loop the
/// compiler vectorizes.
fn is_halving(g: &Pool2dGeometry) -> bool {
    (g.kernel(), g.stride(), g.padding()) == ((2, 2), (2, 2), (0, 0))
}

/// One output row of a 2×2, stride-2 pool from its two input rows (`upper`, `lower`,
/// `2·ow` values each): each output's maximum into `max` and which of its four pixels
/// it took into `code` (0, 1 upper; 2, 3 lower), by the rule of
/// [`images::max_pool2d_forward`](crate::backend::reference::images::max_pool2d_forward)
/// in its scan order.
fn halving_row(upper: &[f32], lower: &[f32], max: &mut [f32], code: &mut [u8]) {
    let pairs = upper.chunks_exact(2).zip(lower.chunks_exact(2));
    for ((u, l), (m, k)) in pairs.zip(max.iter_mut().zip(code.iter_mut())) {
        let (mut best, mut at) = (u[0], 0u8);
        for (v, i) in [(u[1], 1u8), (l[0], 2), (l[1], 3)] {
            let take = v > best || v.is_nan();
            best = if take { v } else { best };
            at = if take { i } else { at };
        }
        *m = best;
        *k = at;
    }
}

/// The two input rows (`2·ow` values each, of a plane `w` wide) that output row `oy` of
/// a 2×2, stride-2 pool reads.
fn window_rows(plane: &[f32], w: usize, ow: usize, oy: usize) -> (&[f32], &[f32]) {
    let top = 2 * oy * w;
    (&plane[top..top + 2 * ow], &plane[top + w..top + w + 2 * ow])
}

/// The widest output row [`halving_row`]'s codes are kept for on the stack; wider rows
/// take the general path.
const HALVING_MAX_WIDTH: usize = 512;

/// Max pooling on chunks of images, bit for bit
/// [`images::max_pool2d_forward`](crate::backend::reference::images::max_pool2d_forward).
pub(crate) fn max_pool_forward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    x: &[f32],
    y: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &Pool2dGeometry, n| g.with_batch("max_pool2d", n).ok();
    per_images(pool, g, g.batch(), ([i], [x]), (o, y), part, |g, [x], y| {
        let (h, w) = g.input_size();
        let (oh, ow) = g.output_size();
        if is_halving(g) && ow <= HALVING_MAX_WIDTH {
            let mut code = [0u8; HALVING_MAX_WIDTH];
            for (plane, out) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
                for (oy, row) in out.chunks_exact_mut(ow).enumerate() {
                    let (upper, lower) = window_rows(plane, w, ow, oy);
                    halving_row(upper, lower, row, &mut code[..ow]);
                }
            }
            return;
        }
        let outputs = g.output_len() / g.planes();
        for_each_argmax(g, x, |p, at, best| {
            y[p * outputs + at] = x[p * h * w + best]
        });
    })
}

/// The max pool's input gradient on chunks of images, bit for bit
/// [`images::max_pool2d_backward`](crate::backend::reference::images::max_pool2d_backward).
pub(crate) fn max_pool_backward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &Pool2dGeometry, n| g.with_batch("max_pool2d", n).ok();
    let widths = ([i, o], [x, dy]);
    per_images(
        pool,
        g,
        g.batch(),
        widths,
        (i, dx),
        part,
        |g, [x, dy], dx| {
            let (h, w) = g.input_size();
            let (oh, ow) = g.output_size();
            dx.fill(0.0);
            if is_halving(g) && ow <= HALVING_MAX_WIDTH {
                // The windows tile the image: each pixel is taken by at most one
                // output, so its gradient is that output's or 0, written without a sum.
                let (mut max, mut code) = ([0f32; HALVING_MAX_WIDTH], [0u8; HALVING_MAX_WIDTH]);
                let planes = x.chunks_exact(h * w).zip(dy.chunks_exact(oh * ow));
                for ((plane, grads), out) in planes.zip(dx.chunks_exact_mut(h * w)) {
                    for (oy, g_row) in grads.chunks_exact(ow).enumerate() {
                        let (upper, lower) = window_rows(plane, w, ow, oy);
                        halving_row(upper, lower, &mut max[..ow], &mut code[..ow]);
                        let top = 2 * oy * w;
                        let (above, below) = out[top..top + 2 * w].split_at_mut(w);
                        let targets = above.chunks_exact_mut(2).zip(below.chunks_exact_mut(2));
                        for (((u, l), &k), &d) in targets.zip(&code[..ow]).zip(g_row) {
                            let pick = |i: u8| if k == i { d } else { 0.0 };
                            (u[0], u[1], l[0], l[1]) = (pick(0), pick(1), pick(2), pick(3));
                        }
                    }
                }
                return;
            }
            let outputs = g.output_len() / g.planes();
            for_each_argmax(g, x, |p, at, best| {
                dx[p * h * w + best] += dy[p * outputs + at]
            });
        },
    )
}

/// Average pooling on chunks of images: the reference's loops on each chunk, so bit
/// for bit [`images::avg_pool2d_forward`](crate::backend::reference::images::avg_pool2d_forward).
pub(crate) fn avg_pool_forward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    x: &[f32],
    y: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &Pool2dGeometry, n| g.with_batch("avg_pool2d", n).ok();
    per_images(pool, g, g.batch(), ([i], [x]), (o, y), part, |g, [x], y| {
        images::avg_pool2d_forward(g, x, y)
    })
}

/// The average pool's input gradient on chunks of images, bit for bit
/// [`images::avg_pool2d_backward`](crate::backend::reference::images::avg_pool2d_backward).
pub(crate) fn avg_pool_backward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &Pool2dGeometry, n| g.with_batch("avg_pool2d", n).ok();
    per_images(
        pool,
        g,
        g.batch(),
        ([o], [dy]),
        (i, dx),
        part,
        |g, [dy], dx| images::avg_pool2d_backward(g, dy, dx),
    )
}

/// The input values spread at a time by [`spread_pairs`] and summed by [`add_pairs`]
/// (so that the compiler keeps them in vector registers).
const PAIR_RUN: usize = 8;

/// `out[2i] = out[2i + 1] = row[i]`: one input row spread over an output row of twice
/// its width, as upsampling by 2 does.
fn spread_pairs(row: &[f32], out: &mut [f32]) {
    let mut runs = out.chunks_exact_mut(2 * PAIR_RUN);
    let mut values = row.chunks_exact(PAIR_RUN);
    for (out, values) in (&mut runs).zip(&mut values) {
        let values: &[f32; PAIR_RUN] = values.try_into().expect("one run");
        let spread: [f32; 2 * PAIR_RUN] = std::array::from_fn(|j| values[j / 2]);
        out.copy_from_slice(&spread);
    }
    for (pair, &v) in runs
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(values.remainder())
    {
        pair.fill(v);
    }
}

/// `sum[i] += line[2i]`, then `sum[i] += line[2i + 1]`: one output row's gradient added
/// onto the input row it was spread from by upsampling by 2, in the reference's order.
fn add_pairs(line: &[f32], sum: &mut [f32]) {
    let mut runs = line.chunks_exact(2 * PAIR_RUN);
    let mut sums = sum.chunks_exact_mut(PAIR_RUN);
    for (run, sums) in (&mut runs).zip(&mut sums) {
        let run: &[f32; 2 * PAIR_RUN] = run.try_into().expect("one run");
        for (j, acc) in sums.iter_mut().enumerate() {
            *acc += run[2 * j];
            *acc += run[2 * j + 1];
        }
    }
    for (acc, pair) in sums
        .into_remainder()
        .iter_mut()
        .zip(runs.remainder().chunks_exact(2))
    {
        *acc += pair[0];
        *acc += pair[1];
    }
}

/// Upsampling on chunks of images, bit for bit
/// [`upsample_nearest_forward`](crate::backend::reference::images::upsample_nearest_forward).
pub(crate) fn upsample_forward(
    pool: Option<&ThreadPool>,
    g: &UpsampleGeometry,
    x: &[f32],
    y: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &UpsampleGeometry, n| g.with_batch("upsample_nearest", n).ok();
    per_images(pool, g, g.batch(), ([i], [x]), (o, y), part, |g, [x], y| {
        let ((_, w), (_, ow), s) = (g.input_size(), g.output_size(), g.scale());
        // Each input row becomes `s` equal output rows: the first spread out, the
        // others copies of it.
        for (row, out) in x.chunks_exact(w).zip(y.chunks_exact_mut(s * ow)) {
            let (first, rest) = out.split_at_mut(ow);
            if s == 2 {
                spread_pairs(row, first);
            } else {
                for (spread, &v) in first.chunks_exact_mut(s).zip(row) {
                    spread.fill(v);
                }
            }
            for copy in rest.chunks_exact_mut(ow) {
                copy.copy_from_slice(first);
            }
        }
    })
}

/// The upsampling's input gradient on chunks of images, bit for bit
/// [`upsample_nearest_backward`](crate::backend::reference::images::upsample_nearest_backward).
pub(crate) fn upsample_backward(
    pool: Option<&ThreadPool>,
    g: &UpsampleGeometry,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (i, o) = (g.input_sample_len(), g.output_sample_len());
    let part = |g: &UpsampleGeometry, n| g.with_batch("upsample_nearest", n).ok();
    per_images(
        pool,
        g,
        g.batch(),
        ([o], [dy]),
        (i, dx),
        part,
        |g, [dy], dx| {
            let ((_, w), (_, ow), s) = (g.input_size(), g.output_size(), g.scale());
            // The sums of the reference, in its order: output rows a, then columns b.
            for (sum, rows) in dx.chunks_exact_mut(w).zip(dy.chunks_exact(s * ow)) {
                sum.fill(0.0);
                for line in rows.chunks_exact(ow) {
                    if s == 2 {
                        add_pairs(line, sum);
                        continue;
                    }
                    for (acc, block) in sum.iter_mut().zip(line.chunks_exact(s)) {
                        for v in block {
                            *acc += v;
                        }
                    }
                }
            }
        },
    )
}
