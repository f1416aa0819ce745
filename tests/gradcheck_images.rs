//! The image ops' reference definitions (`minidl::backend::reference::images`:
//! convolution, max and average pooling, upsampling) and
//! their geometry (`minidl::backend::image_geometry`), checked against what they
//! mean: every backward against f64 central finite differences of its forward (as
//! `tests/gradcheck.rs` does for the other ops), every forward against a direct
//! formula written differently here (an explicit zero-padded im2col and a matrix
//! product for the convolution) and against small cases worked out by hand from
//! PyTorch's documented definitions, and the geometry's output sizes against
//! PyTorch's formula over a sweep of parameters, with every invalid geometry an error
//! that names the caller's context.
//!
//! The shapes are deliberately odd (7×9 and 5×5 images, batch 1 and 2, 1 and 3 input
//! channels, non-square kernels, stride, padding and dilation combined and unequal
//! between height and width).

mod common;

use common::{assert_matches_finite_differences, rng};
use minidl::backend::reference::images;
use minidl::backend::{Conv2dGeometry, Conv2dSpec, Pool2dGeometry, Pool2dSpec, UpsampleGeometry};
use minidl::Error;
use rand::RngExt;

fn random(r: &mut rand::rngs::ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// PyTorch's documented output size of `Conv2d` / `MaxPool2d` (`ceil_mode = False`),
/// `⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1`, in signed arithmetic with a true
/// floor, so that a kernel larger than the padded input gives 0 or less.
fn pytorch_out(input: usize, k: usize, s: usize, p: usize, d: usize) -> i64 {
    let num = input as i64 + 2 * p as i64 - d as i64 * (k as i64 - 1) - 1;
    num.div_euclid(s as i64) + 1
}

/// One convolution case: batch, input channels, output channels, input (H, W), and the
/// layer's kernel, stride, padding and dilation.
struct ConvCase {
    n: usize,
    spec: Conv2dSpec,
    input: (usize, usize),
}

fn conv_cases() -> Vec<ConvCase> {
    let case = |n, c, o, input, k, s, p, d| ConvCase {
        n,
        spec: Conv2dSpec::new(c, o, k)
            .with_stride(s)
            .with_padding(p)
            .with_dilation(d),
        input,
    };
    vec![
        // Plain 3×3 on a 5×5 image.
        case(1, 1, 1, (5, 5), (3, 3), (1, 1), (0, 0), (1, 1)),
        // Stride, padding and dilation combined, unequal between height and width.
        case(2, 3, 2, (7, 9), (2, 3), (2, 1), (1, 2), (2, 1)),
        case(1, 3, 4, (7, 9), (3, 2), (1, 3), (2, 0), (1, 2)),
        // 1×1 kernel with stride and padding: outputs that read only padding.
        case(2, 1, 3, (5, 5), (1, 1), (2, 2), (1, 1), (1, 1)),
        // Stride larger than the dilated kernel: input pixels no output reads, and
        // rows the floor drops.
        case(2, 3, 1, (7, 9), (1, 2), (3, 4), (0, 1), (1, 1)),
        // A tall kernel with dilation in both directions.
        case(1, 1, 2, (9, 7), (4, 1), (1, 2), (1, 0), (2, 3)),
    ]
}

impl ConvCase {
    fn geometry(&self) -> Conv2dGeometry {
        Conv2dGeometry::new("test conv", &self.spec, self.n, self.input).unwrap()
    }
}

#[test]
fn conv2d_backward_matches_finite_differences() {
    let mut r = rng(40);
    for case in conv_cases() {
        let g = case.geometry();
        let name = format!("{:?} on {}×{:?}", case.spec, case.n, case.input);
        let mut x = random(&mut r, g.input_len());
        let mut w = random(&mut r, g.weight_len());
        let mut b = random(&mut r, g.bias_len());
        let dy = random(&mut r, g.output_len());
        // L = Σ dy ⊙ conv(x, w, b): its gradients are what the backward computes.
        let loss = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![0.0; g.output_len()];
            images::conv2d_forward(&g, x, w, b, &mut y);
            dot(&y, &dy)
        };
        let mut dx = vec![f64::NAN; g.input_len()];
        images::conv2d_backward_input(&g, &dy, &w, &mut dx);
        let mut dw = vec![0.0; g.weight_len()];
        let mut db = vec![0.0; g.bias_len()];
        images::conv2d_backward_weight(&g, &x, &dy, &mut dw, &mut db);
        let (x0, w0, b0) = (x.clone(), w.clone(), b.clone());
        assert_matches_finite_differences(&format!("conv2d dx, {name}"), &mut x, &dx, |x| {
            loss(x, &w0, &b0)
        });
        assert_matches_finite_differences(&format!("conv2d dw, {name}"), &mut w, &dw, |w| {
            loss(&x0, w, &b0)
        });
        assert_matches_finite_differences(&format!("conv2d db, {name}"), &mut b, &db, |b| {
            loss(&x0, &w0, b)
        });
    }
}

