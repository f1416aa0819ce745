//! Misuse that used to corrupt, panic or mislead, each now a typed error naming the
//! problem: shapes whose size overflows, non-finite weights and NaN outputs, an
//! optimizer handed another model's parameters, and data whose classes do not match
//! the model's outputs.

mod common;

use common::{gpu, rng};
use minidl::data::{disc, disc_train_test};
use minidl::nn::{CrossEntropyLoss, Linear, Module, MseLoss, Sequential};
use minidl::optim::{Adam, Optimizer, Sgd};
use minidl::train::{count_errors, fit, predict, Control, FitConfig, Fusion};
use minidl::{seed, Backend, Cpu, Error, Gpu, Ops, Reduction, Tensor};

#[test]
fn shapes_whose_size_overflows_are_errors_not_panics() {
    let e = Tensor::new(&[usize::MAX, 2], vec![]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "shape mismatch in Tensor::new: shape [{}, 2] holds more values than an index can count",
            usize::MAX
        )
    );
    let e = Cpu::new().alloc(usize::MAX / 2, 4).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("a {}×4 tensor needs", usize::MAX / 2)),
        "{e}"
    );
    if let Some(gpu) = gpu() {
        let e = gpu.alloc(usize::MAX / 2, 4).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    }
}

#[test]
fn a_linear_layer_rejects_weights_that_are_not_finite() {
    let bias = Tensor::new(&[2], vec![0.0, 0.0]).unwrap();
    let w = Tensor::new(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, f32::NAN, 6.0]).unwrap();
    let e = Linear::from_tensors(&Cpu::new(), &w, &bias).err().unwrap();
    assert_eq!(
        e.to_string(),
        "invalid argument: Linear(3→2): weight element [1, 1] is NaN"
    );
    let w = Tensor::new(&[2, 3], vec![0.0; 6]).unwrap();
    let inf_bias = Tensor::new(&[2], vec![0.0, f32::INFINITY]).unwrap();
    let e = Linear::from_tensors(&Cpu::new(), &w, &inf_bias)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "invalid argument: Linear(3→2): bias element [0, 1] is inf"
    );
}

/// `predict` with a layer whose outputs are ∞ − ∞ = NaN for the input (2, −2).
fn nan_prediction<B: Backend>(b: &B) -> Error {
    let w = Tensor::new(&[2, 2], vec![3e38, 3e38, 0.0, 0.0]).unwrap();
    let bias = Tensor::new(&[2], vec![0.0, 0.0]).unwrap();
    let mut layer = Linear::from_tensors(b, &w, &bias).unwrap();
    let x = Tensor::new(&[2, 2], vec![0.5, 0.5, 2.0, -2.0]).unwrap();
    predict(b, &mut layer, &x).unwrap_err()
}

#[test]
fn predict_rejects_nan_outputs_instead_of_answering_class_0() {
    let want = "invalid argument: predict: the model's output for row 1, column 0 is NaN (have its parameters diverged?)";
    assert_eq!(nan_prediction(&Cpu::new()).to_string(), want);
    if let Some(gpu) = gpu() {
        assert_eq!(nan_prediction(&gpu).to_string(), want);
    }
}

