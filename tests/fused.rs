//! The fully fused trainer (`MlpTrainer::mlp_epoch`) against the step-by-step path: on
//! the reference backend they are the same composition of reference ops and must agree
//! bit for bit, and its epoch must agree with an independent f64 computation written
//! here; the `Cpu` backend's own fused epoch and the GPU kernel must agree with the
//! reference within a stated tolerance.

mod common;

use common::{assert_close_to_largest, gpu, random, rng};
use minidl::backend::MlpTrainer;
use minidl::backend::{Act, MlpLayer, MlpRecipe, MlpSpec, UpdateRule};
use minidl::data::disc_train_test;
use minidl::nn::{Linear, Module, MseLoss, ReLU, Sequential, Tanh};
use minidl::optim::Sgd;
use minidl::train::{fit, mlp_spec, FitConfig};
use minidl::Ops;
use minidl::{seed, Backend, Cpu, Error, Reduction, Reference};

/// GPU and CPU parameters after an epoch agree within this fraction of the largest
/// parameter. Each step's reductions are within 2·γ₂₆ ≈ 3.1e-6 relative of the
/// reference's (tanh within 2⁻²⁰); SGD with a small learning rate carries those
/// rounding differences forward without amplifying them much over 100–2000 steps
/// (observed: below 1e-6), while a wrong formula moves parameters at order lr·|grad|.
const EPOCH_RTOL: f64 = 1e-4;

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_close_to_largest(what, got, want, EPOCH_RTOL);
}

fn spec(widths: &[usize], acts: &[Act]) -> MlpSpec {
    MlpSpec::new(
        widths
            .windows(2)
            .zip(acts)
            .map(|(w, &act)| MlpLayer {
                inputs: w[0],
                outputs: w[1],
                act,
            })
            .collect(),
    )
    .unwrap()
}

/// One `mlp_epoch` on `b` from fixed random parameters and data: the parameters and
/// losses after it.
fn epoch_on<B: Backend>(
    b: &B,
    spec: &MlpSpec,
    rows: usize,
    hyper: &MlpRecipe,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let params = b
        .upload(&random(&mut r, 1, spec.param_count(), -0.4, 0.4))
        .unwrap();
    let inputs = b
        .upload(&random(&mut r, rows, spec.inputs(), 0.0, 1.0))
        .unwrap();
    let targets = b
        .upload(&random(&mut r, rows, spec.outputs(), -1.0, 1.0))
        .unwrap();
    let losses = b.alloc(rows.div_ceil(hyper.batch_size), 1).unwrap();
    b.mlp_trainer()
        .expect("the backend has a fused trainer")
        .mlp_epoch(spec, &params, &inputs, &targets, hyper, &losses)
        .unwrap();
    (
        b.download(&params).unwrap().data().to_vec(),
        b.download(&losses).unwrap().data().to_vec(),
    )
}

#[test]
fn gpu_fused_epochs_match_the_cpu_reference() {
    let Some(gpu) = gpu() else { return };
    use Act::*;
    let cases = [
        // The seed network, one epoch of 100 mini-batches.
        (
            spec(&seed::WIDTHS, &[Relu, Relu, Relu, Tanh]),
            1000,
            10,
            Reduction::Sum,
        ),
        // Odd widths, a last partial batch, no final activation, mean reduction.
        (
            spec(&[3, 17, 5], &[Tanh, Identity]),
            103,
            7,
            Reduction::Mean,
        ),
        // The widest layers the fused path takes.
        (spec(&[64, 64, 16], &[Relu, Tanh]), 40, 8, Reduction::Sum),
        // One row per batch, 2000 batches: more than one dispatch on llvmpipe.
        (spec(&[2, 9, 1], &[Relu, Tanh]), 2000, 1, Reduction::Sum),
        // Sigmoid layers.
        (
            spec(&[2, 12, 12, 2], &[Sigmoid, Relu, Sigmoid]),
            200,
            10,
            Reduction::Sum,
        ),
        // LeakyReLU layers, their slope inside the activation.
        (
            spec(&[2, 12, 12, 2], &[LeakyRelu(0.01), LeakyRelu(0.3), Tanh]),
            200,
            10,
            Reduction::Sum,
        ),
    ];
    for (i, (spec, rows, batch_size, reduction)) in cases.iter().enumerate() {
        let hyper = MlpRecipe::sgd_mse(*batch_size, 0.01, *reduction);
        assert!(gpu.mlp_fits(spec, *batch_size), "case {i} fits");
        let (gpu_params, gpu_losses) = epoch_on(&gpu, spec, *rows, &hyper, i as u64);
        let (cpu_params, cpu_losses) = epoch_on(&Reference, spec, *rows, &hyper, i as u64);
        assert_close(&format!("case {i} parameters"), &gpu_params, &cpu_params);
        assert_close(&format!("case {i} losses"), &gpu_losses, &cpu_losses);
    }
}

