//! The linear layer's launches: its forward and backward with an activation fused in,
//! each product on the kernel the products module chooses (the plain kernels of
//! `shaders/linear.wgsl` or a generated one), and the public entry points that run a
//! product on a chosen kernel or measure them all.

use crate::backend::gpu::kernels::params::LinearParams;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::products::{fixed_choice, Choice, Product, ProductShape};
use crate::backend::gpu::runtime::context::{to_u32, Gpu};
use crate::backend::gpu::runtime::launch::{Grid, Outputs};
use crate::backend::{check, Act, Backend, DeviceTensor, GradMode};
use crate::error::{Error, Result};

type T = DeviceTensor<Gpu>;

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

/// The parameter block of a product over `x: n×k`, `w: m×k` with `act` fused in,
/// adding to the outputs where `mode` accumulates.
fn params(n: usize, k: usize, m: usize, act: Act, mode: GradMode) -> Result<LinearParams> {
    Ok(LinearParams {
        n: to_u32("rows", n)?,
        k: to_u32("input width", k)?,
        m: to_u32("output width", m)?,
        act: act.code(),
        slope: act.slope(),
        accumulate: u32::from(mode == GradMode::Accumulate),
        ..Default::default()
    })
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
    params: LinearParams,
    (rows, cols): (usize, usize),
) -> Result<()> {
    // The gradient products read y only to gate dy: not for the identity.
    let gated = product != Product::Forward && params.act != Act::Identity.code();
    let inputs = if gated || product == Product::Forward {
        inputs
    } else {
        &inputs[..2]
    };
    let (id, pipeline) = gpu.gemm_pipeline(product, choice, gated)?;
    let (x, y) = match choice {
        Choice::Subgroup(config) => (
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
        params,
        Grid::Groups { x, y },
    )
}

/// `y = act(x · wᵀ + b)` with the kernel the tuner chose for the shape.
pub(crate) fn forward(gpu: &Gpu, x: &T, w: &T, b: &T, act: Act, y: &T) -> Result<()> {
    let [n, k] = x.shape();
    let choice = product_choice(gpu, Product::Forward, n, k, w.rows())?;
    forward_with(gpu, choice, x, w, b, act, y)
}

/// `y = act(x · wᵀ + b)` with `choice` (the naive kernel where a generated one cannot
/// take the views' offsets).
pub(crate) fn forward_with(
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
    let p = params(n, k, m, act, GradMode::Overwrite)?;
    match choice {
        c @ (Choice::Subgroup(_) | Choice::Staged(_)) if takes(c, &[x, w]) => {
            launch_generated(gpu, Product::Forward, c, &[x, w, b], y.into(), p, (n, m))
        }
        Choice::Tiled => gpu.launch(
            Kernel::LinearForwardTiled,
            &[x, w, b],
            y,
            p,
            Grid::Blocks { rows: n, cols: m },
        ),
        _ => gpu.launch(
            Kernel::LinearForward,
            &[x, w, b],
            y,
            p,
            Grid::PerOutput { rows: n, cols: m },
        ),
    }
}

/// `dx = (dy ⊙ act'(y)) · w` with `choice`; `y` may be `dy` for the identity.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grad_input_with(
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
    let p = params(n, k, m, act, GradMode::Overwrite)?;
    match choice {
        c @ (Choice::Subgroup(_) | Choice::Staged(_)) if takes(c, &[dy, w, y]) => launch_generated(
            gpu,
            Product::GradInput,
            c,
            &[dy, w, y],
            dx.into(),
            p,
            (n, k),
        ),
        _ => gpu.launch(
            Kernel::LinearBackwardInput,
            &[dy, w, y],
            dx,
            p,
            Grid::PerOutput { rows: n, cols: k },
        ),
    }
}

