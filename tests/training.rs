//! Whole-network checks: one training step of the seed network on the GPU against the
//! CPU reference from the same weights, a few steps of SGD, and short training runs on
//! the disc on both backends.

mod common;

use common::{gpu, rng};
use minidl::backend::gpu::{ConvLowering, GpuStats};
use minidl::data::{disc_train_test, Dataset};
use minidl::nn::{
    build_model, parse_model, CrossEntropyLoss, Loss, Module, MseLoss, RowShape, Sequential,
};
use minidl::optim::{Optimizer, Sgd};
use minidl::train::{count_errors, fit, FitConfig, Fusion};
use minidl::{seed, Backend, Gpu, Reference, Tensor};
use minidl::{Ops, Reduction};

/// GPU-vs-CPU tolerance for whole-network quantities, relative to the largest magnitude
/// in each tensor. A step chains 8 reductions of at most 25 terms (each within
/// 2·γ₂₆ ≈ 3.1e-6 of its magnitude), the GPU's tanh (within 2⁻²⁰ absolute), and the
/// loss sum taken in another order; their compounded effect stays well below 1e-4 of a
/// tensor's scale, while a wrong formula changes results at order 1.
const NETWORK_RTOL: f64 = 1e-4;

fn assert_close_rel(what: &str, got: &Tensor, want: &Tensor) {
    let scale = want
        .data()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let bound = NETWORK_RTOL * scale.max(f64::MIN_POSITIVE);
    for (i, (g, w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            ((g - w) as f64).abs() <= bound,
            "{what}[{i}]: GPU {g} vs CPU {w} (bound {bound:e}, scale {scale:e})"
        );
    }
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
}

/// The seed network (weights from `init_seed`) after `steps` SGD steps over the first
/// mini-batches of the disc set: the loss of each step and the parameters and
/// gradients at the end, all downloaded.
fn run_steps<B: Backend>(b: &B, steps: usize) -> (Vec<f32>, Vec<(String, Tensor, Tensor)>) {
    let (train, _) = disc_train_test(0).unwrap();
    let mut model = seed::network(b, &mut rng(42)).unwrap();
    let mut loss = MseLoss::new(seed::REDUCTION);
    let mut sgd = Sgd::new(seed::LR).unwrap();
    let x_all = b.upload(train.inputs()).unwrap();
    let t_all = b.upload(train.targets()).unwrap();
    let mut losses = Vec::new();
    for s in 0..steps {
        let x = x_all.slice_rows(s * 10, 10).unwrap();
        let t = t_all.slice_rows(s * 10, 10).unwrap();
        model.zero_grad(b).unwrap();
        let pred = model.forward(b, &x).unwrap().clone();
        losses.push(loss.value(b, &pred, &t).unwrap());
        let g = loss.backward(b, &pred, &t).unwrap().clone();
        model.backward(b, &g).unwrap();
        if s + 1 < steps {
            sgd.step(b, &model.parameters()).unwrap();
        }
    }
    let params = model
        .parameters()
        .into_iter()
        .map(|p| {
            (
                p.name,
                b.download(p.value).unwrap(),
                b.download(p.grad).unwrap(),
            )
        })
        .collect();
    (losses, params)
}

#[test]
fn one_training_step_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let (gpu_loss, gpu_params) = run_steps(&gpu, 1);
    let (cpu_loss, cpu_params) = run_steps(&Reference, 1);
    let rel = ((gpu_loss[0] - cpu_loss[0]) / cpu_loss[0]).abs() as f64;
    assert!(
        rel <= NETWORK_RTOL,
        "loss: GPU {} vs CPU {}",
        gpu_loss[0],
        cpu_loss[0]
    );
    assert_eq!(gpu_params.len(), 8, "4 weights and 4 biases");
    for ((name, gv, gg), (cname, cv, cg)) in gpu_params.iter().zip(&cpu_params) {
        assert_eq!(name, cname);
        assert_eq!(
            gv, cv,
            "{name}: the same seed gives the same initial weights"
        );
        assert_close_rel(&format!("{name}.grad"), gg, cg);
    }
}

