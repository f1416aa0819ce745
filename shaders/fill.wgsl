// Filling a tensor with one value (zeroing gradients): a kernel, so that it stays in
// the open compute pass. params.count is the element count, params.value the
// value; out is the tensor.
@compute @workgroup_size(WG_FLAT)
fn fill(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    out[params.out_at + i] = params.value;
}
