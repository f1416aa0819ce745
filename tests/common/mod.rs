//! Helpers shared by the integration tests: the GPU (or a skip), random tensors,
//! comparisons within a per-element error bound, and IDX files as the format describes
//! them.
#![allow(dead_code)]

use std::sync::OnceLock;

use minidl::backend::StateLayout;
use minidl::optim::{AdamStep, MomentumStep};
use minidl::{Backend, Gpu, Reduction, Tensor};
use minidl::{LossKind, Ops};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The unit roundoff of f32.
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// γ_n = n·u / (1 − n·u): the classic bound on the relative error of a sum or dot
/// product of n terms in f32, in any order, with or without fused multiply-adds
/// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Writes a line past the test harness's output capture, so that it shows in a plain
/// `cargo test` run: where a test says that it skips something, and why.
pub fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether `MINIDL_REQUIRE_GPU=1`: the GPU tests must really run (as in CI).
pub fn gpu_required() -> bool {
    std::env::var("MINIDL_REQUIRE_GPU").as_deref() == Ok("1")
}

/// One GPU backend per test binary, shared by its tests. `None` (after saying so once)
/// when no adapter exists, unless `MINIDL_REQUIRE_GPU=1`, which turns that into a
/// failure.
pub fn gpu() -> Option<Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(gpu) => {
            announce(&format!("GPU tests run on {}", gpu.adapter()));
            Some(gpu)
        }
        Err(e) => {
            if gpu_required() {
                panic!("MINIDL_REQUIRE_GPU=1 but the GPU backend is unavailable: {e}");
            }
            announce(&format!(
                "skipping the GPU tests of this file: {e} (MINIDL_REQUIRE_GPU=1 makes this a failure)"
            ));
            None
        }
    })
    .clone()
}

/// A seeded generator for test data.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `rows × cols` tensor uniform in [lo, hi).
pub fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, lo: f32, hi: f32) -> Tensor {
    let data = (0..rows * cols).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::new(&[rows, cols], data).unwrap()
}

/// The same host tensor uploaded to two backends.
pub fn upload_both<A: Backend, B: Backend>(
    a: &A,
    b: &B,
    t: &Tensor,
) -> (minidl::DeviceTensor<A>, minidl::DeviceTensor<B>) {
    (a.upload(t).unwrap(), b.upload(t).unwrap())
}

/// Asserts `|got[i] − want[i]| ≤ rtol · max_j |want[j]|` for every i: agreement
/// within a fraction of the largest reference value (of a whole training's parameters,
/// say, where each value's own bound is not known).
pub fn assert_close_to_largest(what: &str, got: &[f32], want: &[f32], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let bound = rtol * scale.max(f64::MIN_POSITIVE);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((g - w) as f64).abs() <= bound,
            "{what}[{i}]: {g} vs reference {w} (bound {bound:e})"
        );
    }
}

/// Asserts `|got[i] − want[i]| ≤ bound[i]` for every i (and NaN where the reference
/// is NaN), reporting the element that exceeds its bound the most.
pub fn assert_within(what: &str, got: &[f32], want: &[f32], bound: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    assert_eq!(got.len(), bound.len(), "{what}: bound length");
    let excess = |i: usize| {
        if got[i].is_nan() || want[i].is_nan() {
            if got[i].is_nan() == want[i].is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (got[i] as f64 - want[i] as f64).abs() - bound[i]
        }
    };
    let worst = (0..got.len()).max_by(|&a, &b| excess(a).total_cmp(&excess(b)));
    if let Some(i) = worst.filter(|&i| excess(i) > 0.0) {
        panic!(
            "{what}: element {i} is {} but the reference is {} (bound {:e})",
            got[i], want[i], bound[i]
        );
    }
}

/// Absolute values, as f64.
pub fn abs64(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|v| v.abs() as f64).collect()
}

/// One ulp of 1 in f32: 2⁻²³.
pub const ULP1: f64 = f32::EPSILON as f64;

