//! The definition of the image ops: the 2-D convolution, max and average pooling and
//! nearest-neighbour upsampling, forward and backward, as plain loops over
//! `(N, C, H, W)` row-major slices, generic over the float type ([`Real`]: `f32` for
//! the backends, `f64` for the finite-difference checks of the tests). Every size and
//! index comes from the op's geometry ([`crate::backend::image_geometry`]).
//!
//! Each sum is taken in a fixed order, stated on its function. These functions index
//! slices directly and panic if a slice is shorter than its geometry says; the
//! backends check lengths before calling them.

use crate::backend::image_geometry::{Conv2dGeometry, Pool2dGeometry, UpsampleGeometry};
use crate::backend::reference::definitions::Real;

/// The convolution `y = conv(x, w) + b` as PyTorch's `Conv2d` (a cross-correlation,
/// zero padding): for `x: (N, C, H, W)`, `w: (O, C, kh, kw)`, `b: (O)`,
/// `y[n][o][oy][ox] = Σ_c Σ_ky Σ_kx x[n][c][iy][ix] · w[o][c][ky][kx] + b[o]` with
/// `iy = oy·sh + ky·dh − ph`, `ix = ox·sw + kx·dw − pw`
/// ([`Conv2dGeometry::input_y`], [`Conv2dGeometry::input_x`]). The sum runs over
/// `c`, then `ky`, then `kx` (the weight's row-major order), skipping taps in the
/// padding, which contribute exactly 0; the bias is added last, as in
/// [`linear_forward`](super::definitions::linear_forward). `y` is overwritten.
pub fn conv2d_forward<T: Real>(g: &Conv2dGeometry, x: &[T], w: &[T], b: &[T], y: &mut [T]) {
    let (kh, kw) = g.kernel();
    for n in 0..g.batch() {
        for o in 0..g.out_channels() {
            for oy in 0..g.out_height() {
                for ox in 0..g.out_width() {
                    let mut acc = T::ZERO;
                    for c in 0..g.in_channels() {
                        for ky in 0..kh {
                            let Some(iy) = g.input_y(oy, ky) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = g.input_x(ox, kx) else {
                                    continue;
                                };
                                acc += x[g.input_index(n, c, iy, ix)]
                                    * w[g.weight_index(o, c, ky, kx)];
                            }
                        }
                    }
                    y[g.output_index(n, o, oy, ox)] = acc + b[o];
                }
            }
        }
    }
}

/// The gradient with respect to the convolution's input (overwrites `dx`):
/// `dx[n][c][iy][ix] = Σ_o Σ_ky Σ_kx dy[n][o][oy][ox] · w[o][c][ky][kx]` over the
/// `(o, ky, kx)` for which output `(oy, ox)` reads input `(iy, ix)` through tap
/// `(ky, kx)` ([`Conv2dGeometry::output_y`], [`Conv2dGeometry::output_x`]), summed
/// over `o`, then `ky`, then `kx`. An input pixel that no output reads (stride larger
/// than the dilated kernel, or the rows a floor drops) gets 0.
pub fn conv2d_backward_input<T: Real>(g: &Conv2dGeometry, dy: &[T], w: &[T], dx: &mut [T]) {
    let (h, wd) = g.input_size();
    let (kh, kw) = g.kernel();
    for n in 0..g.batch() {
        for c in 0..g.in_channels() {
            for iy in 0..h {
                for ix in 0..wd {
                    let mut acc = T::ZERO;
                    for o in 0..g.out_channels() {
                        for ky in 0..kh {
                            let Some(oy) = g.output_y(iy, ky) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ox) = g.output_x(ix, kx) else {
                                    continue;
                                };
                                acc += dy[g.output_index(n, o, oy, ox)]
                                    * w[g.weight_index(o, c, ky, kx)];
                            }
                        }
                    }
                    dx[g.input_index(n, c, iy, ix)] = acc;
                }
            }
        }
    }
}

