// Shared helpers of every built-in kernel, prepended to each shader file after the
// generated prelude: the constants (WG_FLAT, the invocations of the one-dimensional
// kernels' workgroups; TILE; BLOCK; the activation codes), the family's parameter
// block `params` and the bindings in0, in1, in2 (read-only inputs, in the order the op
// lists them), out and out2 (a second output, for the kernels that write two), all
// generated from src/backend/gpu/kernels/convention.rs. Every tensor is addressed by an
// element offset into its buffer (params.in0_at ... params.out2_at), so a mini-batch
// is a view, not a copy.

// Workgroup memory of the one-workgroup reductions (the losses).
var<workgroup> partial: array<f32, WG_FLAT>;

// Sums every invocation's `acc` over the workgroup (a tree in workgroup memory) and
// writes scale · sum to out[at], or adds it there where `accumulate` is true. Has
// barriers: call it from uniform control flow.
fn store_workgroup_sum(lid: u32, acc: f32, scale: f32, at: u32, accumulate: bool) {
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = WG_FLAT / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let value = partial[0] * scale;
        out[at] = select(value, out[at] + value, accumulate);
    }
}

// The element index of a one-dimensional kernel, dispatched on a 2-D grid of
// workgroups so that it can exceed 65535 workgroups along x.
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.y * groups.x * WG_FLAT + gid.x;
}
