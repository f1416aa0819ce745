// Optimizer updates. params.count is the element count n of the parameter.

// Plain SGD in place: param -= lr · grad, lr = params.lr.
// in0 = grad, out = param (read and written).
@compute @workgroup_size(WG_FLAT)
fn sgd_step(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let o = params.out_at + i;
    out[o] = out[o] - params.lr * in0[params.in0_at + i];
}

// SGD with momentum, first half: velocity = momentum · velocity + (grad + wd · param),
// wd = params.weight_decay.  in0 = grad, in1 = param, out = velocity.
@compute @workgroup_size(WG_FLAT)
fn momentum_velocity(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let o = params.out_at + i;
    let g = in0[params.in0_at + i] + params.weight_decay * in1[params.in1_at + i];
    out[o] = params.momentum * out[o] + g;
}

// Second half: param -= lr · d, d = g + momentum · velocity with Nesterov
// (params.nesterov = 1), else velocity.
// in0 = grad, in1 = velocity, out = param.
@compute @workgroup_size(WG_FLAT)
fn momentum_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    let o = params.out_at + i;
    let p = out[o];
    let v = in1[params.in1_at + i];
    let g = in0[params.in0_at + i] + params.weight_decay * p;
    let d = select(v, g + params.momentum * v, params.nesterov != 0u);
    out[o] = p - params.lr * d;
}

// Adam, first half, on state = [m | v | c₁ | c₂] (v at params.second_moments and the
// corrections at params.corrections from the state's start): g = grad + wd · param,
// m += (1 − β₁)(g − m), v = β₂ v + (1 − β₂) g², and invocation 0 advances the bias
// corrections c = 1 − βᵗ as c ← (1 − β) + β c.
// in0 = grad, in1 = param, out = state.
@compute @workgroup_size(WG_FLAT)
fn adam_moments(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    let n = params.count;
    if (i >= n) {
        return;
    }
    let b1 = params.beta1;
    let b2 = params.beta2;
    let g = in0[params.in0_at + i] + params.weight_decay * in1[params.in1_at + i];
    let m = params.out_at + i;
    let v = params.out_at + params.second_moments + i;
    out[m] += (1.0 - b1) * (g - out[m]);
    out[v] = b2 * out[v] + (1.0 - b2) * (g * g);
    if (i == 0u) {
        let c = params.out_at + params.corrections;
        out[c] = (1.0 - b1) + b1 * out[c];
        out[c + 1u] = (1.0 - b2) + b2 * out[c + 1u];
    }
}

// Adam, second half, with the bias corrections c₁, c₂ of the state:
// param -= lr / c₁ · m / (√v / √c₂ + ε).  in0 = state,
// out = param.
@compute @workgroup_size(WG_FLAT)
fn adam_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    let n = params.count;
    if (i >= n) {
        return;
    }
    let c = params.in0_at + params.corrections;
    let step_size = params.lr / in0[c];
    let correction = sqrt(in0[c + 1u]);
    let denom = sqrt(in0[params.in0_at + params.second_moments + i]) / correction + params.eps;
    let o = params.out_at + i;
    out[o] = out[o] - step_size * (in0[params.in0_at + i] / denom);
}
