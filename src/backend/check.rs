//! Argument checks shared by every backend: each op's shapes, and that no output shares
//! a buffer with an input. The op set ([`Ops`](super::Ops)) runs them once before any
//! backend's kernel, so every backend rejects exactly the same calls with exactly the
//! same errors.

use crate::backend::image_geometry::Conv2dGeometry;
use crate::backend::mlp::{MlpRecipe, MlpSpec};
use crate::backend::update::{AdamStep, MomentumStep};
use crate::backend::{Act, Backend, BufferHandle, DeviceTensor, LossKind, StateLayout};
use crate::error::{Error, Result};

fn expect_shape<B: Backend>(
    op: &'static str,
    name: &str,
    t: &DeviceTensor<B>,
    want: [usize; 2],
) -> Result<()> {
    if t.shape() == want {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!(
                "{name} should be {}×{}, got {}×{}",
                want[0],
                want[1],
                t.rows(),
                t.cols()
            ),
        ))
    }
}

fn no_alias<B: Backend>(
    op: &'static str,
    out: &DeviceTensor<B>,
    inputs: &[&DeviceTensor<B>],
) -> Result<()> {
    if inputs.iter().any(|i| i.shares_buffer(out)) {
        Err(Error::Aliasing { op })
    } else {
        Ok(())
    }
}

/// Every tensor given (`None`s skipped) lives on `backend`'s device.
pub fn same_device<B: Backend>(
    backend: &B,
    op: &'static str,
    tensors: &[Option<&DeviceTensor<B>>],
) -> Result<()> {
    let device = backend.device_id();
    if tensors
        .iter()
        .flatten()
        .all(|t| t.buffer().device() == device)
    {
        Ok(())
    } else {
        Err(Error::WrongDevice { op })
    }
}

/// The activation of a linear + activation op: LeakyReLU's slope finite and not
/// negative (the merged backward reads the output, whose sign is the input's only
/// then).
fn linear_activation(op: &'static str, act: Act) -> Result<()> {
    let slope = act.slope();
    if slope.is_finite() && slope >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{op}: a fused LeakyReLU needs a finite slope of at least 0, got {slope}"
        )))
    }
}

/// `x: n×k`, `w: m×k`, `b: 1×m`, `y: n×m`, `y` distinct from the inputs; `act`'s
/// parameter valid.
pub fn linear_forward<B: Backend>(
    x: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    b: &DeviceTensor<B>,
    act: Act,
    y: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "linear_forward";
    linear_activation(OP, act)?;
    let [n, k] = x.shape();
    let m = w.rows();
    expect_shape(OP, "weight", w, [m, k])?;
    expect_shape(OP, "bias", b, [1, m])?;
    expect_shape(OP, "output", y, [n, m])?;
    no_alias(OP, y, &[x, w, b])
}

/// Shapes of [`Ops::linear_backward`](super::Ops::linear_backward): as the forward, with `dy` and `dx` shaped
/// like `y` and `x`, `dw` like `w`, `db` like `b`; outputs distinct from inputs and
/// from each other.
pub fn linear_backward<B: Backend>(
    x: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    dy: &DeviceTensor<B>,
    dx: Option<&DeviceTensor<B>>,
    dw: &DeviceTensor<B>,
    db: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "linear_backward";
    let [n, k] = x.shape();
    let m = w.rows();
    expect_shape(OP, "weight", w, [m, k])?;
    expect_shape(OP, "output gradient", dy, [n, m])?;
    expect_shape(OP, "weight gradient", dw, [m, k])?;
    expect_shape(OP, "bias gradient", db, [1, m])?;
    no_alias(OP, dw, &[x, w, dy, db])?;
    no_alias(OP, db, &[x, w, dy])?;
    if let Some(dx) = dx {
        expect_shape(OP, "input gradient", dx, [n, k])?;
        no_alias(OP, dx, &[x, w, dy, dw, db])?;
    }
    Ok(())
}

