//! The image ops of the fast backends (the CPU's im2col products and its direct loops
//! for few output channels, on one and two threads; the GPU's direct kernels and its
//! products over the unfolded input) against the reference backend, on odd shapes:
//! batch 1, one and three channels, odd image sizes, stride, padding and dilation
//! combined and unequal between height and width, sizes that are multiples of no tile;
//! and, as property tests, on geometries drawn from all those that can work.
//!
//! Bounds: a convolution output is a sum of `n` products (`n = C·kh·kw` taps plus the
//! bias for the forward, `O·kh·kw` for the input gradient, `N·OH·OW` for the weight
//! and bias gradients, plus one addition where they accumulate); two evaluations of
//! it in any order, with or without fused multiply-adds, differ by at most
//! `2·γ_n·Σ|terms|`, and `Σ|terms|` is the same op computed in f64 on absolute values.
//! Max pooling and upsampling copy or add in the reference's order: exact. Average
//! pooling on the CPU runs the reference's loops: exact; on the GPU its sums are the
//! reference's but WGSL's division may be off by 2.5 ulp, so it is held to
//! `2·γ_{n+3}·Σ|terms|` for windows (or gradient sums) of `n` terms.

mod common;

use common::{abs64, assert_within, gamma, gpu, random, rng};
use minidl::backend::gpu::{
    ConvLowering, ConvPass, MEASURED_IMAGES, SCRATCH_ELEMENTS, UNFOLD_CHANNELS, UNFOLD_FROM,
};
use minidl::backend::reference::images;
use minidl::backend::{Conv2dGeometry, Conv2dSpec, Pool2dGeometry, Pool2dSpec, UpsampleGeometry};
use minidl::{Backend, Cpu, Gpu, GradMode, Ops, Reference, Tensor};
use proptest::prelude::*;

/// A convolution case: batch, spec, input (H, W).
type ConvCase = (usize, Conv2dSpec, (usize, usize));

/// Convolution cases: batch, spec, input (H, W).
fn conv_cases() -> Vec<ConvCase> {
    let spec = |c, o, k, s, p, d| {
        Conv2dSpec::new(c, o, k)
            .with_stride(s)
            .with_padding(p)
            .with_dilation(d)
    };
    vec![
        // Batch 1, one channel, no padding.
        (1, spec(1, 2, (3, 3), (1, 1), (0, 0), (1, 1)), (5, 7)),
        // Stride, padding and dilation combined, unequal between the axes.
        (3, spec(3, 5, (3, 2), (2, 1), (1, 2), (2, 1)), (11, 9)),
        // All three larger than 1 on both axes.
        (2, spec(3, 4, (5, 5), (3, 2), (2, 1), (2, 2)), (13, 12)),
        // A stride larger than the kernel: some pixels are read by no output.
        (2, spec(2, 3, (2, 2), (3, 3), (0, 0), (1, 1)), (10, 11)),
        // LeNet's first layer on a few digits.
        (4, spec(1, 6, (5, 5), (1, 1), (2, 2), (1, 1)), (28, 28)),
        // The denoiser's strided layer: many channels, padding 1, stride 2.
        (5, spec(32, 17, (3, 3), (2, 2), (1, 1), (1, 1)), (13, 14)),
        // Stride 1 (unfolded at the padded width on the CPU) with padding and dilation
        // unequal between the axes.
        (2, spec(3, 4, (3, 2), (1, 1), (2, 1), (2, 3)), (9, 10)),
        // A 1×1 kernel.
        (3, spec(7, 3, (1, 1), (1, 1), (0, 0), (1, 1)), (3, 5)),
        // Stride 1 with more output channels (the CPU's products at the padded width,
        // not its direct loops), padding and dilation unequal between the axes.
        (2, spec(5, 6, (3, 2), (1, 1), (2, 1), (2, 3)), (9, 10)),
        // The denoiser's last layer: many channels to one, on enough pixels that the
        // CPU splits the batch (of an odd size) between its threads.
        (5, spec(32, 1, (3, 3), (1, 1), (1, 1), (1, 1)), (15, 14)),
        // Three outputs from seven inputs (the CPU's direct loops in blocks of four and
        // three), padding and dilation unequal between the axes.
        (3, spec(7, 3, (3, 2), (1, 1), (2, 1), (1, 2)), (9, 13)),
        // Padding wider than the kernel reaches, and a kernel taller than the input.
        (2, spec(2, 1, (2, 2), (1, 1), (3, 2), (1, 1)), (4, 5)),
        (2, spec(3, 2, (5, 3), (1, 1), (2, 1), (1, 1)), (3, 4)),
    ]
}

