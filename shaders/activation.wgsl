// Elementwise activations and their backward, one kernel each for every activation:
// params.count is the element count, params.act the activation's code,
// params.slope LeakyReLU's slope.

// y = act(x).  in0 = x, out = y.
@compute @workgroup_size(WG_FLAT)
fn activation_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    out[params.out_at + i] = activate(in0[params.in0_at + i], params.act, params.slope);
}

// dx = dy ⊙ act' from the saved input (ReLU, LeakyReLU) or output (tanh, sigmoid).
// in0 = saved, in1 = dy, out = dx.
@compute @workgroup_size(WG_FLAT)
fn activation_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    out[params.out_at + i] =
        gate(in1[params.in1_at + i], in0[params.in0_at + i], params.act, params.slope);
}
