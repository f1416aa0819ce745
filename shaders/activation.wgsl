// Elementwise activations and their backward. params.dims.x is the element count.

// y = max(x, 0).  in0 = x, out = y.
@compute @workgroup_size(256)
fn relu_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let x = in0[params.offs.x + i];
    out[params.offs.w + i] = select(0.0, x, x > 0.0);
}

// dx = dy where x > 0, else 0.  in0 = x, in1 = dy, out = dx.
@compute @workgroup_size(256)
fn relu_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let x = in0[params.offs.x + i];
    out[params.offs.w + i] = select(0.0, in1[params.offs.y + i], x > 0.0);
}

// y = tanh(x).  in0 = x, out = y. The clamp changes no f32 result (tanh(x) rounds to
// ±1 once |x| > 9.02) and keeps drivers that evaluate tanh through exponentials from
// overflowing to NaN for large |x|.
@compute @workgroup_size(256)
fn tanh_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    out[params.offs.w + i] = tanh(clamp(in0[params.offs.x + i], -10.0, 10.0));
}

// dx = dy · (1 − y²) with y the forward output.  in0 = y, in1 = dy, out = dx.
@compute @workgroup_size(256)
fn tanh_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let y = in0[params.offs.x + i];
    out[params.offs.w + i] = in1[params.offs.y + i] * (1.0 - y * y);
}

// y = 1 / (1 + e^(−x)).  in0 = x, out = y.
@compute @workgroup_size(256)
fn sigmoid_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    out[params.offs.w + i] = sigmoid(in0[params.offs.x + i]);
}

// dx = dy · y (1 − y) with y the forward output.  in0 = y, in1 = dy, out = dx.
@compute @workgroup_size(256)
fn sigmoid_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let y = in0[params.offs.x + i];
    out[params.offs.w + i] = in1[params.offs.y + i] * (y * (1.0 - y));
}

// y = x where x > 0, else slope · x, slope = params.scalars.x.  in0 = x, out = y.
@compute @workgroup_size(256)
fn leaky_relu_forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let x = in0[params.offs.x + i];
    out[params.offs.w + i] = select(params.scalars.x * x, x, x > 0.0);
}

// dx = dy where x > 0, else slope · dy.  in0 = x, in1 = dy, out = dx.
@compute @workgroup_size(256)
fn leaky_relu_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.dims.x) {
        return;
    }
    let dy = in1[params.offs.y + i];
    out[params.offs.w + i] = select(params.scalars.x * dy, dy, in0[params.offs.x + i] > 0.0);
}