/// The bound `2·γ_n·s` for each absolute sum `s`.
fn bound(sums: &[f64], n: usize) -> Vec<f64> {
    sums.iter().map(|s| 2.0 * gamma(n) * s).collect()
}

/// How a test runs a convolution on a fast backend: the output, the input gradient
/// and the weight and bias gradients (see [`conv_on`]).
type RunConv<'a> = dyn Fn(&Conv2dGeometry, [&Tensor; 6], GradMode) -> [Tensor; 4] + 'a;

/// The convolution forward and backward of `backend` against the reference, with
/// the weight gradients accumulated onto a nonzero start, then written over.
fn check_conv<B: Backend>(backend: &B, label: &str) {
    check_conv_cases(&conv_cases(), -1.0, label, &|g, t, mode| {
        conv_on(backend, g, t, mode)
    });
}

/// The GPU's convolution with `lowering` against the reference, as [`check_conv`],
/// the operands drawn from `[low, 1)`.
fn check_gpu_conv(gpu: &Gpu, lowering: ConvLowering, cases: &[ConvCase], low: f32, label: &str) {
    let label = format!("{label} {lowering:?}");
    check_conv_cases(cases, low, &label, &|g, t, mode| {
        gpu_conv_on(gpu, lowering, g, t, mode)
    });
}

/// [`check_conv`] over `cases`, the fast backend run by `fast`, the operands drawn
/// from `[low, 1)`.
fn check_conv_cases(cases: &[ConvCase], low: f32, label: &str, fast: &RunConv<'_>) {
    let mut r = rng(41);
    for &(n, spec, input) in cases {
        let g = Conv2dGeometry::new("test", &spec, n, input).unwrap();
        let what = format!("{label} {spec:?} on {n}×{input:?}");
        let x = random(&mut r, n, g.input_sample_len(), low, 1.0);
        let w = random(&mut r, spec.out_channels, g.im2col_depth(), low, 1.0);
        let b = random(&mut r, 1, spec.out_channels, low, 1.0);
        let dy = random(&mut r, n, g.output_sample_len(), low, 1.0);
        let dw0 = random(&mut r, spec.out_channels, g.im2col_depth(), -1.0, 1.0);
        let db0 = random(&mut r, 1, spec.out_channels, -1.0, 1.0);
        let run = |mode: GradMode, on_fast: bool| -> [Tensor; 4] {
            if on_fast {
                fast(&g, [&x, &w, &b, &dy, &dw0, &db0], mode)
            } else {
                conv_on(&Reference, &g, [&x, &w, &b, &dy, &dw0, &db0], mode)
            }
        };
        // The absolute sums, in f64.
        let (ax, aw, ab, ady) = (abs64(&x), abs64(&w), abs64(&b), abs64(&dy));
        let mut y_abs = vec![0.0; g.output_len()];
        images::conv2d_forward(&g, &ax, &aw, &ab, &mut y_abs);
        let mut dx_abs = vec![0.0; g.input_len()];
        images::conv2d_backward_input(&g, &ady, &aw, &mut dx_abs);
        let (kh, kw) = spec.kernel;
        let pixels = n * g.out_height() * g.out_width();
        for mode in [GradMode::Accumulate, GradMode::Overwrite] {
            // The gradients' absolute sums start from the start values where they add.
            let start = |t: &Tensor| match mode {
                GradMode::Accumulate => abs64(t),
                GradMode::Overwrite => vec![0.0; t.len()],
            };
            let (mut dw_abs, mut db_abs) = (start(&dw0), start(&db0));
            images::conv2d_backward_weight(&g, &ax, &ady, &mut dw_abs, &mut db_abs);
            let got = run(mode, true);
            let want = run(mode, false);
            let names = [
                "output",
                "input gradient",
                "weight gradient",
                "bias gradient",
            ];
            let bounds = [
                bound(&y_abs, spec.in_channels * kh * kw + 1),
                bound(&dx_abs, spec.out_channels * kh * kw),
                bound(&dw_abs, pixels + 1),
                bound(&db_abs, pixels + 1),
            ];
            for ((name, (got, want)), bound) in names.iter().zip(got.iter().zip(&want)).zip(&bounds)
            {
                let what = format!("{what} {mode:?}: {name}");
                assert_within(&what, got.data(), want.data(), bound);
            }
        }
    }
}

