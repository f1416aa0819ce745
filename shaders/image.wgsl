// The image ops on (N, C, H, W) batches, one invocation per element they write, each
// summing in the reference's order (src/backend/reference/images.rs): the 2-D
// convolution forward, its input, weight and bias gradients, max and average pooling
// and their gradients, nearest-neighbour upsampling and its gradient; and the layout changes that
// let a convolution run as matrix products (src/backend/gpu/ops/unfolded_conv.rs):
// unfolding the input into one row of taps per output pixel and folding such rows back,
// and moving between (N, O, H, W) and one row of O channels per pixel. params
// (ImageParams) holds the geometry; params.count is the number of elements the launch
// writes.

// The input row of output row `o` through kernel row `k`, or -1 in the padding.
fn tap_y(o: u32, k: u32) -> i32 {
    let i = i32(o * params.stride_h + k * params.dil_h) - i32(params.pad_h);
    return select(-1, i, i >= 0 && i < i32(params.in_h));
}

// The input column of output column `o` through kernel column `k`, or -1.
fn tap_x(o: u32, k: u32) -> i32 {
    let i = i32(o * params.stride_w + k * params.dil_w) - i32(params.pad_w);
    return select(-1, i, i >= 0 && i < i32(params.in_w));
}

// The output row whose kernel row `k` reads input row `i`, or -1 where none does.
fn reader_y(i: u32, k: u32) -> i32 {
    let offset = i32(i + params.pad_h) - i32(k * params.dil_h);
    if (offset < 0 || u32(offset) % params.stride_h != 0u) {
        return -1;
    }
    let o = u32(offset) / params.stride_h;
    return select(-1, i32(o), o < params.out_h);
}

// The output column whose kernel column `k` reads input column `i`, or -1.
fn reader_x(i: u32, k: u32) -> i32 {
    let offset = i32(i + params.pad_w) - i32(k * params.dil_w);
    if (offset < 0 || u32(offset) % params.stride_w != 0u) {
        return -1;
    }
    let o = u32(offset) / params.stride_w;
    return select(-1, i32(o), o < params.out_w);
}

// y = conv(x, w) + b, one output element each.  in0 = x, in1 = w, in2 = b, out = y.
@compute @workgroup_size(WG_FLAT)
fn conv2d_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.out_w;
    let oy = (i / params.out_w) % params.out_h;
    let o = (i / (params.out_w * params.out_h)) % params.out_channels;
    let n = i / (params.out_w * params.out_h * params.out_channels);
    var acc = 0.0;
    for (var c = 0u; c < params.channels; c++) {
        let plane = params.in0_at + (n * params.channels + c) * params.in_h * params.in_w;
        let taps = params.in1_at + (o * params.channels + c) * params.kernel_h * params.kernel_w;
        for (var ky = 0u; ky < params.kernel_h; ky++) {
            let iy = tap_y(oy, ky);
            if (iy < 0) {
                continue;
            }
            for (var kx = 0u; kx < params.kernel_w; kx++) {
                let ix = tap_x(ox, kx);
                if (ix < 0) {
                    continue;
                }
                acc += in0[plane + u32(iy) * params.in_w + u32(ix)]
                    * in1[taps + ky * params.kernel_w + kx];
            }
        }
    }
    out[params.out_at + i] = acc + in2[params.in2_at + o];
}

// dx = the convolution's input gradient, one input element each (written over).
// in0 = dy, in1 = w, out = dx.
@compute @workgroup_size(WG_FLAT)
fn conv2d_backward_input(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.in_w;
    let iy = (i / params.in_w) % params.in_h;
    let c = (i / (params.in_w * params.in_h)) % params.channels;
    let n = i / (params.in_w * params.in_h * params.channels);
    var acc = 0.0;
    for (var o = 0u; o < params.out_channels; o++) {
        let plane = params.in0_at + (n * params.out_channels + o) * params.out_h * params.out_w;
        let taps = params.in1_at + (o * params.channels + c) * params.kernel_h * params.kernel_w;
        for (var ky = 0u; ky < params.kernel_h; ky++) {
            let oy = reader_y(iy, ky);
            if (oy < 0) {
                continue;
            }
            for (var kx = 0u; kx < params.kernel_w; kx++) {
                let ox = reader_x(ix, kx);
                if (ox < 0) {
                    continue;
                }
                acc += in0[plane + u32(oy) * params.out_w + u32(ox)]
                    * in1[taps + ky * params.kernel_w + kx];
            }
        }
    }
    out[params.out_at + i] = acc;
}