/// The gradients with respect to the convolution's weight and bias, **added** to `dw`
/// and `db` (parameter gradients accumulate, as
/// [`linear_backward_weight`](super::definitions::linear_backward_weight)'s):
/// `dw[o][c][ky][kx] += Σ_n Σ_oy Σ_ox dy[n][o][oy][ox] · x[n][c][iy][ix]` (`iy`, `ix`
/// as in [`conv2d_forward`], taps in the padding skipped) and
/// `db[o] += Σ_n Σ_oy Σ_ox dy[n][o][oy][ox]`. Each sum runs over `n`, then `oy`, then
/// `ox`, into a fresh accumulator that is then added to the gradient.
pub fn conv2d_backward_weight<T: Real>(
    g: &Conv2dGeometry,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: &mut [T],
) {
    let (kh, kw) = g.kernel();
    for o in 0..g.out_channels() {
        for c in 0..g.in_channels() {
            for ky in 0..kh {
                for kx in 0..kw {
                    let mut acc = T::ZERO;
                    for n in 0..g.batch() {
                        for oy in 0..g.out_height() {
                            let Some(iy) = g.input_y(oy, ky) else {
                                continue;
                            };
                            for ox in 0..g.out_width() {
                                let Some(ix) = g.input_x(ox, kx) else {
                                    continue;
                                };
                                acc += dy[g.output_index(n, o, oy, ox)]
                                    * x[g.input_index(n, c, iy, ix)];
                            }
                        }
                    }
                    dw[g.weight_index(o, c, ky, kx)] += acc;
                }
            }
        }
        let mut acc = T::ZERO;
        for n in 0..g.batch() {
            for oy in 0..g.out_height() {
                for ox in 0..g.out_width() {
                    acc += dy[g.output_index(n, o, oy, ox)];
                }
            }
        }
        db[o] += acc;
    }
}

/// Whether `v` is NaN (the one value not ordered against itself).
fn is_nan<T: Real>(v: T) -> bool {
    v.partial_cmp(&v).is_none()
}

/// The offset within its plane (`y·W + x`) of the input pixel that output `(oy, ox)`
/// of a max pool takes, by PyTorch's rule (its CPU kernel, `MaxPoolKernel.cpp`): the
/// window's real pixels are scanned in row-major order, the first is taken, and a later
/// one replaces it where it is greater than the current maximum or is NaN. So among
/// equal maxima the **first** in scan order wins; a window holding a NaN gives NaN, from
/// its **last** NaN; a window of −∞ gives its first pixel. Padded positions are never
/// taken (the geometry keeps a real pixel in every window).
fn max_pool_argmax<T: Real>(g: &Pool2dGeometry, plane: &[T], oy: usize, ox: usize) -> usize {
    let (kh, kw) = g.kernel();
    let width = g.input_size().1;
    let mut best: Option<(usize, T)> = None;
    for ky in 0..kh {
        let Some(iy) = g.input_y(oy, ky) else {
            continue;
        };
        for kx in 0..kw {
            let Some(ix) = g.input_x(ox, kx) else {
                continue;
            };
            let at = iy * width + ix;
            let v = plane[at];
            match best {
                Some((_, max)) if !(v > max || is_nan(v)) => {}
                _ => best = Some((at, v)),
            }
        }
    }
    // Every window holds a real pixel (padding ≤ half the window); the first pixel of
    // the plane stands in only for a geometry that breaks that.
    best.map_or(0, |(at, _)| at)
}

/// Max pooling as PyTorch's `MaxPool2d` (`dilation = 1`, `ceil_mode = False`): each
/// output is the maximum of its window's real pixels, chosen by the rule of PyTorch's
/// CPU kernel: among equal maxima the first in row-major scan order; NaN wherever the
/// window holds a NaN. `y` is overwritten.
pub fn max_pool2d_forward<T: Real>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    for p in 0..g.planes() {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                y[(p * oh + oy) * ow + ox] = plane[max_pool_argmax(g, plane, oy, ox)];
            }
        }
    }
}

/// The gradient of [`max_pool2d_forward`] with respect to its input (overwrites `dx`):
/// each output's `dy` goes to the one input pixel that output took (the first maximum
/// of its window in row-major scan order; the last NaN where it holds one), recomputed
/// from `x`; every other pixel gets 0. A pixel taken by several overlapping windows
/// gets the sum of their `dy`s, added in the outputs' row-major order.
pub fn max_pool2d_backward<T: Real>(g: &Pool2dGeometry, x: &[T], dy: &[T], dx: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    for v in dx[..g.input_len()].iter_mut() {
        *v = T::ZERO;
    }
    for p in 0..g.planes() {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let at = max_pool_argmax(g, plane, oy, ox);
                dx[p * h * w + at] += dy[(p * oh + oy) * ow + ox];
            }
        }
    }
}

