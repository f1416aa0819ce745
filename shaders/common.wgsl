// Shared prelude of every minidl kernel, prepended to each shader file after the
// generated constants (WG_FLAT, the invocations of the one-dimensional kernels'
// workgroups; TILE; BLOCK; the activation codes).
//
// Binding convention: 0 is the uniform block below; 1..3 are read-only inputs in the
// order the op lists them; 4 is the output; 5 is a second output, for the kernels
// that write two (its element offset in scalars.z, as raw bits). (The generated fused
// trainer, which declares its own bindings in mlp_fused.wgsl, is the one kernel that
// also writes binding 3, its packed parameters: each pipeline's layout comes from its
// own shader, so wgpu tracks that buffer as written there.) Every tensor is addressed
// by an element offset into its buffer (offs), so a mini-batch is a view, not a copy.

struct Params {
    // Op-specific sizes, documented at each entry point.
    dims: vec4<u32>,
    // Element offsets of in0, in1, in2 and out.
    offs: vec4<u32>,
    // Op-specific scalars (a learning rate, a loss scale).
    scalars: vec4<f32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