/// The input-gradient product alone: `dy: n×m`, `w: m×k`, `dx: n×k` distinct from the
/// inputs, and `y` shaped like `dy` unless `act` is the identity.
pub fn grad_input<B: Backend>(
    dy: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    y: Option<&DeviceTensor<B>>,
    act: Act,
    dx: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "grad_input";
    linear_activation(OP, act)?;
    let [n, m] = dy.shape();
    expect_shape(OP, "weight", w, [m, w.cols()])?;
    expect_shape(OP, "input gradient", dx, [n, w.cols()])?;
    forward_output(OP, y, dy, act)?;
    no_alias(OP, dx, &[dy, w])?;
    y.map_or(Ok(()), |y| no_alias(OP, dx, &[y]))
}

/// The parameter-gradient product alone: `dy: n×m`, `x: n×k`, `dw: m×k` and `db: 1×m`
/// distinct from the inputs and from each other, and `y` shaped like `dy` unless `act`
/// is the identity.
pub fn grad_weight<B: Backend>(
    dy: &DeviceTensor<B>,
    x: &DeviceTensor<B>,
    y: Option<&DeviceTensor<B>>,
    act: Act,
    dw: &DeviceTensor<B>,
    db: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "grad_weight";
    linear_activation(OP, act)?;
    let [n, m] = dy.shape();
    expect_shape(OP, "input", x, [n, x.cols()])?;
    expect_shape(OP, "weight gradient", dw, [m, x.cols()])?;
    expect_shape(OP, "bias gradient", db, [1, m])?;
    forward_output(OP, y, dy, act)?;
    no_alias(OP, dw, &[dy, x, db])?;
    no_alias(OP, db, &[dy, x])?;
    y.map_or(Ok(()), |y| {
        no_alias(OP, dw, &[y])?;
        no_alias(OP, db, &[y])
    })
}

/// `y` shaped like `dy`, required unless `act` is the identity.
fn forward_output<B: Backend>(
    op: &'static str,
    y: Option<&DeviceTensor<B>>,
    dy: &DeviceTensor<B>,
    act: Act,
) -> Result<()> {
    match y {
        Some(y) => expect_shape(op, "forward output", y, dy.shape()),
        None if act == Act::Identity => Ok(()),
        None => Err(Error::InvalidArgument(format!(
            "{op}: the backward of {act:?} needs the forward output"
        ))),
    }
}

/// [`linear_backward`], plus the forward output `y` shaped like `dy` and distinct
/// from the outputs, required unless `act` is the identity.
#[allow(clippy::too_many_arguments)]
pub fn linear_act_backward<B: Backend>(
    x: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    y: Option<&DeviceTensor<B>>,
    dy: &DeviceTensor<B>,
    act: Act,
    dx: Option<&DeviceTensor<B>>,
    dw: &DeviceTensor<B>,
    db: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "linear_act_backward";
    linear_activation(OP, act)?;
    linear_backward(x, w, dy, dx, dw, db)?;
    forward_output(OP, y, dy, act)?;
    if let Some(y) = y {
        for out in [Some(dw), Some(db), dx].into_iter().flatten() {
            no_alias(OP, out, &[y])?;
        }
    }
    Ok(())
}

/// An elementwise op: every tensor shaped like the first input, the output distinct
/// from the inputs.
pub fn elementwise<B: Backend>(
    op: &'static str,
    inputs: &[&DeviceTensor<B>],
    out: &DeviceTensor<B>,
) -> Result<()> {
    let shape = inputs.first().map_or(out.shape(), |t| t.shape());
    const NAMES: [&str; 4] = ["input 0", "input 1", "input 2", "input 3"];
    for (i, t) in inputs.iter().enumerate().skip(1) {
        expect_shape(op, NAMES.get(i).copied().unwrap_or("an input"), t, shape)?;
    }
    expect_shape(op, "output", out, shape)?;
    no_alias(op, out, inputs)
}

