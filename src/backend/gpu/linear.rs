//! Launches of `shaders/linear.wgsl`: the linear layer's forward and backward, with
//! an activation fused in.

use super::gemm::Product;
use super::kernels::Kernel;
use super::launch::Outputs;
use super::tuner::Choice;
use super::{Gpu, Grid};
use crate::backend::{Act, DeviceTensor, GradMode};
use crate::error::{Error, Result};

type T = DeviceTensor<Gpu>;

/// The smallest dimension from which a workgroup-memory kernel is used where measuring
/// is off and no subgroup kernel applies.
pub const STAGED_FROM: usize = 64;

/// Whether every view's offset is a multiple of 4, as the generated kernels' `vec4`
/// reads need.
fn aligned(views: &[&T]) -> bool {
    views.iter().all(|t| t.offset().is_multiple_of(4))
}

/// Whether the generated kernel `choice` can take `views`: a workgroup-memory one takes
/// any, a subgroup one needs them aligned.
fn takes(choice: Choice, views: &[&T]) -> bool {
    matches!(choice, Choice::Staged(_)) || aligned(views)
}

/// The kernels' `params.scalars.y` for `mode`: 1 to add to the output, 0 to write
/// over it.
fn accumulate_flag(mode: GradMode) -> f32 {
    match mode {
        GradMode::Accumulate => 1.0,
        GradMode::Overwrite => 0.0,
    }
}

/// Records the generated kernel of `choice` (subgroup or workgroup-memory) over
/// `inputs` into `outputs`, for `rows × cols` outputs.
#[allow(clippy::too_many_arguments)]
fn launch_generated(
    gpu: &Gpu,
    product: Product,
    choice: Choice,
    inputs: &[&T],
    outputs: Outputs<'_>,
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
    let (id, pipeline) = gpu.gemm_pipeline(product, choice, gated)?;
    let (x, y) = match choice {
        Choice::Generated(config) => (
            cols.div_ceil(config.block_cols() as usize),
            rows.div_ceil(config.rows as usize),
        ),
        Choice::Staged(config) => config.groups(rows, cols),
        Choice::Naive | Choice::Tiled => {
            return Err(Error::InvalidArgument(format!(
                "{} is not a generated kernel",
                choice.label()
            )))
        }
    };
    gpu.launch_pipeline(
        product.name(),
        &pipeline,
        id,
        inputs,
        outputs,
        dims,
        scalars,
        Grid::Groups { x, y },
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
        c @ (Choice::Generated(_) | Choice::Staged(_)) if takes(c, &[x, w]) => launch_generated(
            gpu,
            Product::Forward,
            c,
            &[x, w, b],
            y.into(),
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
        c @ (Choice::Generated(_) | Choice::Staged(_)) if takes(c, &[dy, w, y]) => {
            launch_generated(
                gpu,
                Product::GradInput,
                c,
                &[dy, w, y],
                dx.into(),
                dims,
                scalars,
                (n, k),
            )
        }
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

/// `dw (+)= dzᵀ · x` and `db (+)= Σ_rows dz`, with `dz = dy ⊙ act'(y)`, in one dispatch
/// of `choice` over every row of the views (the caller keeps them within the loop
/// budget). The invocations of the first block of `dw`'s columns also write `db`; where
/// `dw` has no columns, a kernel of its own writes `db`.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_weight_with(
    gpu: &Gpu,
    choice: Choice,
    dy: &T,
    x: &T,
    y: &T,
    act: Act,
    dw: &T,
    db: &T,
    mode: GradMode,
) -> Result<()> {
    let [n, k] = x.shape();
    let m = dy.cols();
    let dims = [n, k, m, act.code() as usize];
    // The third scalar's place carries db's offset (see `Outputs`).
    let scalars = [act.slope(), accumulate_flag(mode), 0.0, 0.0];
    let outputs = Outputs {
        main: dw,
        second: Some(db),
    };
    match choice {
        _ if k == 0 => gpu.launch(
            Kernel::LinearBackwardBias,
            &[dy, y],
            db,
            dims,
            scalars,
            Grid::Flat(m),
        ),
        c @ (Choice::Generated(_) | Choice::Staged(_)) if takes(c, &[dy, x, y]) => {
            launch_generated(
                gpu,
                Product::GradWeight,
                c,
                &[dy, x, y],
                outputs,
                dims,
                scalars,
                (m, k),
            )
        }
        _ => gpu.launch(
            Kernel::LinearBackwardWeight,
            &[dy, x, y],
            outputs,
            dims,
            scalars,
            Grid::Tiles { rows: m, cols: k },
        ),
    }
}

/// With `dz = dy ⊙ act'(y)` taken on the fly from `dy` and the forward output `y`:
/// `dx = dz · w` (when asked), then `dw` and `db` from `dzᵀ · x` and `Σ_rows dz` in one
/// dispatch, added to the gradients or written over them (`mode`). `y` is bound only
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
        grad_weight_with(gpu, weight_choice, &dy, &x, &y, act, dw, db, mode)?;
        mode = GradMode::Accumulate;
        first += rows;
        // An empty batch still writes its zero sums where the gradients are overwritten.
        if first >= n {
            break;
        }
    }
    Ok(())
}