/// How far the GPU's softmax cross-entropy of `logits` (`n × c`) against `labels` may
/// be from the CPU's, scaled by `scale`: the loss, and each gradient element. Per row,
/// exp is within 3 + 2|x| ulp and log within 2⁻²¹ or 3 ulp (Vulkan's bounds), and the
/// sum of c exponentials adds c roundings; then the rows are summed in another order.
pub fn cross_entropy_bounds(logits: &Tensor, labels: &Tensor, scale: f64) -> (f64, Vec<f64>) {
    let [n, c] = [logits.shape()[0], logits.shape()[1]];
    let mut loss_bound = 0.0;
    let mut row_loss_sum = 0.0;
    let mut grad_bound = Vec::with_capacity(n * c);
    for (row, &label) in logits.data().chunks(c).zip(labels.data()) {
        let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let spread = row.iter().map(|v| max - v).fold(0.0, f64::max);
        let lse = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let zt = row[label as usize];
        let lse_err = ULP1 * (c as f64 * (4.0 + 2.0 * spread) + 16.0);
        loss_bound += lse_err + 8.0 * U * (max.abs() + zt.abs() + lse);
        row_loss_sum += (lse + max - zt).abs();
        for &v in &row {
            let arg = v - max - lse;
            let rel = lse_err + ULP1 * (4.0 + 2.0 * arg.abs()) + 8.0 * U * (max.abs() + v.abs());
            grad_bound.push(scale * (arg.exp() * rel + 2.0 * U));
        }
    }
    (
        scale * (loss_bound + 2.0 * gamma(n + 1) * row_loss_sum),
        grad_bound,
    )
}

/// How far `steps` GPU steps of SGD with momentum may move a parameter that starts at
/// `p0` from the CPU's, with gradients below `g_max`: each step rounds a handful of
/// times on terms no larger than the velocity, which after s steps is below
/// s·(1 + momentum)·(|g| + wd·|p|) with |p| < 2.
pub fn momentum_bound(p0: f32, steps: usize, g_max: f64, h: &MomentumStep) -> f64 {
    let step = h.lr as f64 * 2.0 * (g_max + h.weight_decay as f64 * 2.0);
    let s = steps as f64;
    16.0 * s * U * (p0.abs() as f64 + s * s * step)
}

/// How far `steps` GPU Adam steps may move a parameter that starts at `p0` from the
/// CPU's: a step moves it by lr · m̂ / (√v̂ + ε), at most a few lr, with a few roundings
/// (and a square root) in each factor.
pub fn adam_bound(p0: f32, steps: usize, h: &AdamStep) -> f64 {
    let s = steps as f64;
    32.0 * s * U * (p0.abs() as f64 + s * 4.0 * h.lr as f64)
}

/// A column of `n` random class indices below `classes`.
pub fn labels(r: &mut ChaCha8Rng, n: usize, classes: usize) -> Tensor {
    let data = (0..n).map(|_| r.random_range(0..classes) as f32).collect();
    Tensor::new(&[n, 1], data).unwrap()
}

/// `rows` random points of `width` values in the unit cube with random labels of
/// `classes` classes.
pub fn labelled_points(
    width: usize,
    classes: usize,
    rows: usize,
    seed: u64,
) -> minidl::data::Dataset {
    let mut r = rng(seed);
    let x = random(&mut r, rows, width, 0.0, 1.0);
    let y = labels(&mut r, rows, classes);
    let y = y.data().iter().map(|&v| v as usize).collect();
    minidl::data::Dataset::new(x, y, classes).unwrap()
}

/// How far two evaluations of the gate `dz = dy ⊙ act'(y)` may differ from the same
/// `dy` and `y`: a few roundings of dz itself, and for tanh also the rounding of y·y in
/// 1 − y·y (up to u·y², which a fused multiply-add skips on one side only), large next
/// to 1 − y² where y is close to ±1.
pub fn gate_difference(dy: &Tensor, y: &Tensor, act: minidl::Act) -> Vec<f64> {
    use minidl::Act;
    dy.data()
        .iter()
        .zip(y.data())
        .map(|(&d, &y)| {
            let (d, y) = (d.abs() as f64, y as f64);
            let dz = match act {
                Act::Identity => d,
                Act::Relu if y > 0.0 => d,
                Act::Relu => 0.0,
                Act::Tanh => d * (1.0 - y * y).abs(),
                Act::Sigmoid => d * (y * (1.0 - y)).abs(),
                Act::LeakyRelu(_) if y > 0.0 => d,
                Act::LeakyRelu(slope) => d * (slope as f64).abs(),
            };
            let square = if act == Act::Tanh {
                2.0 * U * d * y * y
            } else {
                0.0
            };
            8.0 * U * dz + square
        })
        .collect()
}

