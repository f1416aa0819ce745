// The fully fused trainer for narrow MLPs: one workgroup runs a whole epoch of
// mini-batch training (forward, loss, backward, update for every mini-batch) with
// the weights and one batch's activations and gradients in workgroup memory, and
// barriers between the layers.
//
// This file is not complete on its own: src/backend/gpu/mlp_fused.rs prepends, per
// network, the constants WG (invocations), PARAM_COUNT (packed parameters) and
// ACT_LEN (batch size × Σ output widths), and appends `load_weights`,
// `store_weights` and `train_step`: one loop per layer and phase, its dot products
// unrolled over the (constant, at most 64) widths, with the loss (MSE or
// cross-entropy) and the update rule (SGD, momentum or Adam) it was generated for. Few
// loop iterations matter on llvmpipe, which ends any invocation after 65535 loop
// iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS); the host splits long epochs into
// several dispatches to stay under that.
//
// `activate` and `gate` come from act.wgsl, prepended too.
//
// Bindings (declared by the generator, with EpochParams, from the calling convention
// of src/backend/gpu/kernels/convention.rs): `params`; `inputs` (n × in); `targets`
// (n × out, or n class indices); `weights`, the packed parameters W0 b0 W1 b1 ...
// (read at the start, written back at the end), then the update rule's state;
// `losses`, one loss per mini-batch. A dispatch trains on mini-batches
// 0..params.batches of its views.
//
// Workgroup r of a dispatch trains run r of independent runs laid out one after
// another: its inputs, targets, packed parameters and losses start r runs' worth of
// elements after the views' (a run holds `run_rows` points, in mini-batches of
// params.batch; the generator's constants IN, TARGET_WIDTH and RUN_PARAMS give the widths).
// With one workgroup this is the single run.

// Where this workgroup's run starts in each binding: element offsets of its inputs,
// targets, packed parameters and losses.
var<private> in_at: u32;
var<private> target_at: u32;
var<private> param_at: u32;
var<private> loss_at: u32;

// The parameters, packed as in `weights` (unused where each invocation keeps the
// weights it needs in private variables, on one subgroup).
var<workgroup> wp: array<f32, PARAM_COUNT>;
// Each layer's output for the rows of the batch, layer after layer, row-major.
var<workgroup> acts: array<f32, ACT_LEN>;
// The loss gradient with respect to each layer's pre-activation (its dz), laid out
// as `acts`.
var<workgroup> grads: array<f32, ACT_LEN>;

@compute @workgroup_size(WG)
fn mlp_epoch(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let run_rows = params.run_rows;
    let run = wid.x;
    in_at = params.in0_at + run * run_rows * IN;
    target_at = params.in1_at + run * run_rows * TARGET_WIDTH;
    param_at = params.in2_at + run * RUN_PARAMS;
    loss_at = params.out_at + run * ((run_rows + params.batch - 1u) / params.batch);
    load_weights(lid);
    workgroupBarrier();
    let n = params.rows;
    let batch = params.batch;
    for (var step = 0u; step < params.batches; step++) {
        let first = step * batch;
        train_step(lid, min(batch, n - first), first, step);
    }
    workgroupBarrier();
    store_weights(lid);
}