/// Runs the convolution of `g` on `backend`: the output, the input gradient, and the
/// weight and bias gradients starting from `dw0` and `db0` under `mode`.
fn conv_on<B: Backend>(
    backend: &B,
    g: &Conv2dGeometry,
    [x, w, b, dy, dw0, db0]: [&Tensor; 6],
    mode: GradMode,
) -> [Tensor; 4] {
    let up = |t: &Tensor| backend.upload(t).unwrap();
    let (x, w, b, dy, dw, db) = (up(x), up(w), up(b), up(dy), up(dw0), up(db0));
    let y = backend.alloc(g.batch(), g.output_sample_len()).unwrap();
    let dx = backend.alloc(g.batch(), g.input_sample_len()).unwrap();
    backend.conv2d_forward(g, &x, &w, &b, &y).unwrap();
    backend
        .conv2d_backward(g, &x, &w, &dy, Some(&dx), &dw, &db, mode)
        .unwrap();
    [&y, &dx, &dw, &db].map(|t| backend.download(t).unwrap())
}

/// [`conv_on`] on the GPU with `lowering`.
fn gpu_conv_on(
    gpu: &Gpu,
    lowering: ConvLowering,
    g: &Conv2dGeometry,
    [x, w, b, dy, dw0, db0]: [&Tensor; 6],
    mode: GradMode,
) -> [Tensor; 4] {
    let up = |t: &Tensor| gpu.upload(t).unwrap();
    let (x, w, b, dy, dw, db) = (up(x), up(w), up(b), up(dy), up(dw0), up(db0));
    let y = gpu.alloc(g.batch(), g.output_sample_len()).unwrap();
    let dx = gpu.alloc(g.batch(), g.input_sample_len()).unwrap();
    gpu.conv2d_forward_with(lowering, g, &x, &w, &b, &y)
        .unwrap();
    gpu.conv2d_backward_with(lowering, g, &x, &w, &dy, Some(&dx), &dw, &db, mode)
        .unwrap();
    [&y, &dx, &dw, &db].map(|t| gpu.download(t).unwrap())
}

/// A pooling case: batch, channels, input (H, W), spec.
type PoolCase = (usize, usize, (usize, usize), Pool2dSpec);

/// An upsampling case: batch, channels, input (H, W), scale.
type UpsampleCase = (usize, usize, (usize, usize), usize);

/// Pooling cases.
fn pool_cases() -> Vec<PoolCase> {
    vec![
        (3, 6, (28, 28), Pool2dSpec::new((2, 2))),
        (
            1,
            1,
            (7, 9),
            Pool2dSpec::new((3, 3))
                .with_stride((2, 2))
                .with_padding((1, 1)),
        ),
        // Overlapping windows, so that a pixel takes the gradient of several.
        (2, 3, (5, 6), Pool2dSpec::new((2, 3)).with_stride((1, 1))),
        // Odd sizes: the last row and column are dropped by the floor.
        (2, 2, (9, 11), Pool2dSpec::new((2, 2))),
        // The common 2×2 window (the CPU's row-at-a-time path at stride 2 without
        // padding) with padding, and with a stride of 2 on one axis only.
        (2, 2, (7, 8), Pool2dSpec::new((2, 2)).with_padding((1, 1))),
        (1, 3, (6, 7), Pool2dSpec::new((2, 2)).with_stride((2, 1))),
    ]
}

/// Max pooling forward and backward of `backend` against the reference, exactly, on
/// values drawn from a few levels so that windows hold tied maxima.
fn check_pool<B: Backend>(backend: &B, label: &str) {
    check_pool_cases(backend, label, &pool_cases());
}