/// Bounds on the difference of dx, dw and db between two backends running the linear +
/// activation backward from the same `x: n×k`, `w: m×k`, forward output `y` and `dy`:
/// each a sum of |dz|-weighted terms (2·γ of it) plus the gates' own difference
/// ([`gate_difference`]) carried through the same sums.
pub fn linear_act_backward_bounds(
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    dy: &Tensor,
    act: minidl::Act,
) -> [Vec<f64>; 3] {
    use minidl::backend::reference::definitions;
    let (n, k, m) = (x.shape()[0], x.shape()[1], w.shape()[0]);
    let mut dz = vec![0.0f64; n * m];
    definitions::gate(&abs64(dy), &abs64(y), act, &mut dz);
    let gate = gate_difference(dy, y, act);
    let (ax, aw) = (abs64(x), abs64(w));
    let mut dx = [vec![0.0f64; n * k], vec![0.0f64; n * k]];
    definitions::linear_backward_input(&dz, &aw, &mut dx[0], n, k, m);
    definitions::linear_backward_input(&gate, &aw, &mut dx[1], n, k, m);
    let mut dw = [vec![0.0f64; m * k], vec![0.0f64; m * k]];
    definitions::linear_backward_weight(&dz, &ax, &mut dw[0], n, k, m);
    definitions::linear_backward_weight(&gate, &ax, &mut dw[1], n, k, m);
    let mut db = [vec![0.0f64; m], vec![0.0f64; m]];
    definitions::linear_backward_bias(&dz, &mut db[0], n, m);
    definitions::linear_backward_bias(&gate, &mut db[1], n, m);
    let combine = |[mag, gate]: [Vec<f64>; 2], len: usize| -> Vec<f64> {
        mag.iter()
            .zip(&gate)
            .map(|(v, g)| 2.0 * gamma(len) * v + g)
            .collect()
    };
    [combine(dx, m), combine(dw, n), combine(db, n)]
}

// Runners: one op on a backend, from host tensors to a host result.

/// The cross-entropy loss and gradient of `logits` against `labels` (an n × 1 column).
pub fn cross_entropy<B: Backend>(
    b: &B,
    logits: &Tensor,
    labels: &Tensor,
    reduction: Reduction,
) -> (f32, Tensor) {
    let (z, l) = (b.upload(logits).unwrap(), b.upload(labels).unwrap());
    let out = b.alloc(1, 1).unwrap();
    b.loss(LossKind::CrossEntropy, &z, &l, reduction, &out)
        .unwrap();
    let grad = b.alloc(z.rows(), z.cols()).unwrap();
    b.loss_grad(LossKind::CrossEntropy, &z, &l, reduction, &grad)
        .unwrap();
    (
        b.download(&out).unwrap().data()[0],
        b.download(&grad).unwrap(),
    )
}

/// `param −= lr · grad` on `b`: the parameter after the step.
pub fn sgd<B: Backend>(b: &B, p: &Tensor, g: &Tensor, lr: f32) -> Tensor {
    let param = b.upload(p).unwrap();
    b.sgd_step(&param, &b.upload(g).unwrap(), lr).unwrap();
    b.download(&param).unwrap()
}

/// The parameter after `grads.len()` momentum steps from `p`.
pub fn run_momentum<B: Backend>(b: &B, p: &Tensor, grads: &[Tensor], h: &MomentumStep) -> Tensor {
    let param = b.upload(p).unwrap();
    let velocity = b.alloc(param.rows(), param.cols()).unwrap();
    for g in grads {
        b.momentum_step(&param, &b.upload(g).unwrap(), &velocity, h)
            .unwrap();
    }
    b.download(&param).unwrap()
}

/// The parameter after `grads.len()` Adam steps from `p`.
pub fn run_adam<B: Backend>(b: &B, p: &Tensor, grads: &[Tensor], h: &AdamStep) -> Tensor {
    let param = b.upload(p).unwrap();
    let state = b.alloc(1, StateLayout::ADAM.len(param.len())).unwrap();
    for g in grads {
        b.adam_step(&param, &b.upload(g).unwrap(), &state, h)
            .unwrap();
    }
    b.download(&param).unwrap()
}

pub fn linear_forward<B: Backend>(b: &B, x: &Tensor, w: &Tensor, bias: &Tensor) -> Tensor {
    let (n, m) = (x.shape()[0], w.shape()[0]);
    let y = b.alloc(n, m).unwrap();
    b.linear_forward(
        &b.upload(x).unwrap(),
        &b.upload(w).unwrap(),
        &b.upload(bias).unwrap(),
        &y,
    )
    .unwrap();
    b.download(&y).unwrap()
}

