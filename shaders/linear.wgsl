// Linear layer with a fused activation: y = act(x · wᵀ + b) and its backward. x is
// n×k, w is m×k, y is n×m; params (LinearParams) holds n, k, m and act, an activation code
// of act.wgsl (IDENTITY for a plain linear layer). The backward kernels take dz =
// gate(dy, y, act) on the fly from dy and the forward output y, so no dz tensor and
// no separate activation kernel exist. Matrix kernels run one invocation per output
// element on 16×16 workgroups (x: column, y: row); sums run in index order, like the
// reference.

// y[r][c] = act(Σ_i x[r][i] w[c][i] + b[c]).  in0 = x, in1 = w, in2 = b, out = y.
@compute @workgroup_size(TILE, TILE)
fn linear_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.n;
    let k = params.k;
    let m = params.m;
    let c = gid.x;
    let r = gid.y;
    if (r >= n || c >= m) {
        return;
    }
    let xo = params.in0_at + r * k;
    let wo = params.in1_at + c * k;
    var acc = 0.0;
    for (var i = 0u; i < k; i++) {
        acc += in0[xo + i] * in1[wo + i];
    }
    out[params.out_at + r * m + c] = activate(acc + in2[params.in2_at + c], params.act, params.slope);
}

// dz[r][c] from dy (in0) and y (in2; the host binds dy there for IDENTITY).
fn dz_at(r: u32, c: u32, m: u32) -> f32 {
    let e = r * m + c;
    return gate(in0[params.in0_at + e], in2[params.in2_at + e], params.act, params.slope);
}

// dx[r][i] = Σ_c dz[r][c] w[c][i].  in0 = dy, in1 = w, in2 = y, out = dx (overwritten).
@compute @workgroup_size(TILE, TILE)
fn linear_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.n;
    let k = params.k;
    let m = params.m;
    let i = gid.x;
    let r = gid.y;
    if (r >= n || i >= k) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < m; c++) {
        acc += dz_at(r, c, m) * in1[params.in1_at + c * k + i];
    }
    out[params.out_at + r * k + i] = acc;
}

// dw[c][i] = Σ_r dz[r][c] x[r][i] and db[c] = Σ_r dz[r][c] in one dispatch (the
// invocations of column 0 write db), added to the gradients where params.accumulate
// is 1, written over them where it is 0 (no clear needed before a step's first backward).
// in0 = dy, in1 = x, in2 = y, out = dw, out2 = db. Needs k ≥ 1. The loop's bound
// adds gid.z (0: the grid has one layer) so that lavapipe cannot specialize the shader
// to the uniform's value: it would compile it anew at every dispatch (see
// docs/performance.md, "lavapipe's uniform inlining").
@compute @workgroup_size(TILE, TILE)
fn linear_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = params.n + gid.z;
    let k = params.k;
    let m = params.m;
    let i = gid.x;
    let c = gid.y;
    if (c >= m || i >= k) {
        return;
    }
    var acc = 0.0;
    var sum = 0.0;
    for (var r = 0u; r < n; r++) {
        let dz = dz_at(r, c, m);
        acc += dz * in1[params.in1_at + r * k + i];
        sum += dz;
    }
    let add = params.accumulate != 0u;
    let o = params.out_at + c * k + i;
    out[o] = select(acc, out[o] + acc, add);
    if (i == 0u) {
        let ob = params.out2_at + c;
        out2[ob] = select(sum, out2[ob] + sum, add);
    }
}

// db[c] = Σ_r dz[r][c] alone (for a weight with no columns), added or written as
// linear_backward_weight. in0 = dy, in1 = y (dy for IDENTITY), out = db.
@compute @workgroup_size(WG_FLAT)
fn linear_backward_bias(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let c = flat_index(gid, groups);
    if (c >= m) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < n; r++) {
        let e = r * m + c;
        acc += gate(in0[params.in0_at + e], in1[params.in1_at + e], params.act, params.slope);
    }
    let o = params.out_at + c;
    out[o] = select(acc, out[o] + acc, params.accumulate != 0u);
}

// The forward of linear_forward with workgroup-memory tiles and register blocking:
// each 16×16 workgroup computes a 64×64 block of y, each invocation a 4×4 sub-block
// held in registers. Per step of 16 along k, the workgroup stages the 64×16 slices of
// x and w in workgroup memory (each element read from storage once per block
// instead of once per output), then every invocation reads 4 + 4 staged values per
// k and makes 16 multiply-adds. Sums still run in index order (padding adds exact
// zeros).
const DEPTH: u32 = 16u;
// Staged slices, k-major: tile_x[kk * BLOCK + row], tile_w[kk * BLOCK + column].
var<workgroup> tile_x: array<f32, BLOCK * DEPTH>;
var<workgroup> tile_w: array<f32, BLOCK * DEPTH>;

@compute @workgroup_size(TILE, TILE)
fn linear_forward_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = params.n;
    let k = params.k;
    let m = params.m;
    let row0 = wid.y * BLOCK;
    let col0 = wid.x * BLOCK;
    let t = lid.y * TILE + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < k; k0 += DEPTH) {
        for (var q = 0u; q < 4u; q++) {
            let e = t + q * TILE * TILE;
            let along = e / DEPTH;
            let kk = e - along * DEPTH;
            let i = min(k0 + kk, k - 1u);
            let inside = k0 + kk < k;
            let r = row0 + along;
            tile_x[kk * BLOCK + along] = select(
                0.0, in0[params.in0_at + min(r, n - 1u) * k + i], inside && r < n);
            let c = col0 + along;
            tile_w[kk * BLOCK + along] = select(
                0.0, in1[params.in1_at + min(c, m - 1u) * k + i], inside && c < m);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < DEPTH; kk++) {
            let a = vec4<f32>(
                tile_x[kk * BLOCK + lid.y * 4u],
                tile_x[kk * BLOCK + lid.y * 4u + 1u],
                tile_x[kk * BLOCK + lid.y * 4u + 2u],
                tile_x[kk * BLOCK + lid.y * 4u + 3u]);
            let b = vec4<f32>(
                tile_w[kk * BLOCK + lid.x * 4u],
                tile_w[kk * BLOCK + lid.x * 4u + 1u],
                tile_w[kk * BLOCK + lid.x * 4u + 2u],
                tile_w[kk * BLOCK + lid.x * 4u + 3u]);
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let r = row0 + lid.y * 4u + i;
            let c = col0 + lid.x * 4u + j;
            if (r < n && c < m) {
                out[params.out_at + r * m + c] =
                    activate(acc[i * 4u + j] + in2[params.in2_at + c], params.act, params.slope);
            }
        }
    }
}