/// `dw (+)= dzᵀ · x` and `db (+)= Σ_rows dz`, with `dz = dy ⊙ act'(y)`, in one dispatch
/// of `choice` over every row of the views (the caller keeps them within the loop
/// budget). The invocations of the first block of `dw`'s columns also write `db`; where
/// `dw` has no columns, a kernel of its own writes `db`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grad_weight_with(
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
    let p = params(n, k, m, act, mode)?;
    let outputs = Outputs {
        main: dw,
        second: Some(db),
    };
    match choice {
        _ if k == 0 => gpu.launch(Kernel::LinearBackwardBias, &[dy, y], db, p, Grid::Flat(m)),
        c @ (Choice::Subgroup(_) | Choice::Staged(_)) if takes(c, &[dy, x, y]) => {
            launch_generated(gpu, Product::GradWeight, c, &[dy, x, y], outputs, p, (m, k))
        }
        _ => gpu.launch(
            Kernel::LinearBackwardWeight,
            &[dy, x, y],
            outputs,
            p,
            Grid::PerOutput { rows: m, cols: k },
        ),
    }
}

/// With `dz = dy ⊙ act'(y)` taken on the fly from `dy` and the forward output `y`:
/// `dx = dz · w` (when asked), then `dw` and `db` from `dzᵀ · x` and `Σ_rows dz` in one
/// dispatch, added to the gradients or written over them (`mode`). `y` is bound only
/// where `act` is not the identity. The sums over rows run in chunks of rows within
/// the adapter's loop budget, every chunk after the first adding to the gradients.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
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
        let choice = product_choice(gpu, Product::GradInput, n, k, m)?;
        grad_input_with(gpu, choice, dy, w, y, act, dx)?;
    }
    let weight_choice = product_choice(gpu, Product::GradWeight, n, k, m)?;
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

/// The kernel for `product` on `x: n×k`, `w: m×k`, chosen by the products' tuner,
/// which times the candidates with [`time_candidate`].
fn product_choice(gpu: &Gpu, product: Product, n: usize, k: usize, m: usize) -> Result<Choice> {
    let options = || {
        (
            gpu.product_candidates(product, n, k, m),
            fixed_choice(product, gpu.gemm_lanes(), n, k, m),
        )
    };
    gpu.choose(
        product,
        product.shape(n, k, m),
        options,
        &mut |choice, slice, hopeless| time_candidate(gpu, product, choice, slice, hopeless),
    )
}

/// The median milliseconds of `choice` computing `product` over `slice`, on zero
/// operands with a ReLU fused in (see [`Gpu::median_millis`]).
fn time_candidate(
    gpu: &Gpu,
    product: Product,
    choice: Choice,
    slice: ProductShape,
    hopeless: f64,
) -> Result<f64> {
    let [n, k, m] = product.operands(slice);
    let (x, w, b) = (gpu.alloc(n, k)?, gpu.alloc(m, k)?, gpu.alloc(1, m)?);
    let (y, dx, dw) = (gpu.alloc(n, m)?, gpu.alloc(n, k)?, gpu.alloc(m, k)?);
    let db = gpu.alloc(1, m)?;
    gpu.median_millis(hopeless, || match product {
        Product::Forward => forward_with(gpu, choice, &x, &w, &b, Act::Relu, &y),
        Product::GradInput => grad_input_with(gpu, choice, &y, &w, &y, Act::Relu, &dx),
        Product::GradWeight => grad_weight_with(
            gpu,
            choice,
            &y,
            &x,
            &y,
            Act::Relu,
            &dw,
            &db,
            GradMode::Overwrite,
        ),
    })
}

impl Gpu {
    /// The kernel the tuner chooses for `product` on `x: n×k`, `w: m×k`: the cached
    /// choice of its shape class, else measured now (or the fixed rule where
    /// `MINIDL_TUNE=off`). Small products take the naive kernel without measuring.
    pub fn product_choice(&self, product: Product, n: usize, k: usize, m: usize) -> Result<Choice> {
        product_choice(self, product, n, k, m)
    }