/// dx, dw and db after a backward into gradients that already hold `dw0` and `db0`.
pub fn linear_backward<B: Backend>(
    b: &B,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    dw0: &Tensor,
    db0: &Tensor,
) -> (Tensor, Tensor, Tensor) {
    let (n, k) = (x.shape()[0], x.shape()[1]);
    let dx = b.alloc(n, k).unwrap();
    let dw = b.upload(dw0).unwrap();
    let db = b.upload(db0).unwrap();
    b.linear_backward(
        &b.upload(x).unwrap(),
        &b.upload(w).unwrap(),
        &b.upload(dy).unwrap(),
        Some(&dx),
        &dw,
        &db,
    )
    .unwrap();
    (
        b.download(&dx).unwrap(),
        b.download(&dw).unwrap(),
        b.download(&db).unwrap(),
    )
}

/// Asserts that a linear + activation backward in [`minidl::GradMode::Overwrite`] over
/// gradients holding garbage gives, bit for bit, what clearing them and accumulating
/// gives on the same backend (0 + Σ is Σ exactly), for every activation.
pub fn assert_overwrite_is_clear_then_accumulate<B: Backend>(b: &B, n: usize, k: usize, m: usize) {
    use minidl::{Act, GradMode};
    let mut r = rng(40);
    let x = b.upload(&random(&mut r, n, k, -1.0, 1.0)).unwrap();
    let w = b.upload(&random(&mut r, m, k, -1.0, 1.0)).unwrap();
    let dy = b.upload(&random(&mut r, n, m, -1.0, 1.0)).unwrap();
    let y = b.upload(&random(&mut r, n, m, -1.0, 1.0)).unwrap();
    let garbage_w = random(&mut r, m, k, -9.0, 9.0);
    let garbage_b = random(&mut r, 1, m, -9.0, 9.0);
    for act in Act::ALL {
        let y = (act != Act::Identity).then_some(&y);
        let grads = |mode: GradMode| {
            let (dw, db) = (b.upload(&garbage_w).unwrap(), b.upload(&garbage_b).unwrap());
            if mode == GradMode::Accumulate {
                b.zero(&dw).unwrap();
                b.zero(&db).unwrap();
            }
            b.linear_act_backward_mode(&x, &w, y, &dy, act, None, &dw, &db, mode)
                .unwrap();
            (b.download(&dw).unwrap(), b.download(&db).unwrap())
        };
        let (want, got) = (grads(GradMode::Accumulate), grads(GradMode::Overwrite));
        assert_eq!(got, want, "{} {act:?} {n}×{k}→{m}", b.name());
    }
}

/// Runs an elementwise op `f(backend, inputs, out)` and returns `out`.
pub fn elementwise<B: Backend>(
    b: &B,
    inputs: &[&Tensor],
    f: impl Fn(&B, &[minidl::DeviceTensor<B>], &minidl::DeviceTensor<B>),
) -> Tensor {
    let (rows, cols) = inputs[0].matrix_dims().unwrap();
    let dev: Vec<_> = inputs.iter().map(|t| b.upload(t).unwrap()).collect();
    let out = b.alloc(rows, cols).unwrap();
    f(b, &dev, &out);
    b.download(&out).unwrap()
}

/// The fused linear + activation ops on `b`: the forward output, and dx, dw, db of
/// the backward from the same host `y` (so both backends gate identically).
#[allow(clippy::type_complexity)]
pub fn linear_act<B: Backend>(
    b: &B,
    act: minidl::Act,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    y: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let (n, k, m) = (x.shape()[0], x.shape()[1], w.shape()[0]);
    let (xd, wd) = (b.upload(x).unwrap(), b.upload(w).unwrap());
    let out = b.alloc(n, m).unwrap();
    b.linear_act_forward(&xd, &wd, &b.upload(bias).unwrap(), act, &out)
        .unwrap();
    let (dx, dw, db) = (
        b.alloc(n, k).unwrap(),
        b.alloc(m, k).unwrap(),
        b.alloc(1, m).unwrap(),
    );
    let yd = b.upload(y).unwrap();
    b.linear_act_backward(
        &xd,
        &wd,
        Some(&yd),
        &b.upload(dy).unwrap(),
        act,
        Some(&dx),
        &dw,
        &db,
    )
    .unwrap();
    (
        b.download(&out).unwrap(),
        b.download(&dx).unwrap(),
        b.download(&dw).unwrap(),
        b.download(&db).unwrap(),
    )
}

/// `target/<profile>/examples/<name>`, the example binary `cargo test` builds beside
/// the test binaries (next to this test's `deps` folder).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

/// Runs the example `name` with `args` (with a backtrace asked for, so that a panic
/// would show, and a runtime folder, without which libwayland warns when the GPU
/// adapters are listed).
pub fn run_example(name: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(example(name));
    command.args(args).env("RUST_BACKTRACE", "1");
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    command.output().unwrap()
}