/// [`check_pool`] over `cases`.
fn check_pool_cases<B: Backend>(backend: &B, label: &str, cases: &[PoolCase]) {
    let mut r = rng(43);
    for &(n, c, input, spec) in cases {
        let g = Pool2dGeometry::new("test", &spec, n, c, input).unwrap();
        let (wi, wo) = (g.input_len() / n, g.output_len() / n);
        let levels = random(&mut r, n, wi, 0.0, 4.0);
        let x = Tensor::new(&[n, wi], levels.data().iter().map(|v| v.floor()).collect()).unwrap();
        let dy = random(&mut r, n, wo, -1.0, 1.0);
        let run = |b: &dyn Fn(&Tensor, &Tensor) -> (Tensor, Tensor)| b(&x, &dy);
        let fast = |x: &Tensor, dy: &Tensor| pool_on(backend, &g, x, dy);
        let slow = |x: &Tensor, dy: &Tensor| pool_on(&Reference, &g, x, dy);
        let (got, want) = (run(&fast), run(&slow));
        assert_eq!(
            got.0.data(),
            want.0.data(),
            "{label} max pool {spec:?} forward"
        );
        assert_eq!(
            got.1.data(),
            want.1.data(),
            "{label} max pool {spec:?} backward"
        );
    }
}

/// A device tensor of `B`.
type On<B> = minidl::backend::DeviceTensor<B>;

/// The output `y` (shaped like `dy`) and input gradient `dx` (shaped like `x`) that
/// `run(backend, x, y, dy, dx)` writes: one forward and backward of a resampling op.
fn forward_backward<B: Backend>(
    backend: &B,
    x: &Tensor,
    dy: &Tensor,
    run: impl Fn(&B, &On<B>, &On<B>, &On<B>, &On<B>) -> minidl::Result<()>,
) -> (Tensor, Tensor) {
    let (x, dy) = (backend.upload(x).unwrap(), backend.upload(dy).unwrap());
    let y = backend.alloc(dy.rows(), dy.cols()).unwrap();
    let dx = backend.alloc(x.rows(), x.cols()).unwrap();
    run(backend, &x, &y, &dy, &dx).unwrap();
    (
        backend.download(&y).unwrap(),
        backend.download(&dx).unwrap(),
    )
}

fn pool_on<B: Backend>(
    backend: &B,
    g: &Pool2dGeometry,
    x: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor) {
    forward_backward(backend, x, dy, |b, x, y, dy, dx| {
        b.max_pool2d_forward(g, x, y)?;
        b.max_pool2d_backward(g, x, dy, dx)
    })
}

/// Average pooling forward and backward of `backend` against the reference: exactly
/// where `exact`, else within `2·γ_{n+3}` of the absolute sums, `n` the most terms
/// of a sum (a window, or the windows holding a pixel).
fn check_avg_pool<B: Backend>(backend: &B, label: &str, exact: bool) {
    check_avg_pool_cases(backend, label, exact, &pool_cases());
}

/// [`check_avg_pool`] over `cases`.
fn check_avg_pool_cases<B: Backend>(backend: &B, label: &str, exact: bool, cases: &[PoolCase]) {
    let mut r = rng(53);
    for &(n, c, input, spec) in cases {
        let g = Pool2dGeometry::new("test", &spec, n, c, input).unwrap();
        let (wi, wo) = (g.input_len() / n, g.output_len() / n);
        let x = random(&mut r, n, wi, -1.0, 1.0);
        let dy = random(&mut r, n, wo, -1.0, 1.0);
        let got = avg_pool_on(backend, &g, &x, &dy);
        let want = avg_pool_on(&Reference, &g, &x, &dy);
        let what = |part: &str| format!("{label} avg pool {spec:?} {part}");
        if exact {
            assert_eq!(got.0.data(), want.0.data(), "{}", what("forward"));
            assert_eq!(got.1.data(), want.1.data(), "{}", what("backward"));
            continue;
        }
        // The same ops on absolute values bound each sum's magnitude.
        let (abs_x, abs_dy) = (
            Tensor::new(x.shape(), abs64(&x).iter().map(|&v| v as f32).collect()).unwrap(),
            Tensor::new(dy.shape(), abs64(&dy).iter().map(|&v| v as f32).collect()).unwrap(),
        );
        let sums = avg_pool_on(&Reference, &g, &abs_x, &abs_dy);
        let (kh, kw) = spec.kernel;
        let overlap = kh.div_ceil(spec.stride.0) * kw.div_ceil(spec.stride.1);
        let forward_bound = bound(&abs64(&sums.0), kh * kw + 3);
        let backward_bound = bound(&abs64(&sums.1), overlap + 3);
        assert_within(
            &what("forward"),
            got.0.data(),
            want.0.data(),
            &forward_bound,
        );
        assert_within(
            &what("backward"),
            got.1.data(),
            want.1.data(),
            &backward_bound,
        );
    }
}