/// The convolution written another way: the input copied into an explicitly
/// zero-padded image, one im2col row per output pixel (`n`, `oy`, `ox`) holding the
/// `C·kh·kw` pixels its kernel covers, then the product of those rows with the weight
/// rows plus the bias, laid back out as `(N, O, OH, OW)`. Returns the output and, per
/// output, the sum of the absolute values of its terms.
fn conv_by_im2col(case: &ConvCase, x: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let ConvCase { n, spec, input } = case;
    let (c, o) = (spec.in_channels, spec.out_channels);
    let ((h, wd), (kh, kw)) = (*input, spec.kernel);
    let ((sh, sw), (ph, pw), (dh, dw)) = (spec.stride, spec.padding, spec.dilation);
    let oh = pytorch_out(h, kh, sh, ph, dh) as usize;
    let ow = pytorch_out(wd, kw, sw, pw, dw) as usize;
    let (hp, wp) = (h + 2 * ph, wd + 2 * pw);
    let mut padded = vec![0.0; n * c * hp * wp];
    for (i, &v) in x.iter().enumerate() {
        let (plane, y, xx) = (i / (h * wd), i / wd % h, i % wd);
        padded[plane * hp * wp + (y + ph) * wp + xx + pw] = v;
    }
    let depth = c * kh * kw;
    let mut cols = Vec::with_capacity(n * oh * ow * depth);
    for s in 0..*n {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (py, px) = (oy * sh + ky * dh, ox * sw + kx * dw);
                            cols.push(padded[((s * c + ch) * hp + py) * wp + px]);
                        }
                    }
                }
            }
        }
    }
    let mut y = vec![0.0; n * o * oh * ow];
    let mut size = vec![0.0; n * o * oh * ow];
    for (row, col) in cols.chunks(depth).enumerate() {
        let (s, pixel) = (row / (oh * ow), row % (oh * ow));
        for (m, weights) in w.chunks(depth).enumerate() {
            let at = (s * o + m) * oh * ow + pixel;
            y[at] = dot(col, weights) + b[m];
            size[at] = col
                .iter()
                .zip(weights)
                .map(|(a, b)| (a * b).abs())
                .sum::<f64>()
                + b[m].abs();
        }
    }
    (y, size)
}

#[test]
fn conv2d_forward_matches_im2col_product() {
    let mut r = rng(41);
    for case in conv_cases() {
        let g = case.geometry();
        let (x, w, b) = (
            random(&mut r, g.input_len()),
            random(&mut r, g.weight_len()),
            random(&mut r, g.bias_len()),
        );
        let (want, size) = conv_by_im2col(&case, &x, &w, &b);
        assert_eq!(want.len(), g.output_len(), "{:?}: output size", case.spec);
        let mut y = vec![f64::NAN; g.output_len()];
        images::conv2d_forward(&g, &x, &w, &b, &mut y);
        for i in 0..y.len() {
            assert!(
                (y[i] - want[i]).abs() <= 1e-12 * (1.0 + size[i]),
                "{:?} on {:?}: y[{i}] = {} but the im2col product gives {}",
                case.spec,
                case.input,
                y[i],
                want[i]
            );
        }
        // The same definition in f32, within the bound of a sum of C·kh·kw + 1 terms.
        let as32 = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let mut y32 = vec![f32::NAN; g.output_len()];
        images::conv2d_forward(&g, &as32(&x), &as32(&w), &as32(&b), &mut y32);
        let bound = 2.0 * common::gamma(g.im2col_depth() + 2);
        for i in 0..y.len() {
            assert!(
                (y32[i] as f64 - want[i]).abs() <= bound * (1.0 + size[i]),
                "{:?}: f32 y[{i}] = {} vs {}",
                case.spec,
                y32[i],
                want[i]
            );
        }
    }
}

/// Runs the convolution of `spec` on one `(c, h, w)` sample.
fn conv_one(spec: Conv2dSpec, input: (usize, usize), x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let g = Conv2dGeometry::new("hand case", &spec, 1, input).unwrap();
    let mut y = vec![f64::NAN; g.output_len()];
    images::conv2d_forward(&g, x, w, b, &mut y);
    y
}

