//! Max pooling and nearest-neighbour upsampling on the [`Cpu`](crate::Cpu) backend:
//! the reference's loops ([`images`]), run on chunks of images in parallel. Each image
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

/// The widths of a pool's input and output rows.
fn pool_widths(g: &Pool2dGeometry) -> (usize, usize) {
    (g.input_len() / g.batch(), g.output_len() / g.batch())
}

/// The widths of an upsampling's input and output rows.
fn upsample_widths(g: &UpsampleGeometry) -> (usize, usize) {
    (g.input_len() / g.batch(), g.output_len() / g.batch())
}

/// [`images::max_pool2d_forward`] on chunks of images.
pub(crate) fn max_pool_forward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    x: &[f32],
    y: &mut [f32],
) {
    let (i, o) = pool_widths(g);
    let part = |g: &Pool2dGeometry, n| g.with_batch("max_pool2d", n).ok();
    per_images(pool, g, g.batch(), ([i], [x]), (o, y), part, |g, [x], y| {
        images::max_pool2d_forward(g, x, y)
    })
}

/// [`images::max_pool2d_backward`] on chunks of images.
pub(crate) fn max_pool_backward(
    pool: Option<&ThreadPool>,
    g: &Pool2dGeometry,
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let (i, o) = pool_widths(g);
    let part = |g: &Pool2dGeometry, n| g.with_batch("max_pool2d", n).ok();
    per_images(
        pool,
        g,
        g.batch(),
        ([i, o], [x, dy]),
        (i, dx),
        part,
        |g, [x, dy], dx| images::max_pool2d_backward(g, x, dy, dx),
    )
}

/// [`images::upsample_nearest_forward`] on chunks of images.
pub(crate) fn upsample_forward(
    pool: Option<&ThreadPool>,
    g: &UpsampleGeometry,
    x: &[f32],
    y: &mut [f32],
) {
    let (i, o) = upsample_widths(g);
    let part = |g: &UpsampleGeometry, n| g.with_batch("upsample_nearest", n).ok();
    per_images(pool, g, g.batch(), ([i], [x]), (o, y), part, |g, [x], y| {
        images::upsample_nearest_forward(g, x, y)
    })
}

/// [`images::upsample_nearest_backward`] on chunks of images.
pub(crate) fn upsample_backward(
    pool: Option<&ThreadPool>,
    g: &UpsampleGeometry,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (i, o) = upsample_widths(g);
    let part = |g: &UpsampleGeometry, n| g.with_batch("upsample_nearest", n).ok();
    per_images(
        pool,
        g,
        g.batch(),
        ([o], [dy]),
        (i, dx),
        part,
        |g, [dy], dx| images::upsample_nearest_backward(g, dy, dx),
    )
}