#[test]
fn ten_sgd_steps_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let (gpu_loss, gpu_params) = run_steps(&gpu, 10);
    let (cpu_loss, cpu_params) = run_steps(&Reference, 10);
    for (s, (g, c)) in gpu_loss.iter().zip(&cpu_loss).enumerate() {
        assert!(
            ((g - c) / c).abs() as f64 <= NETWORK_RTOL,
            "step {s} loss: GPU {g} vs CPU {c}"
        );
    }
    for ((name, gv, gg), (_, cv, cg)) in gpu_params.iter().zip(&cpu_params) {
        assert_close_rel(name, gv, cv);
        assert_close_rel(&format!("{name}.grad"), gg, cg);
    }
}

/// Trains the seed network for `epochs` and returns (first epoch loss, last epoch
/// loss, test errors).
fn short_run<B: Backend>(b: &B, epochs: usize) -> (f64, f64, usize) {
    let (train, test) = disc_train_test(0).unwrap();
    let mut model = seed::network(b, &mut rng(1)).unwrap();
    let mut loss = MseLoss::new(seed::REDUCTION);
    let config = FitConfig {
        epochs,
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
    let errors = count_errors(b, &mut model, &test).unwrap();
    (reports[0].loss, reports.last().unwrap().loss, errors)
}

/// After 50 epochs the seed network misclassifies at most 10 % of the test points (a
/// constant guess gets about 50 %; on the CPU, seeds 0–9 give 34–67 errors here).
const SHORT_RUN_EPOCHS: usize = 50;
const SHORT_RUN_MAX_TEST_ERRORS: usize = 100;

#[test]
fn short_training_run_learns_the_disc_on_cpu() {
    let (first, last, errors) = short_run(&Reference, SHORT_RUN_EPOCHS);
    println!("cpu: loss {first:.2} → {last:.2}, {errors} test errors");
    assert!(last < first / 4.0, "loss fell only from {first} to {last}");
    assert!(errors <= SHORT_RUN_MAX_TEST_ERRORS, "{errors} test errors");
}

#[test]
fn short_training_run_learns_the_disc_on_gpu() {
    let Some(gpu) = gpu() else { return };
    let (first, last, errors) = short_run(&gpu, SHORT_RUN_EPOCHS);
    println!("gpu: loss {first:.2} → {last:.2}, {errors} test errors");
    assert!(last < first / 4.0, "loss fell only from {first} to {last}");
    assert!(errors <= SHORT_RUN_MAX_TEST_ERRORS, "{errors} test errors");
}

/// Three epochs of the seed workload on the GPU, on the fused path or step by step:
/// the backend's counters after each epoch.
fn counted_epochs(gpu: &Gpu, fused: bool) -> (Vec<GpuStats>, u64, bool) {
    let (train, _) = disc_train_test(3).unwrap();
    let mut model = seed::network(gpu, &mut rng(3)).unwrap();
    let mut loss = MseLoss::new(seed::REDUCTION);
    let config = FitConfig {
        epochs: 3,
        fused: fused.into(),
        ..FitConfig::default()
    };
    let mut after_epoch = Vec::new();
    let reports = fit(
        gpu,
        &mut model,
        &mut loss,
        &mut Sgd::new(seed::LR).unwrap(),
        &train,
        &config,
        |_, _| {
            after_epoch.push(gpu.stats());
            Ok(())
        },
    )
    .unwrap();
    let steps = train.len().div_ceil(config.batch_size) as u64;
    (after_epoch, steps, reports[0].fused)
}

#[test]
fn steady_state_epochs_allocate_nothing_and_wait_once_on_the_gpu() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: the shared one's counters also count the other tests.
    let gpu = Gpu::new().unwrap();
    for fused in [false, true] {
        let (after_epoch, steps, ran_fused) = counted_epochs(&gpu, fused);
        assert_eq!(
            ran_fused, fused,
            "the fused path is taken exactly when asked"
        );
        // The first epoch creates the buffers, uniform blocks and bind groups; later
        // epochs over the same batches must reuse every one of them.
        let (first, last) = (after_epoch[0], after_epoch[2]);
        let path = if fused { "fused" } else { "step by step" };
        assert_eq!(
            last.buffers, first.buffers,
            "{path}: buffers created after the first epoch"
        );
        assert_eq!(
            last.uniforms, first.uniforms,
            "{path}: uniform blocks created after the first epoch"
        );
        assert_eq!(
            last.bind_groups, first.bind_groups,
            "{path}: bind groups created after the first epoch"
        );
        assert!(
            last.dispatches > first.dispatches,
            "{path}: the later epochs did run"
        );
        // The host waits once per epoch (reading the losses), never inside it.
        assert_eq!(last.waits - first.waits, 2, "{path}: waits in two epochs");
        let submissions = last.submissions - first.submissions;
        let dispatches = last.dispatches - first.dispatches;
        println!("{path}: 2 epochs of {steps} steps: {dispatches} dispatches in {submissions} submissions");
        if fused {
            assert_eq!(dispatches, 2, "one dispatch per fused epoch");
        } else {
            // Per step of the seed network (4 linear layers, each with its activation
            // fused): 4 forward, the loss and its gradient, dw and db in one dispatch
            // per layer (written over rather than cleared first) and dx for all but the
            // first, and one SGD step per parameter (8): 21 commands.
            assert!(
                dispatches <= 21 * 2 * steps,
                "{dispatches} dispatches for {} steps",
                2 * steps
            );
            // Recorded without waiting and submitted in large batches: many steps per
            // submission, not one (or more) per step.
            assert!(
                submissions * 5 <= 2 * steps,
                "{submissions} submissions for {} steps",
                2 * steps
            );
        }
    }
}

