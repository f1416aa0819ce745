// Softmax cross-entropy on class indices, fused: the softmax is never stored.
// params.rows is the row count n, params.classes the class count c; in0 = the n×c
// logits, in1 = the n labels (class indices stored as floats).

// The class that label value `l` names, or c when it names none (not a whole number
// in [0, c)).
fn class_of(l: f32, c: u32) -> u32 {
    if (l >= 0.0 && l < f32(c) && floor(l) == l) {
        return u32(l);
    }
    return c;
}

// A quiet NaN, for rows whose label is invalid.
fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// The row's maximum logit and ln Σ_j e^(z_j − max): the stable log-sum-exp in two parts.
fn row_log_sum_exp(at: u32, c: u32) -> vec2<f32> {
    var m = in0[at];
    for (var j = 1u; j < c; j++) {
        m = max(m, in0[at + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < c; j++) {
        sum += exp(in0[at + j] - m);
    }
    return vec2<f32>(m, log(sum));
}

// out[0] = scale · Σ_r (lse_r + max_r − z_r,label), scale = params.scale (1, or 1/N
// for a mean over all N rows), added to out[0] instead where params.accumulate is 1 (the
// host splits long batches into chunks of rows). One workgroup: each invocation sums
// a strided share of the rows, then store_workgroup_sum.  out = the loss slot.
@compute @workgroup_size(WG_FLAT)
fn cross_entropy_loss(@builtin(local_invocation_index) lid: u32) {
    let n = params.rows;
    let c = params.classes;
    var acc = 0.0;
    for (var r = lid; r < n; r += WG_FLAT) {
        let at = params.in0_at + r * c;
        let t = class_of(in1[params.in1_at + r], c);
        if (t == c) {
            acc += nan();
        } else {
            let ml = row_log_sum_exp(at, c);
            acc += ml.y + ml.x - in0[at + t];
        }
    }
    store_workgroup_sum(lid, acc, params.scale, params.out_at, params.accumulate == 1u);
}

// grad = scale · (softmax(z_r) − onehot(label_r)), one invocation per row (NaN on a
// row whose label is invalid).  out = the n×c gradient.
@compute @workgroup_size(WG_FLAT)
fn cross_entropy_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let r = flat_index(gid, groups);
    let n = params.rows;
    let c = params.classes;
    if (r >= n) {
        return;
    }
    let at = params.in0_at + r * c;
    let to = params.out_at + r * c;
    let t = class_of(in1[params.in1_at + r], c);
    let ml = row_log_sum_exp(at, c);
    let scale = params.scale;
    for (var j = 0u; j < c; j++) {
        let p = exp(in0[at + j] - ml.x - ml.y);
        if (t == c) {
            out[to + j] = nan();
        } else if (j == t) {
            out[to + j] = (p - 1.0) * scale;
        } else {
            out[to + j] = p * scale;
        }
    }
}
