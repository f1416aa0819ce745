//! Launches of `shaders/cross_entropy.wgsl`: the fused softmax cross-entropy loss and
//! its gradient.

use crate::backend::gpu::kernels::params::CrossEntropyParams;
use crate::backend::gpu::kernels::table::{Kernel, FLAT};
use crate::backend::gpu::runtime::context::{to_u32, Gpu, LOOP_BUDGET};
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::{DeviceTensor, Reduction};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// Fails where a row of `c` classes is longer than the adapter's kernels can loop over
/// (the gradient passes over a row three times).
fn check_classes(gpu: &Gpu, op: &str, c: usize) -> Result<()> {
    gpu.check_loop(op, c, 3, || format!("{c} classes per row"))
}

/// The reduced loss into the single element `out`, in one workgroup per chunk of rows
/// (each invocation loops over at most [`LOOP_BUDGET`] values), the chunks after the
/// first adding to `out`.
pub(crate) fn loss(gpu: &Gpu, logits: &T, labels: &T, reduction: Reduction, out: &T) -> Result<()> {
    let [n, c] = logits.shape();
    check_classes(gpu, "cross_entropy_loss", c)?;
    let scale = reduction.loss_scale(n);
    let rows_per_chunk = (FLAT * LOOP_BUDGET / (2 * c + 1)).max(1);
    let mut first = 0;
    loop {
        let rows = rows_per_chunk.min(n - first);
        gpu.launch(
            Kernel::CrossEntropyLoss,
            &[
                &logits.slice_rows(first, rows)?,
                &labels.slice_rows(first, rows)?,
            ],
            out,
            CrossEntropyParams {
                rows: to_u32("rows", rows)?,
                classes: to_u32("classes", c)?,
                accumulate: u32::from(first > 0),
                scale,
                ..Default::default()
            },
            Grid::Single,
        )?;
        first += rows;
        if first >= n {
            return Ok(());
        }
    }
}

/// The gradient with respect to the logits, one invocation per row.
pub(crate) fn grad(
    gpu: &Gpu,
    logits: &T,
    labels: &T,
    reduction: Reduction,
    grad: &T,
) -> Result<()> {
    let [n, c] = logits.shape();
    check_classes(gpu, "cross_entropy_grad", c)?;
    let scale = reduction.loss_scale(n);
    gpu.launch(
        Kernel::CrossEntropyGrad,
        &[logits, labels],
        grad,
        CrossEntropyParams {
            rows: to_u32("rows", n)?,
            classes: to_u32("classes", c)?,
            scale,
            ..Default::default()
        },
        Grid::Flat(n),
    )
}