// dw (+)= Σ_n Σ_pixels dy · x, one weight element each.  in0 = x, in1 = dy, out = dw.
@compute @workgroup_size(WG_FLAT)
fn conv2d_backward_weight(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let kx = i % params.kernel_w;
    let ky = (i / params.kernel_w) % params.kernel_h;
    let c = (i / (params.kernel_w * params.kernel_h)) % params.channels;
    let o = i / (params.kernel_w * params.kernel_h * params.channels);
    var acc = 0.0;
    for (var n = 0u; n < params.batch; n++) {
        let plane = params.in0_at + (n * params.channels + c) * params.in_h * params.in_w;
        let grads = params.in1_at + (n * params.out_channels + o) * params.out_h * params.out_w;
        for (var oy = 0u; oy < params.out_h; oy++) {
            let iy = tap_y(oy, ky);
            if (iy < 0) {
                continue;
            }
            for (var ox = 0u; ox < params.out_w; ox++) {
                let ix = tap_x(ox, kx);
                if (ix < 0) {
                    continue;
                }
                acc += in1[grads + oy * params.out_w + ox]
                    * in0[plane + u32(iy) * params.in_w + u32(ix)];
            }
        }
    }
    let at = params.out_at + i;
    out[at] = select(acc, out[at] + acc, params.accumulate != 0u);
}

// db (+)= Σ_n Σ_pixels dy, one output channel each.  in0 = dy, out = db.
@compute @workgroup_size(WG_FLAT)
fn conv2d_backward_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let o = flat_index(gid, groups);
    if (o >= params.count) {
        return;
    }
    let pixels = params.out_h * params.out_w;
    var acc = 0.0;
    for (var n = 0u; n < params.batch; n++) {
        let grads = params.in0_at + (n * params.out_channels + o) * pixels;
        for (var p = 0u; p < pixels; p++) {
            acc += in0[grads + p];
        }
    }
    let at = params.out_at + o;
    out[at] = select(acc, out[at] + acc, params.accumulate != 0u);
}

// The offset in its plane of the pixel that pooled output (oy, ox) takes: the first
// maximum of the window's real pixels in row-major order, or its last NaN (PyTorch's
// rule, as the reference's max_pool_argmax).
fn pool_argmax(plane: u32, oy: u32, ox: u32) -> u32 {
    var best = 0u;
    var max = 0.0;
    var found = false;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let iy = tap_y(oy, ky);
        if (iy < 0) {
            continue;
        }
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let ix = tap_x(ox, kx);
            if (ix < 0) {
                continue;
            }
            let at = u32(iy) * params.in_w + u32(ix);
            let v = in0[plane + at];
            if (!found || v > max || v != v) {
                best = at;
                max = v;
                found = true;
            }
        }
    }
    return best;
}

// y = max over each window, one output element each.  in0 = x, out = y.
@compute @workgroup_size(WG_FLAT)
fn max_pool2d_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.out_w;
    let oy = (i / params.out_w) % params.out_h;
    let p = i / (params.out_w * params.out_h);
    let plane = params.in0_at + p * params.in_h * params.in_w;
    out[params.out_at + i] = in0[plane + pool_argmax(plane, oy, ox)];
}

// dx = the sum of the dy of the windows whose maximum this pixel is, one input element
// each, windows in row-major order (written over).  in0 = x, in1 = dy, out = dx.
@compute @workgroup_size(WG_FLAT)
fn max_pool2d_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.in_w;
    let iy = (i / params.in_w) % params.in_h;
    let p = i / (params.in_w * params.in_h);
    let plane = params.in0_at + p * params.in_h * params.in_w;
    let grads = params.in1_at + p * params.out_h * params.out_w;
    let me = iy * params.in_w + ix;
    var acc = 0.0;
    // Kernel taps from the last, so that the windows come in row-major order.
    for (var ky = params.kernel_h; ky > 0u; ky--) {
        let oy = reader_y(iy, ky - 1u);
        if (oy < 0) {
            continue;
        }
        for (var kx = params.kernel_w; kx > 0u; kx--) {
            let ox = reader_x(ix, kx - 1u);
            if (ox < 0) {
                continue;
            }
            if (pool_argmax(plane, u32(oy), u32(ox)) == me) {
                acc += in1[grads + u32(oy) * params.out_w + u32(ox)];
            }
        }
    }
    out[params.out_at + i] = acc;
}

// y = the sum of each window's real pixels in row-major order over kernel_h·kernel_w
// (padded positions count as zeros), one output element each.  in0 = x, out = y.
@compute @workgroup_size(WG_FLAT)
fn avg_pool2d_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.out_w;
    let oy = (i / params.out_w) % params.out_h;
    let p = i / (params.out_w * params.out_h);
    let plane = params.in0_at + p * params.in_h * params.in_w;
    var acc = 0.0;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let iy = tap_y(oy, ky);
        if (iy < 0) {
            continue;
        }
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let ix = tap_x(ox, kx);
            if (ix >= 0) {
                acc += in0[plane + u32(iy) * params.in_w + u32(ix)];
            }
        }
    }
    out[params.out_at + i] = acc / f32(params.kernel_h * params.kernel_w);
}

