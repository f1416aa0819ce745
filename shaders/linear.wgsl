// Linear layer with a fused activation: y = act(x · wᵀ + b) and its backward. x is
// n×k, w is m×k, y is n×m; params.dims = (n, k, m, act) with act an activation code
// of act.wgsl (IDENTITY for a plain linear layer). The backward kernels take dz =
// gate(dy, y, act) on the fly from dy and the forward output y, so no dz tensor and
// no separate activation kernel exist. Matrix kernels run one invocation per output
// element on 16×16 workgroups (x: column, y: row); sums run in index order, like the
// reference.

// y[r][c] = act(Σ_i x[r][i] w[c][i] + b[c]).  in0 = x, in1 = w, in2 = b, out = y.
@compute @workgroup_size(16, 16)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.dims.x;
    let k = params.dims.y;
    let m = params.dims.z;
    let c = gid.x;
    let r = gid.y;
    if (r >= n || c >= m) {
        return;
    }
    let xo = params.offs.x + r * k;
    let wo = params.offs.y + c * k;
    var acc = 0.0;
    for (var i = 0u; i < k; i++) {
        acc += in0[xo + i] * in1[wo + i];
    }
    out[params.offs.w + r * m + c] = activate(acc + in2[params.offs.z + c], params.dims.w);
}

// dz[r][c] from dy (in0) and y (in2; the host binds dy there for IDENTITY).
fn dz_at(r: u32, c: u32, m: u32) -> f32 {
    let e = r * m + c;
    return gate(in0[params.offs.x + e], in2[params.offs.z + e], params.dims.w);
}

// dx[r][i] = Σ_c dz[r][c] w[c][i].  in0 = dy, in1 = w, in2 = y, out = dx (overwritten).
@compute @workgroup_size(16, 16)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.dims.x;
    let k = params.dims.y;
    let m = params.dims.z;
    let i = gid.x;
    let r = gid.y;
    if (r >= n || i >= k) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < m; c++) {
        acc += dz_at(r, c, m) * in1[params.offs.y + c * k + i];
    }
    out[params.offs.w + r * k + i] = acc;
}

// dw[c][i] += Σ_r dz[r][c] x[r][i].  in0 = dy, in1 = x, in2 = y, out = dw (accumulated).
@compute @workgroup_size(16, 16)
fn linear_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.dims.x;
    let k = params.dims.y;
    let m = params.dims.z;
    let i = gid.x;
    let c = gid.y;
    if (c >= m || i >= k) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < n; r++) {
        acc += dz_at(r, c, m) * in1[params.offs.y + r * k + i];
    }
    let o = params.offs.w + c * k + i;
    out[o] = out[o] + acc;
}

// db[c] += Σ_r dz[r][c].  in0 = dy, in1 = y (dy for IDENTITY), out = db (accumulated).
@compute @workgroup_size(256)
fn linear_backward_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let n = params.dims.x;
    let m = params.dims.z;
    let c = flat_index(gid, groups);
    if (c >= m) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < n; r++) {
        let e = r * m + c;
        acc += gate(in0[params.offs.x + e], in1[params.offs.y + e], params.dims.w);
    }
    let o = params.offs.w + c;
    out[o] = out[o] + acc;
}

// The forward of linear_forward with workgroup-memory tiles: each 16×16 workgroup
// stages 16-wide slices of its 16 rows of x and 16 rows of w in workgroup memory,
// so every element of x and w is read from storage once per tile instead of once
// per output. The sum still runs in index order (padding adds exact zeros).
var<workgroup> tile_x: array<f32, 256>;
var<workgroup> tile_w: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn linear_forward_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = params.dims.x;
    let k = params.dims.y;
    let m = params.dims.z;
    let r = wid.y * 16u + lid.y;
    let c = wid.x * 16u + lid.x;
    // The row of w this invocation stages: output column wid.x·16 + lid.y.
    let wc = wid.x * 16u + lid.y;
    var acc = 0.0;
    for (var t = 0u; t < k; t += 16u) {
        let i = t + lid.x;
        tile_x[lid.y * 16u + lid.x] = select(
            0.0, in0[params.offs.x + min(r, n - 1u) * k + min(i, k - 1u)], r < n && i < k);
        tile_w[lid.y * 16u + lid.x] = select(
            0.0, in1[params.offs.y + min(wc, m - 1u) * k + min(i, k - 1u)], wc < m && i < k);
        workgroupBarrier();
        for (var j = 0u; j < 16u; j++) {
            acc += tile_x[lid.y * 16u + j] * tile_w[lid.x * 16u + j];
        }
        workgroupBarrier();
    }
    if (r < n && c < m) {
        out[params.offs.w + r * m + c] = activate(acc + in2[params.offs.z + c], params.dims.w);
    }
}