/// Every epoch's device time, where the device has timestamp queries; none on the
/// reference. On a device of its own: a device's timer serves one fit at a time, and
/// the other tests of this binary fit on the shared one in parallel.
#[test]
fn epochs_report_device_time_where_the_backend_has_a_timer() {
    fn reports<B: Backend>(b: &B, fused: bool) -> Vec<minidl::train::EpochReport> {
        let (train, _) = disc_train_test(4).unwrap();
        let mut model = seed::network(b, &mut rng(4)).unwrap();
        let config = FitConfig {
            epochs: 2,
            fused: fused.into(),
            gpu_timing: true,
            ..FitConfig::default()
        };
        let mut sgd = Sgd::new(seed::LR).unwrap();
        let mut loss = MseLoss::new(seed::REDUCTION);
        fit(
            b,
            &mut model,
            &mut loss,
            &mut sgd,
            &train,
            &config,
            |_, _| Ok(()),
        )
        .unwrap()
    }
    assert!(reports(&Reference, true)
        .iter()
        .all(|r| r.gpu_millis.is_none()));
    if gpu().is_none() {
        return;
    }
    let gpu = Gpu::new().unwrap();
    for fused in [false, true] {
        for r in reports(&gpu, fused) {
            match r.gpu_millis {
                // The device works between the epoch's start and its losses' arrival.
                Some(device) => assert!(
                    device > 0.0 && device <= r.millis,
                    "fused {fused}: device {device} ms, wall {} ms",
                    r.millis
                ),
                None => assert!(!gpu.has_timestamps(), "no device time with timestamps"),
            }
        }
    }
}

/// A network with every layer kind (Sigmoid and LeakyReLU among them) trained for one
/// epoch of 30 steps with `loss` and `optimizer`: its parameters, downloaded.
fn every_layer_epoch<B: Backend>(
    b: &B,
    loss: &mut dyn Loss<B>,
    optimizer: &mut dyn Optimizer<B>,
) -> Vec<Tensor> {
    use minidl::nn::{LeakyReLU, Linear, ReLU, Sigmoid, Tanh};
    let (train, _) = disc_train_test(8).unwrap();
    let subset = Dataset::new(
        Tensor::new(&[300, 2], train.inputs().data()[..600].to_vec()).unwrap(),
        train.labels()[..300].to_vec(),
        2,
    )
    .unwrap();
    let mut r = rng(9);
    let mut model = Sequential::new(vec![
        Box::new(Linear::new(b, 2, 16, &mut r).unwrap()) as Box<dyn Module<B>>,
        Box::new(Sigmoid::new()),
        Box::new(Linear::new(b, 16, 16, &mut r).unwrap()),
        Box::new(LeakyReLU::with_slope(0.1).unwrap()),
        Box::new(Linear::new(b, 16, 16, &mut r).unwrap()),
        Box::new(ReLU::new()),
        Box::new(Linear::new(b, 16, 2, &mut r).unwrap()),
        Box::new(Tanh::new()),
    ])
    .unwrap();
    let config = FitConfig {
        epochs: 1,
        ..FitConfig::default()
    };
    fit(b, &mut model, loss, optimizer, &subset, &config, |_, _| {
        Ok(())
    })
    .unwrap();
    model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap())
        .collect()
}

