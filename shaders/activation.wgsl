// Elementwise activations and their backward, one kernel each for every activation:
// params.dims.x is the element count, params.dims.y the activation's code,
// params.scalars.x LeakyReLU's slope.

// y = act(x).  in0 = x, out = y.
@compute @workgroup_size(WG_FLAT)
fn activation_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    out[params.offs.w + i] = activate(in0[params.offs.x + i], params.dims.y, params.scalars.x);
}

// dx = dy ⊙ act' from the saved input (ReLU, LeakyReLU) or output (tanh, sigmoid).
// in0 = saved, in1 = dy, out = dx.
@compute @workgroup_size(WG_FLAT)
fn activation_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    out[params.offs.w + i] =
        gate(in1[params.offs.y + i], in0[params.offs.x + i], params.dims.y, params.scalars.x);
}
