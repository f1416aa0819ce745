// Optimizer updates. params.dims.x is the element count.

// Plain SGD in place: param -= lr · grad, lr = params.scalars.x.
// in0 = grad, out = param (read and written).
@compute @workgroup_size(256)
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