fn avg_pool_on<B: Backend>(
    backend: &B,
    g: &Pool2dGeometry,
    x: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor) {
    forward_backward(backend, x, dy, |b, x, y, dy, dx| {
        b.avg_pool2d_forward(g, x, y)?;
        b.avg_pool2d_backward(g, dy, dx)
    })
}

/// Upsampling forward and backward of `backend` against the reference, exactly.
fn check_upsample<B: Backend>(backend: &B, label: &str) {
    // Scale 2 on rows of whole runs of eight values and on rows with a remainder.
    let cases = [
        (2, 32, (7, 7), 2),
        (2, 3, (5, 19), 2),
        (1, 2, (3, 16), 2),
        (1, 1, (5, 4), 3),
        (3, 2, (1, 1), 1),
    ];
    check_upsample_cases(backend, label, &cases);
}

/// [`check_upsample`] over `cases`.
fn check_upsample_cases<B: Backend>(backend: &B, label: &str, cases: &[UpsampleCase]) {
    let mut r = rng(47);
    for &(n, c, input, scale) in cases {
        let g = UpsampleGeometry::new("test", n, c, input, scale).unwrap();
        let x = random(&mut r, n, g.input_len() / n, -1.0, 1.0);
        let dy = random(&mut r, n, g.output_len() / n, -1.0, 1.0);
        let on = |b: &dyn Fn() -> (Tensor, Tensor)| b();
        let fast = || upsample_on(backend, &g, &x, &dy);
        let slow = || upsample_on(&Reference, &g, &x, &dy);
        let (got, want) = (on(&fast), on(&slow));
        assert_eq!(
            got.0.data(),
            want.0.data(),
            "{label} upsample ×{scale} forward"
        );
        assert_eq!(
            got.1.data(),
            want.1.data(),
            "{label} upsample ×{scale} backward"
        );
    }
}

fn upsample_on<B: Backend>(
    backend: &B,
    g: &UpsampleGeometry,
    x: &Tensor,
    dy: &Tensor,
) -> (Tensor, Tensor) {
    forward_backward(backend, x, dy, |b, x, y, dy, dx| {
        b.upsample_nearest_forward(g, x, y)?;
        b.upsample_nearest_backward(g, dy, dx)
    })
}

fn cpus() -> [Cpu; 2] {
    [Cpu::with_threads(1).unwrap(), Cpu::with_threads(2).unwrap()]
}

#[test]
fn cpu_conv2d_matches_reference() {
    for cpu in cpus() {
        check_conv(&cpu, &format!("cpu ×{}", cpu.threads()));
    }
}

/// Proptest's settings for these properties: `n` cases from a fresh seed each run, and
/// no failure files (proptest prints the shrunk failing case).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any convolution geometry that can work, on both sides of the CPU's limit for its
/// direct loops (up to four output channels at stride 1): batch, channels, kernel,
/// stride, padding and dilation drawn, the input `0..10` pixels larger on each axis
/// than the least the padded, dilated kernel needs.
fn any_conv() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..4, 1usize..10, 1usize..7),
        (1usize..5, 1usize..5, 1usize..3, 1usize..3),
        (0usize..4, 0usize..4, 1usize..4, 1usize..4),
        (0usize..10, 0usize..10),
    )
        .prop_map(
            |((batch, c, o), (kh, kw, sh, sw), (ph, pw, dh, dw), (eh, ew))| {
                let spec = Conv2dSpec::new(c, o, (kh, kw))
                    .with_stride((sh, sw))
                    .with_padding((ph, pw))
                    .with_dilation((dh, dw));
                let least =
                    |k: usize, p: usize, d: usize| (d * (k - 1) + 1).saturating_sub(2 * p).max(1);
                (
                    batch,
                    spec,
                    (least(kh, ph, dh) + eh, least(kw, pw, dw) + ew),
                )
            },
        )
}