/// `pred` and `target` of the same shape, `out` a single element distinct from both.
pub fn mse_loss<B: Backend>(
    pred: &DeviceTensor<B>,
    target: &DeviceTensor<B>,
    out: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "mse_loss";
    expect_shape(OP, "target", target, pred.shape())?;
    expect_shape(OP, "output", out, [1, 1])?;
    no_alias(OP, out, &[pred, target])
}

/// The op name of an activation's `direction` (`"forward"` or `"backward"`) in
/// messages: `relu_forward`, `leaky_relu_backward`, ...
fn activation_op(act: Act, direction: &str) -> &'static str {
    let forward = direction == "forward";
    match act {
        Act::Identity if forward => "identity_forward",
        Act::Identity => "identity_backward",
        Act::Relu if forward => "relu_forward",
        Act::Relu => "relu_backward",
        Act::Tanh if forward => "tanh_forward",
        Act::Tanh => "tanh_backward",
        Act::Sigmoid if forward => "sigmoid_forward",
        Act::Sigmoid => "sigmoid_backward",
        Act::LeakyRelu(_) if forward => "leaky_relu_forward",
        Act::LeakyRelu(_) => "leaky_relu_backward",
    }
}

/// An activation op: as [`elementwise`], with LeakyReLU's slope finite.
pub fn activation<B: Backend>(
    act: Act,
    direction: &str,
    inputs: &[&DeviceTensor<B>],
    out: &DeviceTensor<B>,
) -> Result<()> {
    let op = activation_op(act, direction);
    let slope = act.slope();
    if !slope.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "{op}: the negative slope must be finite, got {slope}"
        )));
    }
    elementwise(op, inputs, out)
}

/// The loss `kind`'s value: [`mse_loss`] or [`cross_entropy`] into a single element.
pub fn loss<B: Backend>(
    kind: LossKind,
    pred: &DeviceTensor<B>,
    target: &DeviceTensor<B>,
    out: &DeviceTensor<B>,
) -> Result<()> {
    match kind {
        LossKind::Mse => mse_loss(pred, target, out),
        LossKind::CrossEntropy => cross_entropy("cross_entropy_loss", pred, target, out, true),
    }
}

/// The loss `kind`'s gradient, shaped like `pred` and distinct from the inputs.
pub fn loss_grad<B: Backend>(
    kind: LossKind,
    pred: &DeviceTensor<B>,
    target: &DeviceTensor<B>,
    grad: &DeviceTensor<B>,
) -> Result<()> {
    match kind {
        LossKind::Mse => elementwise("mse_grad", &[pred, target], grad),
        LossKind::CrossEntropy => cross_entropy("cross_entropy_grad", pred, target, grad, false),
    }
}

/// `logits: n×c` with `c ≥ 1`, `labels: n×1`, the output distinct from both and
/// shaped `[1, 1]` for the loss (`loss` true) or like `logits` for the gradient.
pub fn cross_entropy<B: Backend>(
    op: &'static str,
    logits: &DeviceTensor<B>,
    labels: &DeviceTensor<B>,
    out: &DeviceTensor<B>,
    loss: bool,
) -> Result<()> {
    let [n, c] = logits.shape();
    if c == 0 {
        return Err(Error::shape(op, "the logits have no classes (0 columns)"));
    }
    expect_shape(op, "labels", labels, [n, 1])?;
    expect_shape(op, "output", out, if loss { [1, 1] } else { [n, c] })?;
    no_alias(op, out, &[logits, labels])
}

/// `param`, `grad` and `velocity` of the same shape in three distinct buffers; finite
/// hyperparameters.
pub fn momentum_step<B: Backend>(
    param: &DeviceTensor<B>,
    grad: &DeviceTensor<B>,
    velocity: &DeviceTensor<B>,
    hyper: &MomentumStep,
) -> Result<()> {
    const OP: &str = "momentum_step";
    if ![hyper.lr, hyper.momentum, hyper.weight_decay]
        .iter()
        .all(|v| v.is_finite())
    {
        return Err(Error::InvalidArgument(format!(
            "{OP}: hyperparameters must be finite, got {hyper:?}"
        )));
    }
    elementwise(OP, &[grad, velocity], param)?;
    no_alias(OP, velocity, &[grad, param])
}

