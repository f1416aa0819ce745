//! The 2-D convolutions of stride 1 with few output channels on the [`Cpu`](crate::Cpu)
//! backend, computed straight from each image's padded planes instead of through an
//! unfolded copy. With one output channel (a denoiser's last layer) the unfolded
//! product is a matrix–vector product: the copy is written and read once for a single
//! output row, and most of the time goes to moving it. Here each run of up to
//! [`LANES`] outputs at the padded width sums `w[o, c, tap] · x_pad[c, p + offset(tap)]`
//! in registers, for blocks of up to four output channels at once; the input gradient
//! gathers `w[o, c, tap] · dy[q − offset(tap)]` the same way (blocks of four input
//! channels), and each weight gradient is one dot product of `dy` with a shifted plane
//! (four taps sharing each load of `dy`).
//! The batch is split between the threads as for the products (the weight gradients'
//! per-task sums added in task order); each image's sums run in a fixed order, so the
//! result does not depend on the threads. The loops are compiled for AVX2 and AVX-512
//! as well, and the widest build the processor has runs (the same operations in the
//! same order in each, so the same results).

use rayon::ThreadPool;

use crate::backend::cpu::convolution::{
    layout, pad, split_images, sum_weight_partials, tap_start, tasks, COLUMNS, GATHERED, PADDED,
};
use crate::backend::cpu::scratch::with_scratch;
use crate::backend::Conv2dGeometry;

/// The most output channels a convolution may have to be computed directly; above it
/// the unfolded products are as fast or faster. On an AMD EPYC (family 25 model 17;
/// one thread, batch 64, 3×3 kernels, 32 input channels on 14²; forward, input and
/// weight gradient) 4 output channels took 0.63 + 0.59 + 1.10 ms here against
/// 0.70 + 1.03 + 1.92 ms as products; 8 took 1.17 + 1.12 + 2.10 ms here against
/// 1.01 + 1.37 + 2.27 ms; 16 took 2.27 + 2.27 + 4.16 ms here against
/// 1.62 + 2.01 + 2.98 ms.
const MAX_OUTPUTS: usize = 4;

/// The most values of one channel (outputs or input-gradient values) summed in
/// registers at once: the runs of a block of one channel; blocks of more channels run
/// shorter runs that divide it. The scratch rows are whole runs of it.
const LANES: usize = 64;

/// Whether the convolution of `g` is computed here: stride 1 and at most
/// [`MAX_OUTPUTS`] output channels.
pub(super) fn applies(g: &Conv2dGeometry) -> bool {
    g.stride() == (1, 1) && g.out_channels() <= MAX_OUTPUTS
}

/// The sizes of an image's padded planes (see [`layout`]): `padded` as the layout
/// gives it (rows, the padded width `cols`, a plane's length), the `span` of values at
/// the padded width that hold the outputs, and `lead`, the offset of the last tap.
#[derive(Clone, Copy)]
struct Planes {
    padded: (usize, usize, usize),
    cols: usize,
    plane: usize,
    span: usize,
    lead: usize,
}

impl Planes {
    fn of(g: &Conv2dGeometry) -> Planes {
        let l = layout(g);
        let padded = l.padded.expect("a convolution of stride 1 is padded");
        let (_, cols, plane) = padded;
        let (kh, kw) = g.kernel();
        Planes {
            padded,
            cols,
            plane,
            span: l.span,
            lead: tap_start(g, cols, kh - 1, kw - 1),
        }
    }

    /// The values at the padded width of an input plane's interior rows (those that
    /// hold the image), in whole runs.
    fn interior(&self, g: &Conv2dGeometry) -> usize {
        Self::runs(g.input_size().0 * self.cols)
    }

    /// The length of each output channel's gradient row for the input gradient: the
    /// gradient from `lead` on, with the zeros that the interior's runs read around
    /// it (up to `lead` before and after).
    fn spread_len(&self, g: &Conv2dGeometry) -> usize {
        let first = g.padding().0 * self.cols;
        self.lead + (first + self.interior(g)).max(self.span) + self.lead
    }

    /// `len` rounded up to whole runs of [`LANES`].
    fn runs(len: usize) -> usize {
        len.div_ceil(LANES) * LANES
    }

    /// The padded image's length: its planes, then one run of zeros that the last runs
    /// of the last plane read past its end (into values that only reach dropped
    /// outputs).
    fn padded_len(&self, g: &Conv2dGeometry) -> usize {
        g.in_channels() * self.plane + LANES
    }
}

