//! Launches of `shaders/linear.wgsl`: the linear layer's forward and backward, with
//! an activation fused in.

use super::gemm::{GemmConfig, Product};
use super::kernels::Kernel;
use super::tuner::Choice;
use super::{Gpu, Grid};
use crate::backend::{Act, DeviceTensor, GradMode};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// The smallest dimension from which the tiled kernel is used where measuring is off.
pub const TILED_FROM: usize = 64;

/// Whether every view's offset is a multiple of 4, as the generated kernels' `vec4`
/// reads need.
fn aligned(views: &[&T]) -> bool {
    views.iter().all(|t| t.offset().is_multiple_of(4))
}

/// The kernels' `params.scalars.y` for `mode`: 1 to add to the output, 0 to write
/// over it.
fn accumulate_flag(mode: GradMode) -> f32 {
    match mode {
        GradMode::Accumulate => 1.0,
        GradMode::Overwrite => 0.0,
    }
}

/// Records a generated kernel over `inputs` into `output`, `config.rows` output rows
/// per workgroup along `rows` and `config.block_cols()` columns along `cols`.
#[allow(clippy::too_many_arguments)]
fn launch_generated(
    gpu: &Gpu,
    product: Product,
    config: GemmConfig,
    inputs: &[&T],
    output: &T,
    dims: [usize; 4],
    scalars: [f32; 4],
    (rows, cols): (usize, usize),
) -> Result<()> {
    // The gradient products read y only to gate dy: not for the identity.
    let gated = product != Product::Forward && dims[3] != Act::Identity.code() as usize;
    let inputs = if gated || product == Product::Forward {
        inputs
    } else {
        &inputs[..2]
    };
    let (id, pipeline) = gpu.gemm_pipeline(product, config, gated)?;
    gpu.launch_pipeline(
        product.name(),
        &pipeline,
        id,
        inputs,
        output,
        dims,
        scalars,
        Grid::Groups {
            x: cols.div_ceil(config.block_cols() as usize),
            y: rows.div_ceil(config.rows as usize),
        },
    )
}

/// `y = act(x · wᵀ + b)` with the kernel the tuner chose for the shape.
pub(super) fn forward(gpu: &Gpu, x: &T, w: &T, b: &T, act: Act, y: &T) -> Result<()> {
    let [n, k] = x.shape();
    let choice = gpu.product_choice(Product::Forward, n, k, w.rows())?;
    forward_with(gpu, choice, x, w, b, act, y)
}

/// `y = act(x · wᵀ + b)` with `choice` (the naive kernel where a generated one cannot
/// take the views' offsets).
pub(super) fn forward_with(
    gpu: &Gpu,
    choice: Choice,
    x: &T,
    w: &T,
    b: &T,
    act: Act,
    y: &T,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = w.rows();
    gpu.check_loop("linear_forward", k, 1, || format!("an input width of {k}"))?;
    let dims = [n, k, m, act.code() as usize];
    let scalars = [act.slope(), 0.0, 0.0, 0.0];
    match choice {
        Choice::Generated(config) if aligned(&[x, w]) => launch_generated(
            gpu,
            Product::Forward,
            config,
            &[x, w, b],
            y,
            dims,
            scalars,
            (n, m),
        ),
        Choice::Tiled => gpu.launch(
            Kernel::LinearForwardTiled,
            &[x, w, b],
            y,
            dims,
            scalars,
            Grid::Blocks { rows: n, cols: m },
        ),
        _ => gpu.launch(
            Kernel::LinearForward,
            &[x, w, b],
            y,
            dims,
            scalars,
            Grid::Tiles { rows: n, cols: m },
        ),
    }
}

/// `dx = (dy ⊙ act'(y)) · w` with `choice`; `y` may be `dy` for the identity.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_input_with(
    gpu: &Gpu,
    choice: Choice,
    dy: &T,
    w: &T,
    y: &T,
    act: Act,
    dx: &T,
) -> Result<()> {
    let [n, m] = dy.shape();
    let k = w.cols();
    gpu.check_loop("linear_backward", m, 1, || {
        format!("an output width of {m}")
    })?;
    let dims = [n, k, m, act.code() as usize];
    let scalars = [act.slope(), 0.0, 0.0, 0.0];
    match choice {
        Choice::Generated(config) if aligned(&[dy, w, y]) => launch_generated(
            gpu,
            Product::GradInput,
            config,
            &[dy, w, y],
            dx,
            dims,
            scalars,
            (n, k),
        ),
        _ => gpu.launch(
            Kernel::LinearBackwardInput,
            &[dy, w, y],
            dx,
            dims,
            scalars,
            Grid::Tiles { rows: n, cols: k },
        ),
    }
}

/// `dw (+)= (dy ⊙ act'(y))ᵀ · x` with `choice`, over every row of the views (the caller
/// keeps them within the loop budget).
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_weight_with(
    gpu: &Gpu,
    choice: Choice,
    dy: &T,
    x: &T,
    y: &T,
    act: Act,
    dw: &T,
    mode: GradMode,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = dy.cols();
    let dims = [n, k, m, act.code() as usize];
    let flag = if mode == GradMode::Accumulate {
        1.0
    } else {
        0.0
    };
    let scalars = [act.slope(), flag, 0.0, 0.0];
    match choice {
        Choice::Generated(config) if aligned(&[dy, x, y]) => launch_generated(
            gpu,
            Product::GradWeight,
            config,
            &[dy, x, y],
            dw,
            dims,
            scalars,
            (m, k),
        ),
        _ => gpu.launch(
            Kernel::LinearBackwardWeight,
            &[dy, x, y],
            dw,
            dims,
            scalars,
            Grid::Tiles { rows: m, cols: k },
        ),
    }
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
    // The kernels read y through `gate`, which ignores it for the identity, where the
    // op set passes no y: bind dy.
    let y = y.unwrap_or(dy);
    if let Some(dx) = dx {
        let choice = gpu.product_choice(Product::GradInput, n, k, m)?;
        grad_input_with(gpu, choice, dy, w, y, act, dx)?;
    }
    let weight_choice = gpu.product_choice(Product::GradWeight, n, k, m)?;
    let chunk = gpu.loop_budget().unwrap_or(n).max(1);
    let mut first = 0;
    let mut mode = mode;
    loop {
        let rows = chunk.min(n - first);
        let (dy, x, y) = (
            dy.slice_rows(first, rows)?,
            x.slice_rows(first, rows)?,
            y.slice_rows(first, rows)?,
        );
        let dims = [rows, k, m, act.code() as usize];
        grad_weight_with(gpu, weight_choice, &dy, &x, &y, act, dw, mode)?;
        gpu.launch(
            Kernel::LinearBackwardBias,
            &[&dy, &y],
            db,
            dims,
            [act.slope(), accumulate_flag(mode), 0.0, 0.0],
            Grid::Flat(m),
        )?;
        mode = GradMode::Accumulate;
        first += rows;
        // An empty batch still writes its zero sums where the gradients are overwritten.
        if first >= n {
            break;
        }
    }
    Ok(())
}