#[test]
fn every_loss_and_optimizer_trains_alike_on_gpu_and_cpu() {
    use minidl::nn::CrossEntropyLoss;
    use minidl::optim::{Adam, MomentumStep};
    use minidl::Reduction;
    let Some(gpu) = gpu() else { return };
    let momentum = MomentumStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.01,
        nesterov: true,
    };
    for ce in [false, true] {
        for adam in [false, true] {
            fn parts<B: Backend>(
                ce: bool,
                adam: bool,
                momentum: MomentumStep,
            ) -> (Box<dyn Loss<B>>, Box<dyn Optimizer<B>>) {
                let loss: Box<dyn Loss<B>> = if ce {
                    Box::new(CrossEntropyLoss::new(Reduction::Mean))
                } else {
                    Box::new(MseLoss::new(Reduction::Sum))
                };
                let optimizer: Box<dyn Optimizer<B>> = if adam {
                    Box::new(Adam::new(0.01).unwrap())
                } else {
                    Box::new(Sgd::with(momentum).unwrap())
                };
                (loss, optimizer)
            }
            let (mut gl, mut go) = parts::<Gpu>(ce, adam, momentum);
            let (mut cl, mut co) = parts::<Reference>(ce, adam, momentum);
            let got = every_layer_epoch(&gpu, gl.as_mut(), go.as_mut());
            let want = every_layer_epoch(&Reference, cl.as_mut(), co.as_mut());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_close_rel(&format!("ce {ce} adam {adam} parameter {i}"), g, w);
            }
        }
    }
}

/// Buffers that come and go (a prediction uploads its inputs each time) must not stay
/// alive in the bind-group cache: after 300 of them it holds only the groups of the
/// buffers still alive.
#[test]
fn dropped_buffers_leave_the_bind_group_cache() {
    let Some(gpu) = gpu() else { return };
    // A device of its own, so that other tests' buffers do not count.
    let gpu = Gpu::with_adapter(Some(&gpu.adapter().name)).unwrap();
    let mut model = seed::network(&gpu, &mut rng(1)).unwrap();
    let (_, test) = disc_train_test(1).unwrap();
    minidl::train::predict(&gpu, &mut model, test.inputs()).unwrap();
    let after_one = gpu.stats();
    for _ in 0..300 {
        minidl::train::predict(&gpu, &mut model, test.inputs()).unwrap();
    }
    let end = gpu.stats();
    assert_eq!(
        end.buffers - after_one.buffers,
        300,
        "one upload per prediction"
    );
    assert!(end.bind_groups - after_one.bind_groups >= 300, "{end:?}");
    assert!(
        end.cached_bind_groups <= after_one.cached_bind_groups + 8,
        "the cache grew from {} to {} groups",
        after_one.cached_bind_groups,
        end.cached_bind_groups
    );
}