/// Pads image `x` into `padded` ([`Planes::padded_len`] long).
fn pad_image(g: &Conv2dGeometry, p: &Planes, x: &[f32], padded: &mut [f32]) {
    pad(g, p.padded, x, padded);
    padded[g.in_channels() * p.plane..].fill(0.0);
}

/// The instruction sets a build of the loops is compiled for.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Simd {
    /// Any processor.
    Portable,
    /// AVX2 (256-bit registers).
    Avx2,
    /// AVX-512F (512-bit registers).
    Avx512,
}

impl Simd {
    /// The widest build this processor runs.
    fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Simd::Avx2;
            }
        }
        Simd::Portable
    }
}

/// Calls `$run::<B, L>($args…)` for a block of `$count` (1 to 4) channels: `B` the
/// block's channels, `L` the values of each summed in registers at once (at most
/// [`LANES`], which is a multiple of each): 64 accumulators in all, or up to 128 with
/// the 32 registers of AVX-512 (`$wide`).
macro_rules! by_block {
    ($count:expr, $wide:expr, $run:ident($($arg:expr),*)) => {
        match ($count, $wide) {
            (1, _) => $run::<1, 64>($($arg),*),
            (2, _) => $run::<2, 32>($($arg),*),
            (3, false) => $run::<3, 16>($($arg),*),
            (_, false) => $run::<4, 16>($($arg),*),
            (3, true) => $run::<3, 32>($($arg),*),
            (_, true) => $run::<4, 32>($($arg),*),
        }
    };
}

/// `acc[i][j] += factors[i] · src[j]` over one run of `L` values, for each of the
/// block's `B` channels.
#[inline(always)]
fn add_scaled<const B: usize, const L: usize>(
    acc: &mut [[f32; L]; B],
    factors: impl Fn(usize) -> f32,
    src: &[f32],
) {
    let src: &[f32; L] = src[..L].try_into().expect("one run");
    for (i, acc) in acc.iter_mut().enumerate() {
        let factor = factors(i);
        for (a, s) in acc.iter_mut().zip(src) {
            *a += factor * s;
        }
    }
}

/// One image's output `y_n` (`O × OH × OW`, written over) from its padded planes, the
/// output channels in blocks of up to four, with `runs` (`O` rows of
/// [`Planes::runs`] of the span) as scratch.
#[inline(always)]
fn forward_image(
    simd: Simd,
    g: &Conv2dGeometry,
    p: &Planes,
    padded: &[f32],
    (w, b): (&[f32], &[f32]),
    runs: &mut [f32],
    y_n: &mut [f32],
) {
    let (outs, ow) = (g.out_channels(), g.out_width());
    let row = Planes::runs(p.span);
    for o in (0..outs).step_by(4) {
        let runs = &mut runs[o * row..];
        let block = (outs - o).min(4);
        by_block!(
            block,
            simd == Simd::Avx512,
            forward_block(g, p, padded, w, o, row, runs)
        );
    }
    for ((o, y_o), src) in y_n
        .chunks_exact_mut(g.out_height() * ow)
        .enumerate()
        .zip(runs.chunks_exact(row))
    {
        for (line, src) in y_o.chunks_exact_mut(ow).zip(src.chunks(p.cols)) {
            for (d, s) in line.iter_mut().zip(src) {
                *d = s + b[o];
            }
        }
    }
}