#[test]
fn conv2d_follows_pytorch_definition_on_hand_checked_cases() {
    // PyTorch's Conv2d: out(o, i, j) = b(o) + Σ_c Σ_m Σ_n w(o, c, m, n) ·
    // x(c, i·s + m·d − p, j·s + n·d − p), zero outside the image.
    let nine: Vec<f64> = (1..=9).map(f64::from).collect(); // 3×3: 1 2 3 / 4 5 6 / 7 8 9
                                                           // 2×2 ones: the sums of the 2×2 blocks, 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9.
    let y = conv_one(
        Conv2dSpec::new(1, 1, (2, 2)),
        (3, 3),
        &nine,
        &[1.0; 4],
        &[0.0],
    );
    assert_eq!(y, [12.0, 16.0, 24.0, 28.0]);
    // Dilation 2: the kernel's taps land on the four corners, 1+3+7+9, plus the bias.
    let spec = Conv2dSpec::new(1, 1, (2, 2)).with_dilation((2, 2));
    assert_eq!(conv_one(spec, (3, 3), &nine, &[1.0; 4], &[0.5]), [20.5]);
    // 1×1 kernel, padding 1, stride 2: a 3×3 output reading rows and columns −1, 1,
    // 3, so every output but the centre (x(1, 1) = 5) reads only padding.
    let spec = Conv2dSpec::new(1, 1, (1, 1))
        .with_stride((2, 2))
        .with_padding((1, 1));
    let y = conv_one(spec, (3, 3), &nine, &[1.0], &[0.0]);
    assert_eq!(y, [0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
    // A 1×2 kernel of ones on 3×4 (1..12), stride (1, 2), padding (0, 1): output
    // columns read input columns {−1, 0}, {1, 2}, {3, 4}.
    let twelve: Vec<f64> = (1..=12).map(f64::from).collect();
    let spec = Conv2dSpec::new(1, 1, (1, 2))
        .with_stride((1, 2))
        .with_padding((0, 1));
    let y = conv_one(spec, (3, 4), &twelve, &[1.0, 1.0], &[0.0]);
    assert_eq!(y, [1.0, 5.0, 4.0, 5.0, 13.0, 8.0, 9.0, 21.0, 12.0]);
    // Two input channels, two output channels, weight (O, C, kh, kw): channel 0 holds
    // 1..9, channel 1 is all ones. Output 0 = x0(i, j) − x0(i+1, j+1) + 2·x1 + 0.5 =
    // −4 + 2 + 0.5; output 1 = x0(i, j+1) (its weight on channel 1 is 0) − 1, that
    // is 2 3 5 6 minus 1.
    let mut x = nine.clone();
    x.extend([1.0; 9]);
    let w = [
        1.0, 0.0, 0.0, -1.0, // o 0, c 0
        0.0, 0.0, 0.0, 2.0, // o 0, c 1
        0.0, 1.0, 0.0, 0.0, // o 1, c 0
        0.0, 0.0, 0.0, 0.0, // o 1, c 1
    ];
    let y = conv_one(Conv2dSpec::new(2, 2, (2, 2)), (3, 3), &x, &w, &[0.5, -1.0]);
    assert_eq!(y, [-1.5, -1.5, -1.5, -1.5, 1.0, 2.0, 4.0, 5.0]);
}

#[test]
fn conv2d_weight_gradients_accumulate_and_input_gradient_overwrites() {
    let mut r = rng(42);
    let case = &conv_cases()[1];
    let g = case.geometry();
    let (x, w, dy) = (
        random(&mut r, g.input_len()),
        random(&mut r, g.weight_len()),
        random(&mut r, g.output_len()),
    );
    let (mut dw_once, mut db_once) = (vec![0.0; g.weight_len()], vec![0.0; g.bias_len()]);
    images::conv2d_backward_weight(&g, &x, &dy, &mut dw_once, &mut db_once);
    let (dw_start, db_start) = (random(&mut r, g.weight_len()), random(&mut r, g.bias_len()));
    let (mut dw, mut db) = (dw_start.clone(), db_start.clone());
    images::conv2d_backward_weight(&g, &x, &dy, &mut dw, &mut db);
    for i in 0..dw.len() {
        assert!(
            (dw[i] - (dw_start[i] + dw_once[i])).abs() < 1e-12,
            "dw[{i}]"
        );
    }
    for i in 0..db.len() {
        assert!(
            (db[i] - (db_start[i] + db_once[i])).abs() < 1e-12,
            "db[{i}]"
        );
    }
    let mut dx_clean = vec![0.0; g.input_len()];
    images::conv2d_backward_input(&g, &dy, &w, &mut dx_clean);
    let mut dx = vec![123.0; g.input_len()];
    images::conv2d_backward_input(&g, &dy, &w, &mut dx);
    assert_eq!(dx, dx_clean);
}

/// Distinct values 0.01 apart in a scrambled order (i ↦ 7919·i mod len is a
/// permutation for len < 7919), so no finite difference of 1e-6 crosses a tie.
fn distinct(len: usize, seed: usize) -> Vec<f64> {
    (0..len)
        .map(|i| ((i * 7919 + seed) % len) as f64 * 0.01 - 1.0)
        .collect()
}

fn pool_cases() -> Vec<(usize, usize, (usize, usize), Pool2dSpec)> {
    vec![
        (1, 1, (5, 5), Pool2dSpec::new((2, 2))),
        (
            2,
            3,
            (7, 9),
            Pool2dSpec::new((3, 2))
                .with_stride((2, 1))
                .with_padding((1, 1)),
        ),
        (
            1,
            3,
            (7, 9),
            Pool2dSpec::new((3, 3))
                .with_stride((1, 1))
                .with_padding((1, 1)),
        ),
        (
            2,
            1,
            (5, 7),
            Pool2dSpec::new((2, 3))
                .with_stride((3, 2))
                .with_padding((1, 0)),
        ),
    ]
}

/// A pool's input gradient from `backward(g, x, dy, dx)` against the f64 finite
/// differences of `forward` on every pool case, `x` from `inputs(len, case)` and `dy`
/// drawn from seed `dy_seed + case`.
fn check_pool_gradient(
    name: &str,
    inputs: impl Fn(usize, usize) -> Vec<f64>,
    dy_seed: u64,
    forward: fn(&Pool2dGeometry, &[f64], &mut [f64]),
    backward: impl Fn(&Pool2dGeometry, &[f64], &[f64], &mut [f64]),
) {
    for (case, (n, c, input, spec)) in pool_cases().into_iter().enumerate() {
        let g = Pool2dGeometry::new("test pool", &spec, n, c, input).unwrap();
        let mut x = inputs(g.input_len(), case);
        let dy = random(&mut rng(dy_seed + case as u64), g.output_len());
        let mut dx = vec![f64::NAN; g.input_len()];
        backward(&g, &x, &dy, &mut dx);
        assert_matches_finite_differences(
            &format!("{name} dx, {spec:?} on {input:?}"),
            &mut x,
            &dx,
            |x| {
                let mut y = vec![0.0; g.output_len()];
                forward(&g, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    // Distinct values, so that no window holds a tie a finite difference would split.
    check_pool_gradient(
        "max_pool",
        distinct,
        43,
        images::max_pool2d_forward,
        images::max_pool2d_backward,
    );
}

#[test]
fn avg_pool_backward_matches_finite_differences() {
    check_pool_gradient(
        "avg_pool",
        |len, case| random(&mut rng(53 + case as u64), len),
        59,
        images::avg_pool2d_forward,
        |g, _, dy, dx| images::avg_pool2d_backward(g, dy, dx),
    );
}

/// Each output's window of a pool of `spec` over `x` (planes of `(h, w)`), its values
/// in row-major order, each plane copied into an image padded with `fill` (−∞ is
/// PyTorch's implicit padding for the max pool, 0 for the average pool's
/// `count_include_pad`); the output size is first held to PyTorch's formula.
fn padded_windows(
    g: &Pool2dGeometry,
    spec: &Pool2dSpec,
    (h, w): (usize, usize),
    x: &[f64],
    fill: f64,
) -> Vec<Vec<f64>> {
    let ((kh, kw), (sh, sw), (ph, pw)) = (spec.kernel, spec.stride, spec.padding);
    let oh = pytorch_out(h, kh, sh, ph, 1) as usize;
    let ow = pytorch_out(w, kw, sw, pw, 1) as usize;
    assert_eq!(g.output_size(), (oh, ow));
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    let mut windows = Vec::new();
    for plane in x.chunks(h * w) {
        let mut padded = vec![fill; hp * wp];
        for (i, &v) in plane.iter().enumerate() {
            padded[(i / w + ph) * wp + i % w + pw] = v;
        }
        for oy in 0..oh {
            for ox in 0..ow {
                let rows = oy * sh..oy * sh + kh;
                let taps = rows.flat_map(|py| (ox * sw..ox * sw + kw).map(move |px| (py, px)));
                windows.push(taps.map(|(py, px)| padded[py * wp + px]).collect());
            }
        }
    }
    windows
}

#[test]
fn max_pool_forward_matches_padded_window_maximum() {
    // Written another way: each plane copied into an image padded with −∞ (PyTorch's
    // implicit padding), and each window's maximum taken by f64::max.
    for (seed, (n, c, (h, w), spec)) in pool_cases().into_iter().enumerate() {
        let g = Pool2dGeometry::new("test pool", &spec, n, c, (h, w)).unwrap();
        let x = distinct(g.input_len(), seed);
        let windows = padded_windows(&g, &spec, (h, w), &x, f64::NEG_INFINITY);
        let want: Vec<f64> = windows
            .iter()
            .map(|window| window.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let mut y = vec![f64::NAN; g.output_len()];
        images::max_pool2d_forward(&g, &x, &mut y);
        assert_eq!(y, want, "{spec:?} on {:?}", (h, w));
    }
}

#[test]
fn avg_pool_forward_matches_zero_padded_window_mean() {
    // Written another way: each plane copied into an image padded with zeros, and each
    // window's mean over all kh·kw of its positions (PyTorch's count_include_pad).
    for (seed, (n, c, (h, w), spec)) in pool_cases().into_iter().enumerate() {
        let g = Pool2dGeometry::new("test pool", &spec, n, c, (h, w)).unwrap();
        let x = random(&mut rng(61 + seed as u64), g.input_len());
        let windows = padded_windows(&g, &spec, (h, w), &x, 0.0);
        let want: Vec<f64> = windows
            .iter()
            .map(|window| window.iter().sum::<f64>() / window.len() as f64)
            .collect();
        let mut y = vec![f64::NAN; g.output_len()];
        images::avg_pool2d_forward(&g, &x, &mut y);
        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-15,
                "{spec:?} on {:?}, output {i}: {a} vs {b}",
                (h, w)
            );
        }
    }
}

#[test]
fn avg_pool_follows_pytorch_on_a_hand_checked_case() {
    // torch.nn.AvgPool2d(2, stride=1, padding=1) on [[1, 2], [3, 4]]: the 3×3 output
    // of each window's padded sum over 4 (the corners hold one pixel, the edges two,
    // the centre all four); the gradient of dy = 1 everywhere is the number of windows
    // holding a pixel (four each) over 4.
    let spec = Pool2dSpec::new((2, 2))
        .with_stride((1, 1))
        .with_padding((1, 1));
    let g = Pool2dGeometry::new("hand case", &spec, 1, 1, (2, 2)).unwrap();
    let mut y = vec![f64::NAN; 9];
    images::avg_pool2d_forward(&g, &[1.0, 2.0, 3.0, 4.0], &mut y);
    assert_eq!(y, [0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);
    let mut dx = vec![f64::NAN; 4];
    images::avg_pool2d_backward(&g, &[1.0; 9], &mut dx);
    assert_eq!(dx, [1.0; 4]);
}

/// Max pooling of one `(h, w)` plane: the output and the gradient of `dy`.
fn pool_one(
    spec: Pool2dSpec,
    input: (usize, usize),
    x: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let g = Pool2dGeometry::new("hand case", &spec, 1, 1, input).unwrap();
    let mut y = vec![f64::NAN; g.output_len()];
    images::max_pool2d_forward(&g, x, &mut y);
    let mut dx = vec![f64::NAN; g.input_len()];
    images::max_pool2d_backward(&g, x, dy, &mut dx);
    (y, dx)
}

#[test]
fn max_pool_gradient_goes_to_the_first_maximum() {
    // 2×2 windows, stride 2, each with a tie: the gradient goes to the first maximum in
    // row-major order, (0,1) for 5, (0,2) for the four 2s, (2,0) for 7, (2,3) for 4.
    #[rustfmt::skip]
    let x = [
        3.0, 5.0, 2.0, 2.0,
        5.0, 1.0, 2.0, 2.0,
        7.0, 1.0, -1.0, 4.0,
        0.0, 7.0, 4.0, 4.0,
    ];
    let (y, dx) = pool_one(Pool2dSpec::new((2, 2)), (4, 4), &x, &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(y, [5.0, 2.0, 7.0, 4.0]);
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 2.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
        3.0, 0.0, 0.0, 4.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(dx, want);
    // Overlapping windows (stride 1) on equal values: each takes its own first pixel,
    // and a pixel taken twice gets both gradients.
    let spec = Pool2dSpec::new((2, 2)).with_stride((1, 1));
    let (y, dx) = pool_one(spec, (2, 3), &[1.0; 6], &[1.0, 2.0]);
    assert_eq!(y, [1.0, 1.0]);
    assert_eq!(dx, [1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    // With padding 1 every 2×2 window of a 2×2 plane of equal values takes its first
    // real pixel, (max(oy − 1, 0), max(ox − 1, 0)): (0,0) for the four top-left
    // windows, (0,1) for two, (1,0) for two, (1,1) for one.
    let spec = Pool2dSpec::new((2, 2))
        .with_stride((1, 1))
        .with_padding((1, 1));
    let (y, dx) = pool_one(spec, (2, 2), &[1.0; 4], &[1.0; 9]);
    assert_eq!(y, [1.0; 9]);
    assert_eq!(dx, [4.0, 2.0, 2.0, 1.0]);
    // A window of −∞ (PyTorch starts from −∞ at the first pixel and needs a greater
    // value to move): −∞, gradient to its first pixel.
    let (y, dx) = pool_one(
        Pool2dSpec::new((2, 2)),
        (2, 2),
        &[f64::NEG_INFINITY; 4],
        &[1.0],
    );
    assert_eq!(y, [f64::NEG_INFINITY]);
    assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn max_pool_nan_follows_pytorch_cpu_rule() {
    // PyTorch's CPU kernel replaces the maximum where `val > max || isnan(val)`: a
    // window with a NaN gives NaN, and its gradient goes to the last NaN of the scan.
    let nan = f64::NAN;
    let (y, dx) = pool_one(
        Pool2dSpec::new((2, 2)),
        (2, 2),
        &[1.0, nan, 2.0, nan],
        &[1.0],
    );
    assert!(y[0].is_nan());
    assert_eq!(dx, [0.0, 0.0, 0.0, 1.0]);
    let (y, dx) = pool_one(
        Pool2dSpec::new((2, 2)),
        (2, 2),
        &[nan, 5.0, 6.0, 7.0],
        &[1.0],
    );
    assert!(y[0].is_nan());
    assert_eq!(dx, [1.0, 0.0, 0.0, 0.0]);
}

fn upsample_cases() -> Vec<(usize, usize, (usize, usize), usize)> {
    vec![
        (1, 1, (5, 5), 1),
        (2, 3, (7, 9), 2),
        (1, 3, (5, 7), 3),
        (2, 1, (1, 1), 4),
    ]
}

#[test]
fn upsample_nearest_forward_repeats_rows_and_columns() {
    let mut r = rng(44);
    for (n, c, (h, w), s) in upsample_cases() {
        let g = UpsampleGeometry::new("test upsample", n, c, (h, w), s).unwrap();
        assert_eq!(g.output_size(), (h * s, w * s));
        let x = random(&mut r, g.input_len());
        // Written another way: each input row with every value repeated s times, that
        // row then repeated s times.
        let mut want = Vec::new();
        for row in x.chunks(w) {
            let wide: Vec<f64> = row
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, s))
                .collect();
            for _ in 0..s {
                want.extend_from_slice(&wide);
            }
        }
        let mut y = vec![f64::NAN; g.output_len()];
        images::upsample_nearest_forward(&g, &x, &mut y);
        assert_eq!(y, want, "{n}×{c}×{h}×{w} by {s}");
    }
    // By hand: [1 2] by 2 is [1 1 2 2] twice; the gradient of dy = 1..8 sums each
    // 2×2 block, 1+2+5+6 and 3+4+7+8.
    let g = UpsampleGeometry::new("hand case", 1, 1, (1, 2), 2).unwrap();
    let mut y = vec![0.0; 8];
    images::upsample_nearest_forward(&g, &[1.0, 2.0], &mut y);
    assert_eq!(y, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    let dy: Vec<f64> = (1..=8).map(f64::from).collect();
    let mut dx = vec![f64::NAN; 2];
    images::upsample_nearest_backward(&g, &dy, &mut dx);
    assert_eq!(dx, [14.0, 22.0]);
}

#[test]
fn upsample_nearest_backward_matches_finite_differences() {
    let mut r = rng(45);
    for (n, c, input, s) in upsample_cases() {
        let g = UpsampleGeometry::new("test upsample", n, c, input, s).unwrap();
        let mut x = random(&mut r, g.input_len());
        let dy = random(&mut r, g.output_len());
        let mut dx = vec![f64::NAN; g.input_len()];
        images::upsample_nearest_backward(&g, &dy, &mut dx);
        assert_matches_finite_differences(
            &format!("upsample dx, {n}×{c}×{input:?} by {s}"),
            &mut x,
            &dx,
            |x| {
                let mut y = vec![0.0; g.output_len()];
                images::upsample_nearest_forward(&g, x, &mut y);
                dot(&y, &dy)
            },
        );
    }
}

/// (input, kernel, stride, padding, dilation) for one dimension, over a sweep.
fn sweep() -> Vec<(usize, usize, usize, usize, usize)> {
    let mut all = Vec::new();
    for input in 1..=9 {
        for k in 1..=4 {
            for s in 1..=3 {
                for p in 0..=2 {
                    for d in 1..=3 {
                        all.push((input, k, s, p, d));
                    }
                }
            }
        }
    }
    all
}

#[test]
fn conv_geometry_follows_pytorch_output_size() {
    let all = sweep();
    let (mut valid, mut invalid) = (0, 0);
    for (i, &(h, kh, sh, ph, dh)) in all.iter().enumerate() {
        // The width takes another combination, so that the two dimensions differ.
        let (w, kw, sw, pw, dw) = all[(i * 31 + 7) % all.len()];
        let spec = Conv2dSpec::new(3, 2, (kh, kw))
            .with_stride((sh, sw))
            .with_padding((ph, pw))
            .with_dilation((dh, dw));
        let (oh, ow) = (
            pytorch_out(h, kh, sh, ph, dh),
            pytorch_out(w, kw, sw, pw, dw),
        );
        let context = format!("conv2d sweep {i}");
        match Conv2dGeometry::new(&context, &spec, 2, (h, w)) {
            Ok(g) => {
                valid += 1;
                assert!(
                    oh >= 1 && ow >= 1,
                    "{spec:?} on {h}×{w}: PyTorch gives {oh}×{ow}"
                );
                let (oh, ow) = (oh as usize, ow as usize);
                assert_eq!(g.output_size(), (oh, ow), "{spec:?} on {h}×{w}");
                assert_eq!(g.input_len(), 2 * 3 * h * w);
                assert_eq!(g.output_len(), 2 * 2 * oh * ow);
                assert_eq!(g.weight_len(), 2 * 3 * kh * kw);
                assert_eq!(g.im2col_depth(), 3 * kh * kw);
                // The tap and its inverse agree: output (oy, ky) reads input iy exactly
                // when input iy is read by (oy, ky), iy = oy·s + ky·d − p.
                for oy in 0..oh {
                    for ky in 0..kh {
                        let iy = (oy * sh + ky * dh).checked_sub(ph).filter(|&v| v < h);
                        assert_eq!(g.input_y(oy, ky), iy, "{spec:?}: input_y({oy}, {ky})");
                        if let Some(iy) = iy {
                            assert_eq!(g.output_y(iy, ky), Some(oy), "{spec:?}: output_y");
                        }
                    }
                }
                for ix in 0..w {
                    for kx in 0..kw {
                        if let Some(ox) = g.output_x(ix, kx) {
                            assert_eq!(g.input_x(ox, kx), Some(ix), "{spec:?}: input_x");
                        }
                    }
                }
            }
            Err(e) => {
                invalid += 1;
                assert!(oh < 1 || ow < 1, "{spec:?} on {h}×{w}: {e}");
                assert!(matches!(e, Error::Shape { .. }), "{e:?}");
                assert!(e.to_string().contains(&context), "{e}");
            }
        }
    }
    assert!(
        valid > 500 && invalid > 100,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn pool_geometry_follows_pytorch_output_size() {
    for (i, &(h, k, s, p, _)) in sweep().iter().enumerate() {
        let (w, kw, sw, pw) = (10 - h, 5 - k, 4 - s, p.min((5 - k) / 2));
        let spec = Pool2dSpec::new((k, kw))
            .with_stride((s, sw))
            .with_padding((p, pw));
        let (oh, ow) = (pytorch_out(h, k, s, p, 1), pytorch_out(w, kw, sw, pw, 1));
        let context = format!("max_pool sweep {i}");
        let got = Pool2dGeometry::new(&context, &spec, 2, 3, (h, w));
        // PyTorch also requires the padding to be at most half the window.
        if p > k / 2 || oh < 1 || ow < 1 {
            let e = got.expect_err(&format!("{spec:?} on {h}×{w}"));
            assert!(e.to_string().contains(&context), "{e}");
        } else {
            let g = got.unwrap();
            assert_eq!(
                g.output_size(),
                (oh as usize, ow as usize),
                "{spec:?} on {h}×{w}"
            );
            assert_eq!(g.output_len(), 6 * oh as usize * ow as usize);
        }
    }
    // PyTorch's default stride is the kernel size.
    assert_eq!(Pool2dSpec::new((3, 2)).stride, (3, 2));
    let g = Pool2dGeometry::new("default", &Pool2dSpec::new((2, 3)), 1, 1, (7, 9)).unwrap();
    assert_eq!(g.output_size(), (3, 3));
}

#[test]
fn invalid_geometries_are_errors_naming_the_context() {
    let huge = usize::MAX;
    let huge_text = huge.to_string();
    let ok = Conv2dSpec::new(3, 2, (3, 3));
    let conv = |spec: Conv2dSpec, n, input| {
        move |ctx: &str| Conv2dGeometry::new(ctx, &spec, n, input).map(|_| ())
    };
    let pool = |spec: Pool2dSpec, n, c, input| {
        move |ctx: &str| Pool2dGeometry::new(ctx, &spec, n, c, input).map(|_| ())
    };
    let up = |c, input, s| move |ctx: &str| UpsampleGeometry::new(ctx, 1, c, input, s).map(|_| ());
    type Case<'a> = (Box<dyn Fn(&str) -> minidl::Result<()>>, bool, Vec<&'a str>);
    // Each: the constructor, whether the error is a Shape error (else InvalidArgument),
    // and what its message must say besides the context.
    let cases: Vec<Case> = vec![
        (
            Box::new(conv(ok.with_stride((0, 1)), 1, (5, 5))),
            false,
            vec!["stride", "(0, 1)"],
        ),
        (
            Box::new(conv(ok.with_dilation((2, 0)), 1, (5, 5))),
            false,
            vec!["dilation", "(2, 0)"],
        ),
        (
            Box::new(conv(Conv2dSpec::new(0, 2, (3, 3)), 1, (5, 5))),
            false,
            vec!["input channels", "0"],
        ),
        (
            Box::new(conv(Conv2dSpec::new(3, 0, (3, 3)), 1, (5, 5))),
            false,
            vec!["output channels", "0"],
        ),
        (Box::new(conv(ok, 0, (5, 5))), false, vec!["batch", "0"]),
        (
            Box::new(conv(Conv2dSpec::new(3, 2, (0, 3)), 1, (5, 5))),
            false,
            vec!["kernel", "0×3"],
        ),
        (Box::new(conv(ok, 1, (0, 5))), false, vec!["input", "0×5"]),
        // A 3×3 kernel with dilation 2 spans 5×5, over a 4×4 input (with padding 1 it
        // fits, below).
        (
            Box::new(conv(ok.with_dilation((2, 2)), 1, (4, 4))),
            true,
            vec!["5×5", "4×4", "3×3", "(2, 2)"],
        ),
        // Too large in one dimension only.
        (
            Box::new(conv(Conv2dSpec::new(1, 1, (2, 6)), 1, (7, 5))),
            true,
            vec!["2×6", "7×5"],
        ),
        (
            Box::new(conv(Conv2dSpec::new(3, 2, (huge, 1)), 1, (5, 5))),
            true,
            vec![&huge_text],
        ),
        // Sizes that overflow usize: errors, not panics.
        (
            Box::new(conv(ok, huge, (5, 5))),
            false,
            vec!["input", "usize"],
        ),
        (
            Box::new(conv(ok.with_padding((huge, 0)), 1, (5, 5))),
            false,
            vec!["usize"],
        ),
        (
            Box::new(conv(ok.with_dilation((huge, 1)), 1, (5, 5))),
            false,
            vec!["usize"],
        ),
        (
            Box::new(conv(ok.with_padding((huge / 4, huge / 4)), 1, (5, 5))),
            false,
            vec!["output", "usize"],
        ),
        (
            Box::new(pool(
                Pool2dSpec::new((2, 2)).with_stride((1, 0)),
                1,
                1,
                (5, 5),
            )),
            false,
            vec!["stride", "(1, 0)"],
        ),
        (
            Box::new(pool(Pool2dSpec::new((0, 2)), 1, 1, (5, 5))),
            false,
            vec!["kernel", "0×2"],
        ),
        (
            Box::new(pool(
                Pool2dSpec::new((3, 3)).with_padding((2, 1)),
                1,
                1,
                (5, 5),
            )),
            false,
            vec!["padding", "(2, 1)", "3×3"],
        ),
        (
            Box::new(pool(Pool2dSpec::new((4, 1)), 1, 1, (3, 5))),
            true,
            vec!["4×1", "3×5"],
        ),
        (
            Box::new(pool(Pool2dSpec::new((2, 2)), 1, 0, (5, 5))),
            false,
            vec!["channels", "0"],
        ),
        (
            Box::new(pool(Pool2dSpec::new((2, 2)), 0, 1, (5, 5))),
            false,
            vec!["batch", "0"],
        ),
        (
            Box::new(pool(Pool2dSpec::new((2, 2)), huge, 2, (5, 5))),
            false,
            vec!["usize"],
        ),
        (Box::new(up(1, (5, 5), 0)), false, vec!["scale", "0"]),
        (Box::new(up(0, (5, 5), 2)), false, vec!["channels", "0"]),
        (Box::new(up(1, (5, 0), 2)), false, vec!["5×0"]),
        (Box::new(up(1, (5, 5), huge)), false, vec!["usize"]),
    ];
    for (i, (make, shape_error, numbers)) in cases.iter().enumerate() {
        let context = format!("image layer {i}");
        let e = make(&context).expect_err(&context);
        let message = e.to_string();
        match e {
            Error::Shape { .. } => assert!(shape_error, "{context}: {message}"),
            Error::InvalidArgument(_) => assert!(!shape_error, "{context}: {message}"),
            other => panic!("{context}: unexpected error {other:?}"),
        }
        assert!(
            message.contains(&context),
            "{message} does not name {context}"
        );
        for n in numbers {
            assert!(message.contains(n), "{message} does not say {n}");
        }
    }
    // The dilated kernel that did not fit 4×4 fits with padding 1 (6 ≥ 5).
    let spec = ok.with_dilation((2, 2)).with_padding((1, 1));
    let fits = Conv2dGeometry::new("fits", &spec, 1, (4, 4)).unwrap();
    assert_eq!(fits.output_size(), (2, 2));
}