/// The divisor of an average pool: the window's size `kh·kw`, padded positions
/// included (PyTorch's `AvgPool2d` with `count_include_pad = True` and `ceil_mode =
/// False`, whose windows never reach past the padding).
fn avg_pool_divisor<T: Real>(g: &Pool2dGeometry) -> T {
    let (kh, kw) = g.kernel();
    T::from_f32((kh * kw) as f32)
}

/// Average pooling as PyTorch's `AvgPool2d` (`ceil_mode = False`, `count_include_pad
/// = True`, no `divisor_override`): each output is the sum of its window's real pixels,
/// in row-major order, divided by `kh·kw` (padded positions count as zeros). `y` is
/// overwritten.
pub fn avg_pool2d_forward<T: Real>(g: &Pool2dGeometry, x: &[T], y: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let (kh, kw) = g.kernel();
    let divisor = avg_pool_divisor::<T>(g);
    for p in 0..g.planes() {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = T::ZERO;
                for iy in (0..kh).filter_map(|ky| g.input_y(oy, ky)) {
                    for ix in (0..kw).filter_map(|kx| g.input_x(ox, kx)) {
                        acc += plane[iy * w + ix];
                    }
                }
                y[(p * oh + oy) * ow + ox] = acc / divisor;
            }
        }
    }
}

/// The gradient of [`avg_pool2d_forward`] with respect to its input (overwrites `dx`):
/// each output's share `dy / (kh·kw)` goes to every real pixel of its window, as
/// PyTorch's kernel spreads it; a pixel in several windows gets the sum of their
/// shares, added in the outputs' row-major order.
pub fn avg_pool2d_backward<T: Real>(g: &Pool2dGeometry, dy: &[T], dx: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let (kh, kw) = g.kernel();
    let divisor = avg_pool_divisor::<T>(g);
    for v in dx[..g.input_len()].iter_mut() {
        *v = T::ZERO;
    }
    for p in 0..g.planes() {
        for oy in 0..oh {
            for ox in 0..ow {
                let share = dy[(p * oh + oy) * ow + ox] / divisor;
                for iy in (0..kh).filter_map(|ky| g.input_y(oy, ky)) {
                    for ix in (0..kw).filter_map(|kx| g.input_x(ox, kx)) {
                        dx[p * h * w + iy * w + ix] += share;
                    }
                }
            }
        }
    }
}

/// Nearest-neighbour upsampling by the integer scale `s`, as PyTorch's
/// `Upsample(scale_factor = s, mode = "nearest")`: `y[p][oy][ox] = x[p][⌊oy / s⌋][⌊ox /
/// s⌋]` on every plane `p` (`N·C` of them). `y` is overwritten.
pub fn upsample_nearest_forward<T: Real>(g: &UpsampleGeometry, x: &[T], y: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let s = g.scale();
    for p in 0..g.planes() {
        for oy in 0..oh {
            for ox in 0..ow {
                y[(p * oh + oy) * ow + ox] = x[(p * h + oy / s) * w + ox / s];
            }
        }
    }
}

/// The gradient of [`upsample_nearest_forward`] with respect to its input (overwrites
/// `dx`): `dx[p][iy][ix] = Σ_a Σ_b dy[p][iy·s + a][ix·s + b]` over the `s²` outputs the
/// pixel was copied to, `a` then `b` in `0..s`.
pub fn upsample_nearest_backward<T: Real>(g: &UpsampleGeometry, dy: &[T], dx: &mut [T]) {
    let (h, w) = g.input_size();
    let (oh, ow) = g.output_size();
    let s = g.scale();
    for p in 0..g.planes() {
        for iy in 0..h {
            for ix in 0..w {
                let mut acc = T::ZERO;
                for a in 0..s {
                    for b in 0..s {
                        acc += dy[(p * oh + iy * s + a) * ow + ix * s + b];
                    }
                }
                dx[(p * h + iy) * w + ix] = acc;
            }
        }
    }
}
