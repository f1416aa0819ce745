//! Launches of `shaders/linear.wgsl`: the linear layer's forward and backward, with
//! an activation fused in.

use super::kernels::Kernel;
use super::{Gpu, Grid};
use crate::backend::{Act, DeviceTensor, GradMode};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// Which kernel computes a linear layer's forward (a matrix product).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// One invocation per output, reading its operands straight from storage.
    Naive,
    /// 16×16 workgroups, each computing a 64×64 block of outputs (4×4 per invocation,
    /// in registers) from operand slices staged in workgroup memory.
    Tiled,
}

impl MatmulKernel {
    /// The kernel [`crate::Ops::linear_forward`] uses for `n×k · (m×k)ᵀ`: tiles
    /// where every dimension is at least [`TILED_FROM`] (on llvmpipe the tiled kernel
    /// measured 1.9–2.0 GFLOPS against the naive one's 1.2–1.4, 256² to 2048²).
    pub fn for_shape(n: usize, k: usize, m: usize) -> Self {
        if n.min(k).min(m) >= TILED_FROM {
            MatmulKernel::Tiled
        } else {
            MatmulKernel::Naive
        }
    }
}

/// The smallest dimension from which the tiled kernel is used.
pub const TILED_FROM: usize = 64;

/// `y = act(x · wᵀ + b)`, one invocation per element of `y`, with `kernel`.
pub(super) fn forward(
    gpu: &Gpu,
    kernel: MatmulKernel,
    x: &T,
    w: &T,
    b: &T,
    act: Act,
    y: &T,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = w.rows();
    gpu.check_loop("linear_forward", k, 1, || format!("an input width of {k}"))?;
    gpu.launch(
        match kernel {
            MatmulKernel::Naive => Kernel::LinearForward,
            MatmulKernel::Tiled => Kernel::LinearForwardTiled,
        },
        &[x, w, b],
        y,
        [n, k, m, act.code() as usize],
        [act.slope(), 0.0, 0.0, 0.0],
        match kernel {
            MatmulKernel::Naive => Grid::Tiles { rows: n, cols: m },
            MatmulKernel::Tiled => Grid::Blocks { rows: n, cols: m },
        },
    )
}

/// With `dz = dy ⊙ act'(y)` taken on the fly from `dy` and the forward output `y`:
/// `dx = dz · w` (when asked), then `dw` and `db` from `dzᵀ · x` and `Σ_rows dz`, added
/// to the gradients or written over them (`mode`). `y` is bound only
/// where `act` is not the identity. The sums over rows run in chunks of rows within
/// the adapter's loop budget, every chunk after the first adding to the gradients.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    gpu: &Gpu,
    x: &T,
    w: &T,
    y: Option<&T>,
    dy: &T,
    act: Act,
    dx: Option<&T>,
    dw: &T,
    db: &T,
    mode: GradMode,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = w.rows();
    let dims = [n, k, m, act.code() as usize];
    let scalars = [act.slope(), 0.0, 0.0, 0.0];
    // The kernels read y through `gate`, which ignores it for the identity, where the
    // op set passes no y: bind dy.
    let y = y.unwrap_or(dy);
    if let Some(dx) = dx {
        gpu.check_loop("linear_backward", m, 1, || {
            format!("an output width of {m}")
        })?;
        gpu.launch(
            Kernel::LinearBackwardInput,
            &[dy, w, y],
            dx,
            dims,
            scalars,
            Grid::Tiles { rows: n, cols: k },
        )?;
    }
    let chunk = gpu.loop_budget().unwrap_or(n).max(1);
    let mut first = 0;
    let mut accumulate = mode == GradMode::Accumulate;
    loop {
        let rows = chunk.min(n - first);
        let (dy, x, y) = (
            dy.slice_rows(first, rows)?,
            x.slice_rows(first, rows)?,
            y.slice_rows(first, rows)?,
        );
        let dims = [rows, k, m, act.code() as usize];
        let scalars = [act.slope(), if accumulate { 1.0 } else { 0.0 }, 0.0, 0.0];
        gpu.launch(
            Kernel::LinearBackwardWeight,
            &[&dy, &x, &y],
            dw,
            dims,
            scalars,
            Grid::Tiles { rows: m, cols: k },
        )?;
        gpu.launch(
            Kernel::LinearBackwardBias,
            &[&dy, &y],
            db,
            dims,
            scalars,
            Grid::Flat(m),
        )?;
        accumulate = true;
        first += rows;
        // An empty batch still writes its zero sums where the gradients are overwritten.
        if first >= n {
            break;
        }
    }
    Ok(())
}