#[test]
fn an_optimizer_refuses_the_parameters_of_another_model() {
    let first = seed::network(&Cpu::new(), &mut rng(1)).unwrap();
    let second = seed::network(&Cpu::new(), &mut rng(2)).unwrap();
    let mut adam = Adam::new(0.001).unwrap();
    adam.step(&Cpu::new(), &first.parameters()).unwrap();
    let e = adam.step(&Cpu::new(), &second.parameters()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid argument: the optimizer's state was made for another model's parameters (parameter 0, \"0.weight\", is not the one it was made for): use one optimizer per model"
    );
    let mut momentum = Sgd::with(minidl::optim::MomentumStep {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    })
    .unwrap();
    momentum.step(&Cpu::new(), &first.parameters()).unwrap();
    assert!(momentum.step(&Cpu::new(), &second.parameters()).is_err());
    // The same model again is fine.
    adam.step(&Cpu::new(), &first.parameters()).unwrap();
}

#[test]
fn classes_that_do_not_match_the_outputs_are_named_where_the_targets_are_built() {
    let (train, test) = disc_train_test(0).unwrap();
    let one_output = || -> Sequential<Cpu> {
        Sequential::new(vec![Box::new(
            Linear::new(&Cpu::new(), 2, 1, &mut rng(0)).unwrap(),
        )])
        .unwrap()
    };
    let config = FitConfig {
        epochs: 1,
        ..FitConfig::default()
    };
    let mut sgd = Sgd::new(0.01).unwrap();
    let e = fit(
        &Cpu::new(),
        &mut one_output(),
        &mut MseLoss::new(Reduction::Sum),
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "shape mismatch in fit: the data has 2 classes but the model outputs 1 values (MSE compares one-hot targets with the outputs: they must be as many)"
    );
    let e = fit(
        &Cpu::new(),
        &mut one_output(),
        &mut CrossEntropyLoss::default(),
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "shape mismatch in fit: the data has 2 classes but the model outputs 1 values (each class needs an output)"
    );
    let e = count_errors(&Cpu::new(), &mut one_output(), &test).unwrap_err();
    assert_eq!(
        e.to_string(),
        "shape mismatch in count_errors: the data has 2 classes but the model outputs 1 values (each class needs an output)"
    );
}

#[test]
fn a_tensor_or_model_of_one_gpu_is_refused_by_another() {
    let Some(_) = gpu() else { return };
    let (first, second) = (Gpu::new().unwrap(), Gpu::new().unwrap());
    let x = first
        .upload(&Tensor::new(&[1, 3], vec![1.0, 2.0, 3.0]).unwrap())
        .unwrap();
    let wrong = |r: Result<(), Error>, op: &str| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::WrongDevice { .. }), "{op}: {e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("{op}: a tensor of another device")),
            "{e}"
        );
    };
    wrong(second.download(&x).map(|_| ()), "download");
    wrong(second.write(&x, &[0.0; 3]), "write");
    wrong(second.zero(&x), "zero");
    let y = second.alloc(1, 3).unwrap();
    wrong(second.copy(&x, &y), "copy");
    // The first device's data is untouched.
    assert_eq!(first.download(&x).unwrap().data(), &[1.0, 2.0, 3.0]);
    // A model made on the first device, evaluated and trained on the second.
    let (train, test) = disc_train_test(0).unwrap();
    let mut model = seed::network(&first, &mut rng(0)).unwrap();
    let e = count_errors(&second, &mut model, &test).unwrap_err();
    assert!(matches!(e, Error::WrongDevice { .. }), "{e:?}");
    for fused in [true, false] {
        let config = FitConfig {
            epochs: 1,
            fused: fused.into(),
            ..FitConfig::default()
        };
        let e = fit(
            &second,
            &mut model,
            &mut MseLoss::new(Reduction::Sum),
            &mut Sgd::new(0.01).unwrap(),
            &train,
            &config,
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::WrongDevice { .. }),
            "fused {fused}: {e:?}"
        );
    }
    // And it still works on its own device.
    assert!(count_errors(&first, &mut model, &test).is_ok());
}

/// Trains the seed network for up to 5 epochs; the hook notes the parameters after
/// epoch 1, writes them back into the model after epoch 2 and then stops (with
/// `Control::Stop`, or with an error where `fail`). Returns the result and whether the
/// model ends with the epoch-1 parameters.
fn stop_after_restoring<B: Backend>(
    b: &B,
    fused: bool,
    fail: bool,
) -> (Result<usize, Error>, bool) {
    let (train, _) = disc_train_test(0).unwrap();
    let mut model = seed::network(b, &mut rng(0)).unwrap();
    let config = FitConfig {
        epochs: 5,
        fused: fused.into(),
        ..FitConfig::default()
    };
    let mut first: Vec<Vec<f32>> = Vec::new();
    let result = fit(
        b,
        &mut model,
        &mut MseLoss::new(Reduction::Sum),
        &mut Sgd::new(0.01).unwrap(),
        &train,
        &config,
        |r, m| {
            let params = m.parameters();
            if r.epoch == 1 {
                first = params
                    .iter()
                    .map(|p| b.download(p.value).unwrap().into_data())
                    .collect();
                return Ok(Control::Continue);
            }
            for (p, values) in params.iter().zip(&first) {
                b.write(p.value, values)?;
            }
            if fail {
                Err(Error::InvalidArgument("stopped by the hook".into()))
            } else {
                Ok(Control::Stop)
            }
        },
    );
    let kept: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap().into_data())
        .collect();
    (result.map(|reports| reports.len()), kept == first)
}

