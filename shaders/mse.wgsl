// Mean-squared error. params.count is the element count of pred and target.

// out[0] = scale · Σ (pred − target)², with scale = params.loss_scale (1 for a sum,
// 1/N for a mean), added to out[0] instead where params.accumulate is 1 (the host splits
// long tensors into chunks). One workgroup: each invocation sums a strided share, then
// store_workgroup_sum.  in0 = pred, in1 = target, out = the loss slot.
@compute @workgroup_size(WG_FLAT)
fn mse_loss(@builtin(local_invocation_index) lid: u32) {
    let count = params.count;
    var acc = 0.0;
    for (var i = lid; i < count; i += WG_FLAT) {
        let d = in0[params.in0_at + i] - in1[params.in1_at + i];
        acc += d * d;
    }
    store_workgroup_sum(lid, acc, params.loss_scale, params.out_at, params.accumulate == 1u);
}

// grad = factor · (pred − target), factor = params.grad_scale (2 or 2/N).
// in0 = pred, in1 = target, out = grad.
@compute @workgroup_size(WG_FLAT)
fn mse_grad(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = flat_index(gid, groups);
    if (i >= params.count) {
        return;
    }
    out[params.out_at + i] = (in0[params.in0_at + i] - in1[params.in1_at + i]) * params.grad_scale;
}