/// [`forward_image`] for the `B` output channels from `first` on: each run of `L`
/// outputs of each summed over the input channels and taps in that order, into
/// `runs` (rows of `row` values, one per channel).
#[inline(always)]
fn forward_block<const B: usize, const L: usize>(
    g: &Conv2dGeometry,
    p: &Planes,
    padded: &[f32],
    w: &[f32],
    first: usize,
    row: usize,
    runs: &mut [f32],
) {
    let ((kh, kw), depth) = (g.kernel(), g.im2col_depth());
    let w = &w[first * depth..(first + B) * depth];
    for at in (0..row).step_by(L) {
        let mut acc = [[0.0; L]; B];
        for c in 0..g.in_channels() {
            let x_c = &padded[c * p.plane + at..];
            for ky in 0..kh {
                for kx in 0..kw {
                    let tap = (c * kh + ky) * kw + kx;
                    let src = &x_c[tap_start(g, p.cols, ky, kx)..];
                    add_scaled(&mut acc, |i| w[i * depth + tap], src);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            runs[i * row + at..][..L].copy_from_slice(acc);
        }
    }
}

/// One image's input gradient `dx_n` (`C × H × W`, written over) from `spread`: each
/// output channel's gradient at the padded width (`O` rows of `spread_len` values, the
/// gradient from `lead` on, zeros around it). The input channels go in blocks of up
/// to four, with `runs` (four rows of [`Planes::interior`] values) as the scratch for
/// their padded planes' interior rows.
#[inline(always)]
fn input_image(
    simd: Simd,
    g: &Conv2dGeometry,
    p: &Planes,
    spread: (&[f32], usize),
    w: &[f32],
    runs: &mut [f32],
    dx_n: &mut [f32],
) {
    let ((h, w_in), pw, chans) = (g.input_size(), g.padding().1, g.in_channels());
    let row = p.interior(g);
    for c in (0..chans).step_by(4) {
        let block = (chans - c).min(4);
        by_block!(
            block,
            simd == Simd::Avx512,
            input_block(g, p, spread, w, c, row, runs)
        );
        let planes = dx_n[c * h * w_in..(c + block) * h * w_in].chunks_exact_mut(h * w_in);
        for (dx_c, src) in planes.zip(runs.chunks_exact(row)) {
            for (line, src) in dx_c.chunks_exact_mut(w_in).zip(src.chunks(p.cols)) {
                line.copy_from_slice(&src[pw..pw + w_in]);
            }
        }
    }
}

/// [`input_image`] for the `B` input channels from `first` on: each run of `L` values
/// of their padded planes' interior rows summed over the output channels and taps in
/// that order, into `runs` (rows of `row` values, one per channel).
#[inline(always)]
fn input_block<const B: usize, const L: usize>(
    g: &Conv2dGeometry,
    p: &Planes,
    (spread, spread_len): (&[f32], usize),
    w: &[f32],
    first: usize,
    row: usize,
    runs: &mut [f32],
) {
    let ((kh, kw), depth) = (g.kernel(), g.im2col_depth());
    let top = g.padding().0 * p.cols + p.lead;
    for at in (0..row).step_by(L) {
        let mut acc = [[0.0; L]; B];
        for (o, dy_o) in spread.chunks_exact(spread_len).enumerate() {
            let w_o = &w[o * depth + first * kh * kw..];
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = &dy_o[top + at - tap_start(g, p.cols, ky, kx)..];
                    add_scaled(&mut acc, |i| w_o[(i * kh + ky) * kw + kx], src);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            runs[i * row + at..][..L].copy_from_slice(acc);
        }
    }
}

/// The dot products of `a` with `T` runs of `b`, from `starts[t]` on, over `a`'s
/// length (each `a` value loaded once for all of them): each in 16 interleaved sums
/// over the whole runs of 16, added in order, then the rest.
#[inline(always)]
fn dots<const T: usize>(a: &[f32], b: &[f32], starts: [usize; T]) -> [f32; T] {
    const WIDTH: usize = 16;
    let mut acc = [[0.0f32; WIDTH]; T];
    let whole = a.len() / WIDTH * WIDTH;
    for at in (0..whole).step_by(WIDTH) {
        let a: &[f32; WIDTH] = a[at..at + WIDTH].try_into().expect("one run");
        for (acc, start) in acc.iter_mut().zip(starts) {
            let b: &[f32; WIDTH] = b[start + at..][..WIDTH].try_into().expect("one run");
            for ((s, a), b) in acc.iter_mut().zip(a).zip(b) {
                *s += a * b;
            }
        }
    }
    let mut sums = [0.0; T];
    for ((sum, acc), start) in sums.iter_mut().zip(&acc).zip(starts) {
        let b = &b[start + whole..];
        let tail: f32 = a[whole..].iter().zip(b).map(|(a, b)| a * b).sum();
        *sum = acc.iter().sum::<f32>() + tail;
    }
    sums
}

/// Adds [`dots`] of `a` with the `T` runs of `b` at the offsets of taps
/// `first..first + T` (of a `kw`-wide kernel) onto `dw[first..first + T]`.
#[inline(always)]
fn add_dots<const T: usize>(
    g: &Conv2dGeometry,
    cols: usize,
    (a, b): (&[f32], &[f32]),
    first: usize,
    dw: &mut [f32],
) {
    let kw = g.kernel().1;
    let starts: [usize; T] =
        std::array::from_fn(|t| tap_start(g, cols, (first + t) / kw, (first + t) % kw));
    for (d, s) in dw[first..first + T].iter_mut().zip(dots(a, b, starts)) {
        *d += s;
    }
}

/// Adds one image's weight gradients to `dw` (`O × C·kh·kw`): `dy_rows` holds its
/// output gradient at the padded width (`O` rows of `span` values, zeros past each
/// output row), each weight's gradient the dot product of its row with the padded
/// plane from that tap's offset on, four taps at a time.
#[inline(always)]
fn weight_image(
    _: Simd,
    g: &Conv2dGeometry,
    p: &Planes,
    padded: &[f32],
    dy_rows: &[f32],
    dw: &mut [f32],
) {
    let (kh, kw) = g.kernel();
    let (depth, taps) = (g.im2col_depth(), kh * kw);
    for (dy_o, dw_o) in dy_rows.chunks_exact(p.span).zip(dw.chunks_exact_mut(depth)) {
        for (c, dw_c) in dw_o.chunks_exact_mut(taps).enumerate() {
            let pair = (dy_o, &padded[c * p.plane..(c + 1) * p.plane]);
            for t in (0..taps).step_by(4) {
                match taps - t {
                    1 => add_dots::<1>(g, p.cols, pair, t, dw_c),
                    2 => add_dots::<2>(g, p.cols, pair, t, dw_c),
                    3 => add_dots::<3>(g, p.cols, pair, t, dw_c),
                    _ => add_dots::<4>(g, p.cols, pair, t, dw_c),
                }
            }
        }
    }
}

/// Defines `$name(simd, args…)`: `$body` (an `#[inline(always)]` function) compiled
/// for the instruction set `simd` (which the processor must have).
macro_rules! with_simd {
    ($name:ident, $avx2:ident, $avx512:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[doc = concat!("[`", stringify!($body), "`], compiled for `simd`.")]
        fn $name(simd: Simd, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            match simd {
                // SAFETY: `Simd::detect` gives these only where the processor has them.
                Simd::Avx512 => return unsafe { $avx512($($arg),*) },
                Simd::Avx2 => return unsafe { $avx2($($arg),*) },
                Simd::Portable => {}
            }
            $body(simd, $($arg),*)
        }

        #[doc = concat!("[`", stringify!($body), "`] compiled for AVX2.")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($arg: $ty),*) {
            $body(Simd::Avx2, $($arg),*)
        }

        #[doc = concat!("[`", stringify!($body), "`] compiled for AVX-512F.")]
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512($($arg: $ty),*) {
            $body(Simd::Avx512, $($arg),*)
        }
    };
}

with_simd!(forward_on, forward_avx2, forward_avx512, forward_image, (
    g: &Conv2dGeometry,
    p: &Planes,
    padded: &[f32],
    params: (&[f32], &[f32]),
    runs: &mut [f32],
    y_n: &mut [f32]
));
with_simd!(input_on, input_avx2, input_avx512, input_image, (
    g: &Conv2dGeometry,
    p: &Planes,
    spread: (&[f32], usize),
    w: &[f32],
    runs: &mut [f32],
    dx_n: &mut [f32]
));
with_simd!(weight_on, weight_avx2, weight_avx512, weight_image, (
    g: &Conv2dGeometry,
    p: &Planes,
    padded: &[f32],
    dy_rows: &[f32],
    dw: &mut [f32]
));

/// Lays image `dy_n`'s output gradient (`O × OH × OW`) at the padded width into `rows`
/// (`O` rows of `row_len` values): row `o` holds it from `at` on, zeros elsewhere.
fn spread_rows(
    g: &Conv2dGeometry,
    p: &Planes,
    dy_n: &[f32],
    at: usize,
    row_len: usize,
    rows: &mut [f32],
) {
    let ow = g.out_width();
    for (plane, row) in dy_n
        .chunks_exact(g.out_height() * ow)
        .zip(rows.chunks_exact_mut(row_len))
    {
        row.fill(0.0);
        for (line, dst) in plane.chunks_exact(ow).zip(row[at..].chunks_mut(p.cols)) {
            dst[..ow].copy_from_slice(line);
        }
    }
}

/// `y = conv(x, w) + b` for the whole batch (`y` written over).
pub(super) fn forward(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
) {
    let (p, simd) = (Planes::of(g), Simd::detect());
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    split_images(
        pool,
        g.batch(),
        tasks(pool, g),
        y,
        |per| per * y_len,
        |first, _, y| {
            with_scratch(&PADDED, p.padded_len(g), |padded| {
                with_scratch(&GATHERED, g.out_channels() * Planes::runs(p.span), |runs| {
                    for (n, y_n) in (first..).zip(y.chunks_exact_mut(y_len)) {
                        pad_image(g, &p, &x[n * x_len..(n + 1) * x_len], padded);
                        forward_on(simd, g, &p, padded, (w, b), runs, y_n);
                    }
                })
            })
        },
    );
}

/// `dx = conv_inputᵀ(dy)` for the whole batch (`dx` written over).
pub(super) fn backward_input(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    let (p, simd) = (Planes::of(g), Simd::detect());
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    let (interior, spread_len) = (p.interior(g), p.spread_len(g));
    let outs = g.out_channels();
    split_images(
        pool,
        g.batch(),
        tasks(pool, g),
        dx,
        |per| per * x_len,
        |first, _, dx| {
            with_scratch(&GATHERED, outs * spread_len, |spread| {
                with_scratch(&COLUMNS, 4 * interior, |runs| {
                    for (n, dx_n) in (first..).zip(dx.chunks_exact_mut(x_len)) {
                        let dy_n = &dy[n * y_len..(n + 1) * y_len];
                        spread_rows(g, &p, dy_n, p.lead, spread_len, spread);
                        input_on(simd, g, &p, (spread, spread_len), w, runs, dx_n);
                    }
                })
            })
        },
    );
}

/// `dw (+)= dy ⋆ x` and `db (+)= Σ_pixels dy` over the batch, added to the gradients
/// where `accumulate`, written over them otherwise.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_weight(
    pool: Option<&ThreadPool>,
    g: &Conv2dGeometry,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    accumulate: bool,
) {
    let (p, simd) = (Planes::of(g), Simd::detect());
    let (x_len, y_len) = (g.input_sample_len(), g.output_sample_len());
    let outs = g.out_channels();
    sum_weight_partials(pool, g, dw, db, accumulate, |first, count, pw, pb| {
        with_scratch(&PADDED, p.padded_len(g), |padded| {
            with_scratch(&GATHERED, outs * p.span, |rows| {
                for n in first..first + count {
                    let dy_n = &dy[n * y_len..(n + 1) * y_len];
                    pad_image(g, &p, &x[n * x_len..(n + 1) * x_len], padded);
                    spread_rows(g, &p, dy_n, 0, p.span, rows);
                    weight_on(simd, g, &p, padded, rows, pw);
                    for (sum, plane) in pb.iter_mut().zip(dy_n.chunks_exact(y_len / outs)) {
                        *sum += plane.iter().sum::<f32>();
                    }
                }
            })
        })
    });
}