#[test]
fn a_2000_step_epoch_creates_nothing_after_the_first() {
    if gpu().is_none() {
        return;
    }
    // A device of its own, so that its counters count this run only.
    let gpu = Gpu::new().unwrap();
    let data = minidl::data::disc(20_000, &mut rng(6)).unwrap();
    let mut model = seed::network(&gpu, &mut rng(7)).unwrap();
    let config = FitConfig {
        epochs: 2,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    let mut loss = MseLoss::new(seed::REDUCTION);
    let mut sgd = Sgd::new(seed::LR).unwrap();
    assert_second_epoch_creates_nothing(&gpu, &mut model, &mut loss, &mut sgd, &data, &config);
}

/// Trains `config` (two epochs) on `gpu` (a device of the test's own) and asserts
/// that the second epoch created no uniform block, bind group or buffer.
fn assert_second_epoch_creates_nothing(
    gpu: &Gpu,
    model: &mut Sequential<Gpu>,
    loss: &mut dyn Loss<Gpu>,
    optimizer: &mut dyn Optimizer<Gpu>,
    data: &Dataset,
    config: &FitConfig,
) {
    let mut after_epoch = Vec::new();
    fit(gpu, model, loss, optimizer, data, config, |_, _| {
        after_epoch.push(gpu.stats());
        Ok(())
    })
    .unwrap();
    let (first, second) = (after_epoch[0], after_epoch[1]);
    assert_eq!(
        (second.uniforms, second.bind_groups, second.buffers),
        (first.uniforms, first.bind_groups, first.buffers),
        "uniform blocks, bind groups and buffers created in the second epoch"
    );
}

/// A convolutional network of full and partial batches, with each lowering forced
/// and as measured (on the first epoch, which also fills the workspace and measures the
/// products): an epoch after the first creates no buffer, uniform block or bind group.
/// Each lowering on a device of its own, so that its first epoch starts from an empty
/// workspace: unfolded, the second layer's scratch rows are larger than the first's,
/// so a workspace that grew by replacing its buffer would make the first layer bind
/// again on the next epoch.
#[test]
fn a_convolutional_epoch_creates_nothing_after_the_first() {
    if gpu().is_none() {
        return;
    }
    let layers = parse_model("conv(16,3,padding=1),relu,conv(2,3),relu,flatten,linear(3)").unwrap();
    let image = RowShape::Image {
        channels: 1,
        height: 8,
        width: 8,
    };
    let mut r = rng(9);
    let rows = 200;
    let pixels = (0..rows * 64)
        .map(|_| rand::RngExt::random_range(&mut r, 0.0..1.0))
        .collect();
    let inputs = Tensor::new(&[rows, 64], pixels).unwrap();
    let labels = (0..rows).map(|i| i % 3).collect();
    let data = Dataset::new(inputs, labels, 3).unwrap();
    let config = FitConfig {
        epochs: 2,
        batch_size: 64,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    for lowering in [
        None,
        Some(ConvLowering::Direct),
        Some(ConvLowering::Unfolded),
    ] {
        let gpu = Gpu::new().unwrap().with_conv_lowering(lowering);
        let (mut model, _) = build_model(&gpu, &layers, image, &mut rng(8)).unwrap();
        let mut loss = CrossEntropyLoss::new(Reduction::Mean);
        let mut sgd = Sgd::new(0.01).unwrap();
        assert_second_epoch_creates_nothing(&gpu, &mut model, &mut loss, &mut sgd, &data, &config);
    }
}

/// The seed network trained for `epochs` on seed `seed`'s data (weights from seed + 1),
/// on `b`: its parameters afterwards.
fn seed_run<B: Backend>(b: &B, seed: u64, epochs: usize, fused: bool) -> minidl::Result<Vec<f32>> {
    let (train, _) = disc_train_test(seed)?;
    let mut model = seed::network(b, &mut rng(seed + 1))?;
    let config = FitConfig {
        epochs,
        fused: fused.into(),
        ..FitConfig::default()
    };
    fit(
        b,
        &mut model,
        &mut MseLoss::new(seed::REDUCTION),
        &mut Sgd::new(seed::LR)?,
        &train,
        &config,
        |_, _| Ok(()),
    )?;
    let mut params = Vec::new();
    for p in model.parameters() {
        params.extend(b.download(p.value)?.into_data());
    }
    Ok(params)
}

#[test]
fn runs_on_several_threads_equal_each_run_trained_alone_bit_for_bit() {
    use minidl::train::run_many;
    use minidl::Cpu;
    let cpu = Cpu::with_threads(1).unwrap();
    for fused in [true, false] {
        let alone: Vec<Vec<f32>> = (0..5)
            .map(|i| seed_run(&cpu, 50 + i, 3, fused).unwrap())
            .collect();
        for threads in [1, 2, 3] {
            let together =
                run_many(5, threads, |i| seed_run(&cpu, 50 + i as u64, 3, fused)).unwrap();
            assert_eq!(together, alone, "{threads} threads, fused {fused}");
        }
    }
    // The error of the lowest failing run, whichever thread ran it.
    let e = run_many(4, 2, |i| match i {
        1 | 3 => Err(minidl::Error::InvalidArgument(format!("run {i} failed"))),
        _ => Ok(i),
    })
    .unwrap_err();
    assert!(e.to_string().contains("run 1 failed"), "{e}");
    assert!(run_many(3, 0, Ok).is_err());
}
