//! Launches of `shaders/linear.wgsl`: the linear layer's forward and backward.

use super::{Gpu, Grid, Kernel};
use crate::backend::DeviceTensor;
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// `y = x · wᵀ + b`, one invocation per element of `y`.
pub(super) fn forward(gpu: &Gpu, x: &T, w: &T, b: &T, y: &T) -> Result<()> {
    let [n, k] = x.shape();
    let m = w.rows();
    gpu.launch(
        Kernel::LinearForward,
        &[x, w, b],
        y,
        [n, k, m],
        0.0,
        Grid::Tiles { rows: n, cols: m },
    )
}

/// `dx = dy · w` (when asked), `dw += dyᵀ · x`, `db += Σ_rows dy`: three launches.
pub(super) fn backward(
    gpu: &Gpu,
    x: &T,
    w: &T,
    dy: &T,
    dx: Option<&T>,
    dw: &T,
    db: &T,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = w.rows();
    let dims = [n, k, m];
    if let Some(dx) = dx {
        gpu.launch(
            Kernel::LinearBackwardInput,
            &[dy, w],
            dx,
            dims,
            0.0,
            Grid::Tiles { rows: n, cols: k },
        )?;
    }
    gpu.launch(
        Kernel::LinearBackwardWeight,
        &[dy, x],
        dw,
        dims,
        0.0,
        Grid::Tiles { rows: m, cols: k },
    )?;
    gpu.launch(
        Kernel::LinearBackwardBias,
        &[dy],
        db,
        dims,
        0.0,
        Grid::Flat(m),
    )
}