// dx = the sum of the shares dy / (kernel_h·kernel_w) of the windows holding this
// pixel, one input element each, windows in row-major order (written over).
// in0 = dy, out = dx.
@compute @workgroup_size(WG_FLAT)
fn avg_pool2d_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.in_w;
    let iy = (i / params.in_w) % params.in_h;
    let p = i / (params.in_w * params.in_h);
    let grads = params.in0_at + p * params.out_h * params.out_w;
    let divisor = f32(params.kernel_h * params.kernel_w);
    var acc = 0.0;
    // Kernel taps from the last, so that the windows come in row-major order.
    for (var ky = params.kernel_h; ky > 0u; ky--) {
        let oy = reader_y(iy, ky - 1u);
        if (oy < 0) {
            continue;
        }
        for (var kx = params.kernel_w; kx > 0u; kx--) {
            let ox = reader_x(ix, kx - 1u);
            if (ox >= 0) {
                acc += in0[grads + u32(oy) * params.out_w + u32(ox)] / divisor;
            }
        }
    }
    out[params.out_at + i] = acc;
}

// y = x at (oy / scale, ox / scale), one output element each.  in0 = x, out = y.
@compute @workgroup_size(WG_FLAT)
fn upsample_nearest_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ox = i % params.out_w;
    let oy = (i / params.out_w) % params.out_h;
    let p = i / (params.out_w * params.out_h);
    let at = (p * params.in_h + oy / params.scale) * params.in_w + ox / params.scale;
    out[params.out_at + i] = in0[params.in0_at + at];
}

// dx = the sum of the scale² output gradients each pixel was copied to, one input
// element each.  in0 = dy, out = dx.
@compute @workgroup_size(WG_FLAT)
fn upsample_nearest_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.in_w;
    let iy = (i / params.in_w) % params.in_h;
    let p = i / (params.in_w * params.in_h);
    var acc = 0.0;
    for (var a = 0u; a < params.scale; a++) {
        let row = params.in0_at + (p * params.out_h + iy * params.scale + a) * params.out_w;
        for (var b = 0u; b < params.scale; b++) {
            acc += in0[row + ix * params.scale + b];
        }
    }
    out[params.out_at + i] = acc;
}

// The unfolded input: row n·P + p (P = out_h·out_w output pixels per image) holds the
// taps of output pixel p of image n, in the weight's (c, ky, kx) order, 0 in the
// padding; one element each.  in0 = x, out = the unfolded rows.
@compute @workgroup_size(WG_FLAT)
fn conv2d_unfold(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let taps = params.kernel_h * params.kernel_w;
    let depth = params.channels * taps;
    let col = i % depth;
    let row = i / depth;
    let pixels = params.out_h * params.out_w;
    let p = row % pixels;
    let n = row / pixels;
    let c = col / taps;
    let ky = (col % taps) / params.kernel_w;
    let kx = col % params.kernel_w;
    let iy = tap_y(p / params.out_w, ky);
    let ix = tap_x(p % params.out_w, kx);
    var v = 0.0;
    if (iy >= 0 && ix >= 0) {
        let plane = params.in0_at + (n * params.channels + c) * params.in_h * params.in_w;
        v = in0[plane + u32(iy) * params.in_w + u32(ix)];
    }
    out[params.out_at + i] = v;
}

// The input gradient from the unfolded rows' gradient: each input pixel sums the taps
// that read it, kernel taps in row-major order; one input element each (written over).
// in0 = the unfolded rows' gradient, out = dx.
@compute @workgroup_size(WG_FLAT)
fn conv2d_fold(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let ix = i % params.in_w;
    let iy = (i / params.in_w) % params.in_h;
    let c = (i / (params.in_w * params.in_h)) % params.channels;
    let n = i / (params.in_w * params.in_h * params.channels);
    let taps = params.kernel_h * params.kernel_w;
    let depth = params.channels * taps;
    let rows = params.in0_at + n * params.out_h * params.out_w * depth + c * taps;
    var acc = 0.0;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let oy = reader_y(iy, ky);
        if (oy < 0) {
            continue;
        }
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let ox = reader_x(ix, kx);
            if (ox < 0) {
                continue;
            }
            let p = u32(oy) * params.out_w + u32(ox);
            acc += in0[rows + p * depth + ky * params.kernel_w + kx];
        }
    }
    out[params.out_at + i] = acc;
}

// (N, O, H, W) to one row per pixel: row n·P + p holds pixel p's O channels; one
// element each.  in0 = the image batch, out = the pixel rows.
@compute @workgroup_size(WG_FLAT)
fn to_pixel_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let pixels = params.out_h * params.out_w;
    let o = i % params.out_channels;
    let row = i / params.out_channels;
    let p = row % pixels;
    let n = row / pixels;
    out[params.out_at + i] = in0[params.in0_at + (n * params.out_channels + o) * pixels + p];
}

// One row per pixel back to (N, O, H, W); one element each.  in0 = the pixel rows,
// out = the image batch.
@compute @workgroup_size(WG_FLAT)
fn from_pixel_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let pixels = params.out_h * params.out_w;
    let p = i % pixels;
    let o = (i / pixels) % params.out_channels;
    let n = i / (pixels * params.out_channels);
    out[params.out_at + i] = in0[params.in0_at + (n * pixels + p) * params.out_channels + o];
}
