// Optimizer updates. params.dims.x is the element count n of the parameter.

// Plain SGD in place: param -= lr · grad, lr = params.scalars.x.
// in0 = grad, out = param (read and written).
@compute @workgroup_size(WG_FLAT)
fn sgd_step(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let o = params.offs.w + i;
    out[o] = out[o] - params.scalars.x * in0[params.offs.x + i];
}

// SGD with momentum, first half: velocity = momentum · velocity + (grad + wd · param),
// scalars = (momentum, wd, -, -).  in0 = grad, in1 = param, out = velocity.
@compute @workgroup_size(WG_FLAT)
fn momentum_velocity(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let o = params.offs.w + i;
    let g = in0[params.offs.x + i] + params.scalars.y * in1[params.offs.y + i];
    out[o] = params.scalars.x * out[o] + g;
}

// Second half: param -= lr · d, d = g + momentum · velocity with Nesterov
// (scalars.w = 1), else velocity; scalars = (lr, momentum, wd, nesterov).
// in0 = grad, in1 = velocity, out = param.
@compute @workgroup_size(WG_FLAT)
fn momentum_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let o = params.offs.w + i;
    let p = out[o];
    let v = in1[params.offs.y + i];
    let g = in0[params.offs.x + i] + params.scalars.z * p;
    let d = select(v, g + params.scalars.y * v, params.scalars.w != 0.0);
    out[o] = p - params.scalars.x * d;
}

// Adam, first half, on state = [m | v | c₁ | c₂] (2n + 2 values): g = grad + wd · param,
// m += (1 − β₁)(g − m), v = β₂ v + (1 − β₂) g², and invocation 0 advances the bias
// corrections c = 1 − βᵗ as c ← (1 − β) + β c; scalars = (β₁, β₂, wd, -).
// in0 = grad, in1 = param, out = state.
@compute @workgroup_size(WG_FLAT)
fn adam_moments(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    let n = params.dims.x;
    if (i >= n) {
        return;
    }
    let b1 = params.scalars.x;
    let b2 = params.scalars.y;
    let g = in0[params.offs.x + i] + params.scalars.z * in1[params.offs.y + i];
    let m = params.offs.w + i;
    let v = m + n;
    out[m] += (1.0 - b1) * (g - out[m]);
    out[v] = b2 * out[v] + (1.0 - b2) * (g * g);
    if (i == 0u) {
        let c = params.offs.w + 2u * n;
        out[c] = (1.0 - b1) + b1 * out[c];
        out[c + 1u] = (1.0 - b2) + b2 * out[c + 1u];
    }
}

// Adam, second half, with the bias corrections c₁, c₂ of the state:
// param -= lr / c₁ · m / (√v / √c₂ + ε); scalars = (lr, ε, -, -).  in0 = state,
// out = param.
@compute @workgroup_size(WG_FLAT)
fn adam_update(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    let n = params.dims.x;
    if (i >= n) {
        return;
    }
    let c = params.offs.x + 2u * n;
    let step_size = params.scalars.x / in0[c];
    let correction = sqrt(in0[c + 1u]);
    let denom = sqrt(in0[params.offs.x + n + i]) / correction + params.scalars.y;
    let o = params.offs.w + i;
    out[o] = out[o] - step_size * (in0[params.offs.x + i] / denom);
}