#[cfg(test)]
mod tests {
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::backend::Conv2dSpec;

    /// Values in [−1, 1) drawn from the crate's generator seeded with `seed`.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Each build of the loops that this processor runs gives the portable build's
    /// results to the bit, with blocks of one to four channels.
    #[test]
    fn every_build_matches_the_portable_build() {
        let builds: Vec<Simd> = match Simd::detect() {
            Simd::Avx512 => vec![Simd::Avx2, Simd::Avx512],
            Simd::Avx2 => vec![Simd::Avx2],
            Simd::Portable => vec![],
        };
        // Seven inputs (blocks of four and three) to three outputs, then six (four and
        // two) to one.
        for (c, o) in [(7, 3), (6, 1)] {
            let spec = Conv2dSpec::new(c, o, (3, 2))
                .with_padding((2, 1))
                .with_dilation((1, 2));
            let g = Conv2dGeometry::new("test", &spec, 1, (9, 13)).unwrap();
            let p = Planes::of(&g);
            let x = values(g.input_sample_len(), 1);
            let w = values(g.out_channels() * g.im2col_depth(), 2);
            let b = values(g.out_channels(), 3);
            let dy = values(g.output_sample_len(), 4);
            let mut padded = vec![0.0; p.padded_len(&g)];
            pad_image(&g, &p, &x, &mut padded);
            let spread_len = p.spread_len(&g);
            let mut spread = vec![0.0; o * spread_len];
            spread_rows(&g, &p, &dy, p.lead, spread_len, &mut spread);
            let mut rows = vec![0.0; o * p.span];
            spread_rows(&g, &p, &dy, 0, p.span, &mut rows);
            let run = |simd: Simd| {
                let mut runs = vec![0.0; o * Planes::runs(p.span)];
                let mut y = vec![0.0; g.output_sample_len()];
                forward_on(simd, &g, &p, &padded, (&w, &b), &mut runs, &mut y);
                let mut dx = vec![0.0; g.input_sample_len()];
                let mut runs = vec![0.0; 4 * p.interior(&g)];
                input_on(simd, &g, &p, (&spread, spread_len), &w, &mut runs, &mut dx);
                let mut dw = vec![0.0; w.len()];
                weight_on(simd, &g, &p, &padded, &rows, &mut dw);
                [y, dx, dw].map(|v| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            };
            let portable = run(Simd::Portable);
            for simd in &builds {
                assert_eq!(run(*simd), portable, "{simd:?}, {c} to {o} channels");
            }
        }
    }
}