    /// Measures every candidate for `product` on `x: n×k`, `w: m×k` on zero operands
    /// of a slice of the shape and returns the fastest, with every candidate's rate in
    /// multiply-adds per nanosecond, in the order of [`Gpu::product_candidates`].
    pub fn measure(
        &self,
        product: Product,
        n: usize,
        k: usize,
        m: usize,
    ) -> Result<(Choice, Vec<(Choice, f64)>)> {
        let candidates = self.product_candidates(product, n, k, m);
        self.fastest(
            product.shape(n, k, m),
            &candidates,
            &mut |choice, slice, hopeless| time_candidate(self, product, choice, slice, hopeless),
        )
    }

    /// [`Ops::linear_act_forward`](crate::backend::Ops::linear_act_forward) with a
    /// chosen kernel (for benchmarks and tests; the op asks the tuner), after the same
    /// checks as the op. A generated kernel that cannot take the shape or the views'
    /// offsets falls back to the naive one.
    pub fn linear_forward_with(
        &self,
        choice: Choice,
        x: &DeviceTensor<Gpu>,
        w: &DeviceTensor<Gpu>,
        b: &DeviceTensor<Gpu>,
        act: Act,
        y: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        check::same_device(
            self,
            "linear_forward",
            &[Some(x), Some(w), Some(b), Some(y)],
        )?;
        check::linear_forward(x, w, b, act, y)?;
        let choice = self.usable(choice, Product::Forward, x.rows(), x.cols(), w.rows());
        forward_with(self, choice, x, w, b, act, y)
    }

    /// The linear + activation backward's input gradient `dx = (dy ⊙ act'(y))·w` with a
    /// chosen kernel (see [`Gpu::linear_forward_with`]); `y` is needed unless `act` is
    /// the identity.
    pub fn grad_input_with(
        &self,
        choice: Choice,
        dy: &DeviceTensor<Gpu>,
        w: &DeviceTensor<Gpu>,
        y: Option<&DeviceTensor<Gpu>>,
        act: Act,
        dx: &DeviceTensor<Gpu>,
    ) -> Result<()> {
        check::same_device(self, "grad_input", &[Some(dy), Some(w), y, Some(dx)])?;
        check::grad_input(dy, w, y, act, dx)?;
        let [n, m] = dy.shape();
        let k = w.cols();
        let choice = self.usable(choice, Product::GradInput, n, k, m);
        grad_input_with(self, choice, dy, w, y.unwrap_or(dy), act, dx)
    }

    /// The linear + activation backward's parameter gradients `dw (+)= (dy ⊙ act'(y))ᵀ·x`
    /// and `db (+)= Σ_rows dy ⊙ act'(y)` with a chosen kernel (see
    /// [`Gpu::linear_forward_with`]), over rows within the loop budget.
    #[allow(clippy::too_many_arguments)]
    pub fn grad_weight_with(
        &self,
        choice: Choice,
        dy: &DeviceTensor<Gpu>,
        x: &DeviceTensor<Gpu>,
        y: Option<&DeviceTensor<Gpu>>,
        act: Act,
        dw: &DeviceTensor<Gpu>,
        db: &DeviceTensor<Gpu>,
        mode: GradMode,
    ) -> Result<()> {
        check::same_device(
            self,
            "grad_weight",
            &[Some(dy), Some(x), y, Some(dw), Some(db)],
        )?;
        check::grad_weight(dy, x, y, act, dw, db)?;
        let [n, k] = x.shape();
        let m = dy.cols();
        self.check_loop("grad_weight_with", n, 1, || format!("{n} rows"))?;
        let choice = self.usable(choice, Product::GradWeight, n, k, m);
        let y = y.unwrap_or(dy);
        grad_weight_with(self, choice, dy, x, y, act, dw, db, mode)
    }

    /// `choice` where this device can run it for the shape, else the naive kernel.
    fn usable(&self, choice: Choice, product: Product, n: usize, k: usize, m: usize) -> Choice {
        if self.product_candidates(product, n, k, m).contains(&choice) {
            choice
        } else {
            Choice::Naive
        }
    }
}