/// The JSON line (the last line of its output) of `train` run with `args` and
/// `--backend cpu --json`, which must succeed.
pub fn train_json_on_cpu(args: &[&str]) -> String {
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--backend", "cpu", "--json"])
        .collect();
    let out = run_example("train", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or_default().to_string()
}

/// The step of the central differences the gradient checks take, in `f64`.
pub const FD_STEP: f64 = 1e-6;

/// Asserts that `analytic` equals the central difference of `loss` in every element of
/// `v` (step [`FD_STEP`]) within 1e-6 · (1 + |∂|) (see docs/testing.md).
pub fn assert_matches_finite_differences(
    what: &str,
    v: &mut [f64],
    analytic: &[f64],
    loss: impl Fn(&[f64]) -> f64,
) {
    assert_eq!(v.len(), analytic.len(), "{what}: length");
    for i in 0..v.len() {
        let keep = v[i];
        v[i] = keep + FD_STEP;
        let up = loss(v);
        v[i] = keep - FD_STEP;
        let down = loss(v);
        v[i] = keep;
        let numeric = (up - down) / (2.0 * FD_STEP);
        let tol = 1e-6 * (1.0 + analytic[i].abs());
        assert!(
            (numeric - analytic[i]).abs() <= tol,
            "{what}[{i}]: backward gives {} but finite differences give {numeric}",
            analytic[i]
        );
    }
}

/// An IDX file as the format describes it: two zero bytes, the type code, the rank,
/// each dimension as a big-endian `u32`, then `body` (the values, big-endian).
pub fn idx(code: u8, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

/// `digits` (28×28 grey levels 0–255 labelled 0–9, as MNIST's) as an IDX images file
/// (`u8`, `[n, 28, 28]`) and an IDX labels file (`u8`, `[n]`).
pub fn mnist_as_idx(digits: &minidl::data::Dataset) -> (Vec<u8>, Vec<u8>) {
    let n = digits.len() as u32;
    let pixels: Vec<u8> = digits.inputs().data().iter().map(|&p| p as u8).collect();
    let labels: Vec<u8> = digits.labels().iter().map(|&l| l as u8).collect();
    (idx(0x08, &[n, 28, 28], &pixels), idx(0x08, &[n], &labels))
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A scratch folder that is removed, with all it holds, when it goes out of scope (the
/// test passed or panicked), so that test runs leave nothing in the temporary folder.
pub struct TempFolder(std::path::PathBuf);

impl std::ops::Deref for TempFolder {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempFolder {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh, empty folder `minidl-<name>-<pid>` in the system's temporary folder,
/// removed when the returned guard is dropped.
pub fn temp_folder(name: &str) -> TempFolder {
    let dir = std::env::temp_dir().join(format!("minidl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempFolder(dir)
}

/// Proptest's settings for a data reader's properties: `n` cases and the fixed seed
/// `seed`, each overridden by `PROPTEST_CASES` / `PROPTEST_RNG_SEED`; no failure files.
pub fn proptest_config(n: u32, seed: u64) -> proptest::test_runner::Config {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    proptest::test_runner::Config {
        cases: env("PROPTEST_CASES").map_or(n, |c: u64| c as u32),
        rng_seed: proptest::test_runner::RngSeed::Fixed(env("PROPTEST_RNG_SEED").unwrap_or(seed)),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// The message of `result`'s data-file error (`Error::Data`), which must name `path`;
/// panics on `Ok` or another error.
pub fn data_error<T: std::fmt::Debug>(result: minidl::Result<T>, path: &std::path::Path) -> String {
    match result {
        Err(e @ minidl::Error::Data { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            text
        }
        other => panic!("expected a data-file error about {path:?}, got {other:?}"),
    }
}

/// A PNG image of `width × height` written by the `png` crate's encoder with these
/// samples (packed rows for depths under 8, big-endian for 16), palette and tRNS.
pub fn encode_png(
    (width, height): (u32, u32),
    colour: png::ColorType,
    depth: png::BitDepth,
    rows: &[u8],
    palette: Option<(&[u8], &[u8])>,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(colour);
        encoder.set_depth(depth);
        if let Some((plte, trns)) = palette {
            encoder.set_palette(plte.to_vec());
            if !trns.is_empty() {
                encoder.set_trns(trns.to_vec());
            }
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(rows).unwrap();
    }
    bytes
}

/// Writes `bytes` at `root/relative`, making the folders on the way.
pub fn put(root: &std::path::Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The little-endian f32 values of the file at `path` (a fixture's stored levels).
pub fn read_f32_le(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