#[test]
fn the_epoch_hook_stops_training_and_what_it_did_to_the_model_stays() {
    fn check<B: Backend>(b: &B) {
        for fused in [false, true] {
            let (result, restored) = stop_after_restoring(b, fused, false);
            assert_eq!(
                result.unwrap(),
                2,
                "fused {fused}: the reports of both epochs"
            );
            assert!(restored, "fused {fused}: the hook's restore was undone");
            let (result, restored) = stop_after_restoring(b, fused, true);
            assert_eq!(
                result.unwrap_err().to_string(),
                "invalid argument: stopped by the hook"
            );
            assert!(
                restored,
                "fused {fused}, failing hook: the hook's restore was undone"
            );
        }
    }
    check(&Cpu::new());
    if let Some(gpu) = gpu() {
        check(&gpu);
    }
}

#[test]
fn predict_runs_in_chunks_where_one_tensor_of_all_rows_would_be_too_large() {
    let Some(gpu) = gpu() else { return };
    // 1.5 M rows: the first layer's output alone, 1.5 M × 25 floats, passes the
    // 128 MiB binding limit of most adapters.
    let rows = 1_500_000;
    let data = disc(rows, &mut rng(4)).unwrap();
    let mut model = seed::network(&gpu, &mut rng(5)).unwrap();
    let all = predict(&gpu, &mut model, data.inputs()).unwrap();
    assert_eq!(all.len(), rows);
    // Rows from the start, across a chunk boundary and at the end, predicted alone.
    for first in [0, 65_000, rows - 1000] {
        let x = &data.inputs().data()[first * 2..(first + 1000) * 2];
        let part = Tensor::new(&[1000, 2], x.to_vec()).unwrap();
        let alone = predict(&gpu, &mut model, &part).unwrap();
        assert_eq!(alone, all[first..first + 1000], "rows {first}..");
    }
}

/// Reports of `epochs` epochs of the seed network on `gpu`, timed on the device.
fn timed_epochs(gpu: &Gpu, seed: u64, epochs: usize) -> Vec<minidl::train::EpochReport> {
    let (train, _) = disc_train_test(seed).unwrap();
    let mut model = seed::network(gpu, &mut rng(seed)).unwrap();
    let config = FitConfig {
        epochs,
        fused: Fusion::Never,
        gpu_timing: true,
        ..FitConfig::default()
    };
    fit(
        gpu,
        &mut model,
        &mut MseLoss::new(Reduction::Sum),
        &mut Sgd::new(0.01).unwrap(),
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap()
}

#[test]
fn device_time_is_never_another_threads_work() {
    let Some(_) = gpu() else { return };
    let gpu = Gpu::new().unwrap();
    if !gpu.has_timestamps() {
        return;
    }
    // Alone, every epoch is timed.
    assert!(timed_epochs(&gpu, 1, 2)
        .iter()
        .all(|r| r.gpu_millis.is_some()));
    // Two threads on one device: an epoch's device time, where reported, is its own
    // work's, so within the epoch's wall time.
    let reports: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|t| {
                let gpu = &gpu;
                s.spawn(move || timed_epochs(gpu, 2 + t, 6))
            })
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    for r in &reports {
        if let Some(device) = r.gpu_millis {
            assert!(
                device <= r.millis,
                "epoch {}: {device} ms of device time in {} ms of wall time",
                r.epoch,
                r.millis
            );
        }
    }
}