/// Trains the seed network for `epochs` on `b` with the fused path on or off: the
/// epoch losses and the final parameters.
fn seed_fit<B: Backend>(b: &B, epochs: usize, fused: bool) -> (Vec<f64>, Vec<f32>) {
    let (train, _) = disc_train_test(5).unwrap();
    let mut model = seed::network(b, &mut rng(6)).unwrap();
    let mut loss = MseLoss::new(seed::REDUCTION);
    let config = FitConfig {
        epochs,
        fused: fused.into(),
        ..FitConfig::default()
    };
    let reports = fit(
        b,
        &mut model,
        &mut loss,
        &mut Sgd::new(seed::LR).unwrap(),
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(reports.iter().all(|r| r.fused == fused));
    let params = model
        .parameters()
        .iter()
        .flat_map(|p| b.download(p.value).unwrap().data().to_vec())
        .collect();
    (reports.iter().map(|r| r.loss).collect(), params)
}

#[test]
fn cpu_fused_path_is_bitwise_the_step_by_step_path() {
    let (fused_losses, fused_params) = seed_fit(&Reference, 3, true);
    let (step_losses, step_params) = seed_fit(&Reference, 3, false);
    assert_eq!(fused_losses, step_losses);
    assert_eq!(fused_params, step_params);
}

#[test]
fn cpu_epochs_match_the_reference_step_by_step_at_1_and_2_threads() {
    let (ref_losses, ref_params) = seed_fit(&Reference, 3, false);
    let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
    for threads in [1, 2] {
        let cpu = Cpu::with_threads(threads).unwrap();
        // The fused epoch adds in the reference's order: bit for bit.
        let (losses, params) = seed_fit(&cpu, 3, true);
        assert_eq!(params, ref_params, "{threads} thread(s), fused");
        assert_eq!(losses, ref_losses, "{threads} thread(s), fused");
        // Step by step, the small forward product sums in 16 partial sums.
        let (losses, params) = seed_fit(&cpu, 3, false);
        let what = format!("{threads} thread(s), step by step");
        assert_close(&format!("{what}: parameters"), &params, &ref_params);
        assert_close(
            &format!("{what}: losses"),
            &f32s(&losses),
            &f32s(&ref_losses),
        );
    }
}

#[test]
fn gpu_fused_fit_matches_gpu_step_by_step_and_cpu() {
    let Some(gpu) = gpu() else { return };
    let (_, fused) = seed_fit(&gpu, 2, true);
    let (_, generic) = seed_fit(&gpu, 2, false);
    let (_, cpu) = seed_fit(&Reference, 2, false);
    assert_close("fused vs step by step on the GPU", &fused, &generic);
    assert_close("fused GPU vs CPU", &fused, &cpu);
}

#[test]
fn mlp_spec_recognises_linear_activation_chains_only() {
    let mut r = rng(1);
    let net = seed::network(&Reference, &mut r).unwrap();
    let spec = mlp_spec(&net).expect("the seed network qualifies");
    assert_eq!(spec.layers().len(), 4);
    assert_eq!(spec.layers()[3].act, Act::Tanh);
    assert_eq!(spec.param_count(), 75 + 650 + 650 + 52);

    let no_final_activation = Sequential::new(vec![
        Box::new(Linear::new(&Reference, 2, 3, &mut r).unwrap()) as Box<dyn Module<Reference>>,
        Box::new(ReLU::new()),
        Box::new(Linear::new(&Reference, 3, 1, &mut r).unwrap()),
    ])
    .unwrap();
    let spec = mlp_spec(&no_final_activation).unwrap();
    assert_eq!(spec.layers()[1].act, Act::Identity);

    let starts_with_activation = Sequential::new(vec![
        Box::new(Tanh::new()) as Box<dyn Module<Reference>>,
        Box::new(Linear::new(&Reference, 2, 3, &mut r).unwrap()),
    ])
    .unwrap();
    assert!(mlp_spec(&starts_with_activation).is_none());

    let two_activations = Sequential::new(vec![
        Box::new(Linear::new(&Reference, 2, 3, &mut r).unwrap()) as Box<dyn Module<Reference>>,
        Box::new(ReLU::new()),
        Box::new(Tanh::new()),
    ])
    .unwrap();
    assert!(mlp_spec(&two_activations).is_none());
}

#[test]
fn mlp_epoch_rejects_bad_arguments_alike_on_both_backends() {
    fn errors<B: Backend>(b: &B) -> Vec<String> {
        let spec = spec(&[2, 3, 1], &[Act::Relu, Act::Tanh]);
        let hyper = MlpRecipe::sgd_mse(2, 0.1, Reduction::Sum);
        let params = b.alloc(1, spec.param_count()).unwrap();
        let inputs = b.alloc(4, 2).unwrap();
        let targets = b.alloc(4, 1).unwrap();
        let losses = b.alloc(2, 1).unwrap();
        let wrong_params = b.alloc(1, spec.param_count() + 1).unwrap();
        let wrong_targets = b.alloc(4, 2).unwrap();
        let wrong_losses = b.alloc(3, 1).unwrap();
        let trainer = b.mlp_trainer().expect("the backend has a fused trainer");
        let run = |p, x, t, h: &MlpRecipe, l| trainer.mlp_epoch(&spec, p, x, t, h, l).unwrap_err();
        let zero_batch = MlpRecipe {
            batch_size: 0,
            ..hyper
        };
        let nan_lr = MlpRecipe {
            rule: UpdateRule::Sgd { lr: f32::NAN },
            ..hyper
        };
        let found = [
            run(&wrong_params, &inputs, &targets, &hyper, &losses),
            run(&params, &inputs, &wrong_targets, &hyper, &losses),
            run(&params, &inputs, &targets, &hyper, &wrong_losses),
            run(&params, &inputs, &targets, &zero_batch, &losses),
            run(&params, &inputs, &targets, &nan_lr, &losses),
            run(&inputs, &inputs, &targets, &hyper, &losses),
        ];
        assert!(matches!(found[0], Error::Shape { .. }), "{}", found[0]);
        assert!(
            matches!(found[3], Error::InvalidArgument(_)),
            "{}",
            found[3]
        );
        found.iter().map(|e| e.to_string()).collect()
    }
    let cpu = errors(&Reference);
    assert_eq!(errors(&Cpu::new()), cpu);
    assert!(cpu[0].contains("parameters should be 1×"), "{}", cpu[0]);
    assert!(cpu[2].contains("losses should be 2×1"), "{}", cpu[2]);
    if let Some(gpu) = gpu() {
        assert_eq!(errors(&gpu), cpu);
        let too_wide = spec(&[2, 65, 1], &[Act::Relu, Act::Tanh]);
        assert!(!gpu.mlp_fits(&too_wide, 10));
        let params = gpu.alloc(1, too_wide.param_count()).unwrap();
        let x = gpu.alloc(10, 2).unwrap();
        let t = gpu.alloc(10, 1).unwrap();
        let l = gpu.alloc(1, 1).unwrap();
        let hyper = MlpRecipe::sgd_mse(10, 0.1, Reduction::Sum);
        let e = gpu
            .mlp_epoch(&too_wide, &params, &x, &t, &hyper, &l)
            .unwrap_err();
        assert!(e.to_string().contains("widths of at most 64"), "{e}");
    }
}

#[test]
fn cpu_fused_layer_ops_equal_the_separate_ops_bitwise() {
    fused_layer_ops_equal_the_separate_ops(&Reference);
    fused_layer_ops_equal_the_separate_ops(&Cpu::with_threads(1).unwrap());
    fused_layer_ops_equal_the_separate_ops(&Cpu::with_threads(2).unwrap());
}

fn fused_layer_ops_equal_the_separate_ops<B: Backend>(b: &B) {
    let mut r = rng(21);
    let (n, k, m) = (10, 25, 7);
    let x = b.upload(&random(&mut r, n, k, -1.0, 1.0)).unwrap();
    let w = b.upload(&random(&mut r, m, k, -1.0, 1.0)).unwrap();
    let bias = b.upload(&random(&mut r, 1, m, -1.0, 1.0)).unwrap();
    let dy = b.upload(&random(&mut r, n, m, -1.0, 1.0)).unwrap();
    for act in Act::ALL {
        // Separately: z = linear, y = act(z), dz = act backward, then linear backward.
        let (z, y, dz) = (
            b.alloc(n, m).unwrap(),
            b.alloc(n, m).unwrap(),
            b.alloc(n, m).unwrap(),
        );
        b.linear_forward(&x, &w, &bias, &z).unwrap();
        b.activation_forward(act, &z, &y).unwrap();
        let saved = if act.backward_from_input() { &z } else { &y };
        b.activation_backward(act, saved, &dy, &dz).unwrap();
        let (dx, dw, db) = (
            b.alloc(n, k).unwrap(),
            b.alloc(m, k).unwrap(),
            b.alloc(1, m).unwrap(),
        );
        b.linear_backward(&x, &w, &dz, Some(&dx), &dw, &db).unwrap();
        // Fused.
        let fy = b.alloc(n, m).unwrap();
        b.linear_act_forward(&x, &w, &bias, act, &fy).unwrap();
        let (fdx, fdw, fdb) = (
            b.alloc(n, k).unwrap(),
            b.alloc(m, k).unwrap(),
            b.alloc(1, m).unwrap(),
        );
        b.linear_act_backward(&x, &w, Some(&fy), &dy, act, Some(&fdx), &fdw, &fdb)
            .unwrap();
        for (what, sep, fused) in [
            ("y", &y, &fy),
            ("dx", &dx, &fdx),
            ("dw", &dw, &fdw),
            ("db", &db, &fdb),
        ] {
            assert_eq!(
                b.download(sep).unwrap().data(),
                b.download(fused).unwrap().data(),
                "{act:?} {what}"
            );
        }
    }
    // The backward of an activation needs the forward output.
    let e = b
        .linear_act_backward(
            &x,
            &w,
            None,
            &dy,
            Act::Tanh,
            None,
            &b.alloc(m, k).unwrap(),
            &b.alloc(1, m).unwrap(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("needs the forward output"), "{e}");
}

/// One epoch of mini-batch SGD on `spec` in f64, written here from the definitions
/// (PyTorch's `Linear`, the activations, `MSELoss`, plain SGD) without the reference's
/// functions: the losses, and `params` updated in place.
fn independent_epoch(
    spec: &MlpSpec,
    params: &mut [f64],
    x: &[f64],
    t: &[f64],
    hyper: &MlpRecipe,
) -> Vec<f64> {
    let act = |a: Act, z: f64| match a {
        Act::Identity => z,
        Act::Relu => z.max(0.0),
        Act::Tanh => z.tanh(),
        Act::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Act::LeakyRelu(s) => {
            if z > 0.0 {
                z
            } else {
                s as f64 * z
            }
        }
    };
    // d act / dz from the output y (y > 0 exactly where z > 0 for the ReLUs).
    let slope = |a: Act, y: f64| match a {
        Act::Identity => 1.0,
        Act::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Act::Tanh => 1.0 - y * y,
        Act::Sigmoid => y * (1.0 - y),
        Act::LeakyRelu(s) => {
            if y > 0.0 {
                1.0
            } else {
                s as f64
            }
        }
    };
    let (width_in, width_out) = (spec.inputs(), spec.outputs());
    let rows = x.len() / width_in;
    let mut losses = Vec::new();
    for first in (0..rows).step_by(hyper.batch_size) {
        let n = hyper.batch_size.min(rows - first);
        // Forward, keeping every layer's input.
        let mut ins = vec![x[first * width_in..(first + n) * width_in].to_vec()];
        let mut at = 0;
        let mut places = Vec::new();
        for l in spec.layers() {
            let (k, m) = (l.inputs, l.outputs);
            let (w, b) = (at, at + m * k);
            places.push((w, b));
            at = b + m;
            let a = ins.last().unwrap();
            let y: Vec<f64> = (0..n * m)
                .map(|e| {
                    let (r, c) = (e / m, e % m);
                    let z: f64 = (0..k).map(|i| a[r * k + i] * params[w + c * k + i]).sum();
                    act(l.act, z + params[b + c])
                })
                .collect();
            ins.push(y);
        }
        let y = ins.last().unwrap();
        let target = &t[first * width_out..(first + n) * width_out];
        let count = (n * width_out) as f64;
        let scale = if hyper.reduction == Reduction::Mean {
            1.0 / count
        } else {
            1.0
        };
        losses.push(
            scale
                * y.iter()
                    .zip(target)
                    .map(|(p, q)| (p - q) * (p - q))
                    .sum::<f64>(),
        );
        let mut g: Vec<f64> = y
            .iter()
            .zip(target)
            .map(|(p, q)| 2.0 * scale * (p - q))
            .collect();
        // Backward from the weights before the step, then the update.
        let mut steps = vec![0.0; params.len()];
        for (li, l) in spec.layers().iter().enumerate().rev() {
            let (k, m) = (l.inputs, l.outputs);
            let (w, b) = places[li];
            let (a, y) = (&ins[li], &ins[li + 1]);
            let dz: Vec<f64> = g.iter().zip(y).map(|(g, y)| g * slope(l.act, *y)).collect();
            for c in 0..m {
                for r in 0..n {
                    steps[b + c] += dz[r * m + c];
                    for i in 0..k {
                        steps[w + c * k + i] += dz[r * m + c] * a[r * k + i];
                    }
                }
            }
            g = (0..n * k)
                .map(|e| {
                    let (r, i) = (e / k, e % k);
                    (0..m).map(|c| dz[r * m + c] * params[w + c * k + i]).sum()
                })
                .collect();
        }
        for (p, s) in params.iter_mut().zip(steps) {
            *p -= hyper.rule.lr() as f64 * s;
        }
    }
    losses
}

#[test]
fn cpu_and_reference_fused_epochs_match_an_independent_f64_computation() {
    use Act::*;
    let cases = [
        (
            spec(&seed::WIDTHS, &[Relu, Relu, Relu, Tanh]),
            1000,
            10,
            Reduction::Sum,
        ),
        (
            spec(&[3, 17, 5], &[Tanh, Identity]),
            103,
            7,
            Reduction::Mean,
        ),
        (
            spec(&[2, 12, 12, 2], &[LeakyRelu(0.3), Sigmoid, Tanh]),
            200,
            10,
            Reduction::Sum,
        ),
        // Widths past one block of 32 lanes and between blocks; a short last batch.
        (
            spec(&[5, 40, 33, 3], &[Sigmoid, LeakyRelu(0.1), Identity]),
            97,
            16,
            Reduction::Mean,
        ),
    ];
    for (i, (spec, rows, batch_size, reduction)) in cases.iter().enumerate() {
        let hyper = MlpRecipe::sgd_mse(*batch_size, 0.01, *reduction);
        // The same draws as epoch_on, in f64.
        let mut r = rng(100 + i as u64);
        let to64 = |t: minidl::Tensor| t.data().iter().map(|&v| v as f64).collect::<Vec<_>>();
        let mut want = to64(random(&mut r, 1, spec.param_count(), -0.4, 0.4));
        let x = to64(random(&mut r, *rows, spec.inputs(), 0.0, 1.0));
        let t = to64(random(&mut r, *rows, spec.outputs(), -1.0, 1.0));
        let want_losses = independent_epoch(spec, &mut want, &x, &t, &hyper);
        let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
        let seed = 100 + i as u64;
        let reference = epoch_on(&Reference, spec, *rows, &hyper, seed);
        let cpu = epoch_on(&Cpu::new(), spec, *rows, &hyper, seed);
        // The CPU's own epoch adds in the reference's order: bit for bit.
        assert_eq!(
            cpu, reference,
            "case {i}: the CPU's fused epoch against the reference's"
        );
        let (params, losses) = reference;
        assert_close(&format!("case {i} parameters"), &params, &f32s(&want));
        assert_close(&format!("case {i} losses"), &losses, &f32s(&want_losses));
    }
}