/// Any pooling geometry that can work: batch, channels, window, stride and padding (at
/// most half the window, PyTorch's rule) drawn, the input `0..8` pixels larger on each
/// axis than the padded window.
fn any_pool() -> impl Strategy<Value = PoolCase> {
    (
        (1usize..4, 1usize..4),
        (1usize..5, 1usize..5, 1usize..4, 1usize..4),
        (0usize..3, 0usize..3, 0usize..8, 0usize..8),
    )
        .prop_map(|((n, c), (kh, kw, sh, sw), (ph, pw, eh, ew))| {
            let (ph, pw) = (ph.min(kh / 2), pw.min(kw / 2));
            let spec = Pool2dSpec::new((kh, kw))
                .with_stride((sh, sw))
                .with_padding((ph, pw));
            let least = |k: usize, p: usize| k.saturating_sub(2 * p).max(1);
            (n, c, (least(kh, ph) + eh, least(kw, pw) + ew), spec)
        })
}

/// Any upsampling: batch, channels, input (H, W) and scale drawn.
fn any_upsample() -> impl Strategy<Value = UpsampleCase> {
    (1usize..4, 1usize..4, 1usize..13, 1usize..21, 1usize..5)
        .prop_map(|(n, c, h, w, scale)| (n, c, (h, w), scale))
}