/// `param` and `grad` of the same shape, `state` one row laid out as
/// [`StateLayout::ADAM`] says, three distinct buffers; finite hyperparameters.
pub fn adam_step<B: Backend>(
    param: &DeviceTensor<B>,
    grad: &DeviceTensor<B>,
    state: &DeviceTensor<B>,
    hyper: &AdamStep,
) -> Result<()> {
    const OP: &str = "adam_step";
    if ![
        hyper.lr,
        hyper.beta1,
        hyper.beta2,
        hyper.eps,
        hyper.weight_decay,
    ]
    .iter()
    .all(|v| v.is_finite())
    {
        return Err(Error::InvalidArgument(format!(
            "{OP}: hyperparameters must be finite, got {hyper:?}"
        )));
    }
    expect_shape(OP, "gradient", grad, param.shape())?;
    let len = StateLayout::ADAM.len(param.len());
    expect_shape(OP, "state", state, [1, len])?;
    no_alias(OP, param, &[grad, state])?;
    no_alias(OP, state, &[grad])
}

/// `param` and `grad` of the same shape in distinct buffers; `lr` finite.
pub fn sgd_step<B: Backend>(
    param: &DeviceTensor<B>,
    grad: &DeviceTensor<B>,
    lr: f32,
) -> Result<()> {
    if !lr.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "sgd_step: learning rate must be finite, got {lr}"
        )));
    }
    elementwise("sgd_step", &[grad], param)
}

/// A host slice written into `dst` must have exactly `dst.len()` values.
pub fn write<B: Backend>(dst: &DeviceTensor<B>, data: &[f32]) -> Result<()> {
    if data.len() == dst.len() {
        Ok(())
    } else {
        Err(Error::shape(
            "write",
            format!(
                "{} values for a {}×{} tensor",
                data.len(),
                dst.rows(),
                dst.cols()
            ),
        ))
    }
}

/// `src` and `dst` of the same shape in distinct buffers.
pub fn copy<B: Backend>(src: &DeviceTensor<B>, dst: &DeviceTensor<B>) -> Result<()> {
    expect_shape("copy", "destination", dst, src.shape())?;
    no_alias("copy", dst, &[src])
}

/// Arguments of [`MlpTrainer::mlp_epoch_runs`](super::MlpTrainer::mlp_epoch_runs)
/// for `runs` runs ([`MlpTrainer::mlp_epoch`](super::MlpTrainer::mlp_epoch): one):
/// valid hyperparameters and at least one run; `params` is `runs ×`
/// [`UpdateRule::packed_len`](super::UpdateRule::packed_len), `inputs` and `targets` hold
/// the same number of points for each run, one after another, in rows of the spec's
/// widths (one class index per row for cross-entropy), `losses` one row per
/// mini-batch of each run in the same order; the written tensors are distinct from
/// every other.
pub fn mlp_epoch_runs<B: Backend>(
    spec: &MlpSpec,
    runs: usize,
    params: &DeviceTensor<B>,
    inputs: &DeviceTensor<B>,
    targets: &DeviceTensor<B>,
    epoch: &MlpRecipe,
    losses: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "mlp_epoch";
    if epoch.batch_size == 0 {
        return Err(Error::InvalidArgument(
            "mlp_epoch: batch size must be at least 1".into(),
        ));
    }
    if runs == 0 {
        return Err(Error::InvalidArgument(
            "mlp_epoch: there must be at least 1 run".into(),
        ));
    }
    epoch.rule.validate()?;
    if !inputs.rows().is_multiple_of(runs) {
        return Err(Error::InvalidArgument(format!(
            "mlp_epoch: the inputs' {} rows are not the same number for each of {runs} runs",
            inputs.rows()
        )));
    }
    let rows = inputs.rows() / runs;
    expect_shape(
        OP,
        "parameters",
        params,
        [runs, epoch.rule.packed_len(spec)],
    )?;
    expect_shape(OP, "inputs", inputs, [runs * rows, spec.inputs()])?;
    expect_shape(
        OP,
        "targets",
        targets,
        [runs * rows, epoch.target_width(spec)],
    )?;
    let steps = rows.div_ceil(epoch.batch_size);
    expect_shape(OP, "losses", losses, [runs * steps, 1])?;
    no_alias(OP, params, &[inputs, targets, losses])?;
    no_alias(OP, losses, &[inputs, targets])
}