proptest! {
    #![proptest_config(cases(48))]

    /// Convolutions of any geometry that can work: the CPU backend at one and two
    /// threads within the bounds above.
    #[test]
    fn cpu_conv2d_of_any_geometry_matches_reference(case in any_conv()) {
        for cpu in cpus() {
            let label = format!("cpu ×{}", cpu.threads());
            check_conv_cases(&[case], -1.0, &label, &|g, t, mode| conv_on(&cpu, g, t, mode));
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// Max and average pooling and upsampling of any geometry on the CPU backend at one
    /// and two threads: the reference's values exactly.
    #[test]
    fn cpu_pools_and_upsampling_of_any_geometry_match_reference_exactly(
        pool in any_pool(),
        upsample in any_upsample(),
    ) {
        for cpu in cpus() {
            let label = format!("cpu ×{}", cpu.threads());
            check_pool_cases(&cpu, &label, &[pool]);
            check_avg_pool_cases(&cpu, &label, true, &[pool]);
            check_upsample_cases(&cpu, &label, &[upsample]);
        }
    }
}

proptest! {
    #![proptest_config(cases(24))]

    /// Convolutions of any geometry that can work on the GPU: both lowerings and the
    /// one the op chooses, within the bounds above.
    #[test]
    fn gpu_conv2d_of_any_geometry_matches_reference(case in any_conv()) {
        let Some(gpu) = gpu() else { return Ok(()) };
        check_conv_cases(&[case], -1.0, "gpu", &|g, t, mode| conv_on(&gpu, g, t, mode));
        for lowering in [ConvLowering::Direct, ConvLowering::Unfolded] {
            check_gpu_conv(&gpu, lowering, &[case], -1.0, "gpu");
        }
    }

    /// Pooling and upsampling of any geometry on the GPU: max pooling and upsampling
    /// exactly, average pooling within the bounds above.
    #[test]
    fn gpu_pools_and_upsampling_of_any_geometry_match_reference(
        pool in any_pool(),
        upsample in any_upsample(),
    ) {
        let Some(gpu) = gpu() else { return Ok(()) };
        check_pool_cases(&gpu, "gpu", &[pool]);
        check_avg_pool_cases(&gpu, "gpu", false, &[pool]);
        check_upsample_cases(&gpu, "gpu", &[upsample]);
    }
}

#[test]
fn cpu_max_pool_matches_reference_exactly() {
    for cpu in cpus() {
        check_pool(&cpu, &format!("cpu ×{}", cpu.threads()));
    }
}

#[test]
fn cpu_upsample_matches_reference_exactly() {
    for cpu in cpus() {
        check_upsample(&cpu, &format!("cpu ×{}", cpu.threads()));
    }
}

/// Both lowerings of the GPU's convolution (the direct kernels and the products over
/// the unfolded input), and the one the op chooses, against the reference.
#[test]
fn gpu_conv2d_matches_reference() {
    let Some(gpu) = gpu() else { return };
    check_conv(&gpu, "gpu");
    for lowering in [ConvLowering::Direct, ConvLowering::Unfolded] {
        check_gpu_conv(&gpu, lowering, &conv_cases(), -1.0, "gpu");
    }
}

/// The fixed rule (measuring off): products from `UNFOLD_FROM` multiply-adds into at
/// least `UNFOLD_CHANNELS` output channels, the direct kernels below and with fewer
/// channels.
#[test]
fn conv2d_fixed_rule_follows_the_work() {
    let spec = |o| Conv2dSpec::new(2, o, (3, 3)).with_padding((1, 1));
    // 8·8 pixels · UNFOLD_CHANNELS channels · 18 taps per image.
    let per_image = 64 * UNFOLD_CHANNELS * 18;
    let images = UNFOLD_FROM.div_ceil(per_image);
    for (n, o, want) in [
        (images - 1, UNFOLD_CHANNELS, ConvLowering::Direct),
        (images, UNFOLD_CHANNELS, ConvLowering::Unfolded),
        (images * 4, UNFOLD_CHANNELS - 1, ConvLowering::Direct),
    ] {
        let g = Conv2dGeometry::new("test", &spec(o), n, (8, 8)).unwrap();
        assert_eq!(
            ConvLowering::fixed_rule(&g),
            want,
            "{n} images, {o} channels"
        );
    }
}

/// The lowering the op takes: the direct kernels without measuring below
/// `UNFOLD_FROM`; above, the faster of the two as measured, once per device (a second
/// request, or one on a batch beyond `MEASURED_IMAGES`, measures nothing), and the one
/// `with_conv_lowering` forces.
#[test]
fn gpu_conv2d_lowering_is_measured_once() {
    let Some(gpu) = gpu() else { return };
    let spec = Conv2dSpec::new(2, 4, (3, 3)).with_padding((1, 1));
    // 8·8 pixels · 4 channels · 18 taps per image.
    let images = UNFOLD_FROM.div_ceil(64 * 4 * 18);
    let small = Conv2dGeometry::new("test", &spec, images - 1, (8, 8)).unwrap();
    let large = Conv2dGeometry::new("test", &spec, images, (8, 8)).unwrap();
    for pass in [
        ConvPass::Forward,
        ConvPass::Backward { input_grad: true },
        ConvPass::Backward { input_grad: false },
    ] {
        let before = gpu.stats();
        assert_eq!(
            gpu.conv_lowering(&small, pass).unwrap(),
            ConvLowering::Direct,
            "{pass:?}"
        );
        assert_eq!(gpu.stats(), before, "{pass:?} below UNFOLD_FROM measured");
        let chosen = gpu.conv_lowering(&large, pass).unwrap();
        let after = gpu.stats();
        assert_eq!(gpu.conv_lowering(&large, pass).unwrap(), chosen);
        // A batch beyond MEASURED_IMAGES takes the choice measured on that many.
        let larger = large.with_batch("test", 8 * MEASURED_IMAGES).unwrap();
        assert_eq!(gpu.conv_lowering(&larger, pass).unwrap(), chosen);
        assert_eq!(gpu.stats(), after, "{pass:?} measured twice");
        // Measuring picks the faster of its two timings.
        let (fastest, times) = gpu.measure_conv(&large, pass).unwrap();
        assert_eq!(times.len(), 2, "{pass:?}: {times:?}");
        assert!(times.iter().all(|t| t.1 > 0.0), "{pass:?}: {times:?}");
        let best = times.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        assert!(
            times.contains(&(fastest, best)),
            "{pass:?}: {fastest:?} from {times:?}"
        );
        for forced in [ConvLowering::Direct, ConvLowering::Unfolded] {
            let pinned = gpu.with_conv_lowering(Some(forced));
            assert_eq!(pinned.conv_lowering(&large, pass).unwrap(), forced);
            assert_eq!(pinned.conv_lowering(&small, pass).unwrap(), forced);
        }
    }
}

/// A batch whose unfolded rows exceed one scratch buffer runs in groups of images,
/// the groups after the first adding to the parameter gradients, and still matches the
/// reference. The operands are positive, so that the sums do not cancel and the bound
/// (relative to the sum of absolute terms) is tight enough to see a group left out.
#[test]
fn gpu_unfolded_conv2d_runs_large_batches_in_groups() {
    let Some(gpu) = gpu() else { return };
    let spec = Conv2dSpec::new(8, 3, (3, 3)).with_padding((1, 1));
    // One image unfolds to 28·28 pixels × 72 taps.
    let per_image = 28 * 28 * 8 * 9;
    let images = SCRATCH_ELEMENTS / per_image + 2;
    check_gpu_conv(
        &gpu,
        ConvLowering::Unfolded,
        &[(images, spec, (28, 28))],
        0.0,
        "gpu, two groups",
    );
}

#[test]
fn gpu_max_pool_matches_reference_exactly() {
    let Some(gpu) = gpu() else { return };
    check_pool(&gpu, "gpu");
}

#[test]
fn cpu_avg_pool_matches_reference_exactly() {
    for cpu in cpus() {
        check_avg_pool(&cpu, &format!("cpu ×{}", cpu.threads()), true);
    }
}

#[test]
fn gpu_avg_pool_matches_reference() {
    let Some(gpu) = gpu() else { return };
    check_avg_pool(&gpu, "gpu", false);
}

#[test]
fn gpu_upsample_matches_reference_exactly() {
    let Some(gpu) = gpu() else { return };
    check_upsample(&gpu, "gpu");
}

/// Under a loop budget (llvmpipe's, here imposed on any adapter) the direct weight and
/// bias gradients run over chunks of the batch, and so do the products' sums, and
/// still match the reference; a shape whose single image needs more of the direct
/// kernels' loop iterations than the budget is an error naming it there, and runs as
/// products where the op chooses.
#[test]
fn gpu_conv2d_splits_its_batch_within_the_loop_budget() {
    let Some(gpu) = gpu() else { return };
    // LeNet's 28×28 output needs 1 + 28·29 = 813 iterations an image: 2 images a chunk.
    let budget = gpu.with_loop_budget(Some(2000));
    for lowering in [ConvLowering::Direct, ConvLowering::Unfolded] {
        check_gpu_conv(&budget, lowering, &conv_cases(), -1.0, "gpu, budget 2000");
    }
    let tight = gpu.with_loop_budget(Some(500));
    let spec = Conv2dSpec::new(1, 6, (5, 5)).with_padding((2, 2));
    let g = Conv2dGeometry::new("test", &spec, 2, (28, 28)).unwrap();
    let mut r = rng(5);
    let x = random(&mut r, 2, g.input_sample_len(), -1.0, 1.0);
    let w = random(&mut r, 6, 25, -1.0, 1.0);
    let dy = random(&mut r, 2, g.output_sample_len(), -1.0, 1.0);
    let up = |t: &Tensor| tight.upload(t).unwrap();
    let (dw, db) = (tight.alloc(6, 25).unwrap(), tight.alloc(1, 6).unwrap());
    let e = tight
        .conv2d_backward_with(
            ConvLowering::Direct,
            &g,
            &up(&x),
            &up(&w),
            &up(&dy),
            None,
            &dw,
            &db,
            GradMode::Overwrite,
        )
        .unwrap_err();
    assert!(e.to_string().contains("budget of 500"), "{e}");
    // The weight gradient's loop is beyond the budget: both backward passes run as
    // products, even where the direct kernels are forced; the forward is within it.
    let forced = tight.with_conv_lowering(Some(ConvLowering::Direct));
    for input_grad in [false, true] {
        let pass = ConvPass::Backward { input_grad };
        assert_eq!(
            tight.conv_lowering(&g, pass).unwrap(),
            ConvLowering::Unfolded
        );
        assert_eq!(
            forced.conv_lowering(&g, pass).unwrap(),
            ConvLowering::Unfolded
        );
    }
    assert_eq!(
        forced.conv_lowering(&g, ConvPass::Forward).unwrap(),
        ConvLowering::Direct
    );
    check_gpu_conv(
        &tight,
        ConvLowering::Unfolded,
        &[(2, spec, (28, 28))],
        -1.0,
        "gpu, budget 500",
    );
}