/// Shapes of [`Ops::conv2d_forward`](super::Ops::conv2d_forward) for geometry `g`:
/// `x: N × C·H·W`, `w: O × C·kh·kw`, `b: 1 × O`, `y: N × O·OH·OW`, `y` distinct from
/// the inputs.
pub fn conv2d_forward<B: Backend>(
    g: &Conv2dGeometry,
    x: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    b: &DeviceTensor<B>,
    y: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    let [x_shape, w_shape, b_shape, y_shape] = conv2d_shapes(g);
    expect_shape(OP, "input", x, x_shape)?;
    expect_shape(OP, "weight", w, w_shape)?;
    expect_shape(OP, "bias", b, b_shape)?;
    expect_shape(OP, "output", y, y_shape)?;
    no_alias(OP, y, &[x, w, b])
}

/// The tensor shapes of a convolution of geometry `g`: input, weight, bias, output.
fn conv2d_shapes(g: &Conv2dGeometry) -> [[usize; 2]; 4] {
    [
        [g.batch(), g.input_sample_len()],
        [g.out_channels(), g.im2col_depth()],
        [1, g.out_channels()],
        [g.batch(), g.output_sample_len()],
    ]
}

/// Shapes of [`Ops::conv2d_backward`](super::Ops::conv2d_backward): as the forward,
/// with `dy` shaped like `y`, `dx` like `x`, `dw` like `w`, `db` like `b`; outputs
/// distinct from the inputs and from each other.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<B: Backend>(
    g: &Conv2dGeometry,
    x: &DeviceTensor<B>,
    w: &DeviceTensor<B>,
    dy: &DeviceTensor<B>,
    dx: Option<&DeviceTensor<B>>,
    dw: &DeviceTensor<B>,
    db: &DeviceTensor<B>,
) -> Result<()> {
    const OP: &str = "conv2d_backward";
    let [x_shape, w_shape, b_shape, y_shape] = conv2d_shapes(g);
    expect_shape(OP, "input", x, x_shape)?;
    expect_shape(OP, "weight", w, w_shape)?;
    expect_shape(OP, "output gradient", dy, y_shape)?;
    expect_shape(OP, "weight gradient", dw, w_shape)?;
    expect_shape(OP, "bias gradient", db, b_shape)?;
    no_alias(OP, dw, &[x, w, dy, db])?;
    no_alias(OP, db, &[x, w, dy])?;
    if let Some(dx) = dx {
        expect_shape(OP, "input gradient", dx, x_shape)?;
        no_alias(OP, dx, &[x, w, dy, dw, db])?;
    }
    Ok(())
}

/// Shapes of a resampling op (max pooling, upsampling): `input: N × C·H·W`,
/// `output: N × C·OH·OW`, the gradients shaped like them, every output distinct from
/// every input. `inputs` and `outputs` name each tensor with the element count of one
/// of its rows.
pub fn resample<B: Backend>(
    op: &'static str,
    batch: usize,
    inputs: &[(&str, &DeviceTensor<B>, usize)],
    out: (&str, &DeviceTensor<B>, usize),
) -> Result<()> {
    for (name, t, cols) in inputs {
        expect_shape(op, name, t, [batch, *cols])?;
    }
    let (name, t, cols) = out;
    expect_shape(op, name, t, [batch, cols])?;
    if inputs.iter().any(|(_, i, _)| i.shares_buffer(t)) {
        return Err(Error::Aliasing { op });
    }
    Ok(())
}
