//! Every kind of misuse a user can make, fed to the public API: each gives a typed
//! error whose message says what was wrong and where, never a panic. And training that
//! diverges stops with an error naming the epoch and step, keeping the last finite
//! parameters.

mod common;

use common::{gpu, rng};
use minidl::data::{disc_train_test, Dataset};
use minidl::nn::{Linear, Module, MseLoss, ReLU, Sequential};
use minidl::optim::{Adam, Sgd};
use minidl::train::{fit, predict, FitConfig};
use minidl::Ops;
use minidl::{seed, Backend, Cpu, Error, Gpu, Reduction, Tensor};

fn invalid(e: Error) -> String {
    assert!(
        matches!(e, Error::InvalidArgument(_)),
        "expected InvalidArgument: {e:?}"
    );
    e.to_string()
}

#[test]
fn layers_that_do_not_chain_are_caught_when_the_sequential_is_built() {
    let layers: Vec<Box<dyn Module<Cpu>>> = vec![
        Box::new(Linear::new(&Cpu::new(), 2, 25, &mut rng(0)).unwrap()),
        Box::new(ReLU::new()),
        Box::new(Linear::new(&Cpu::new(), 24, 2, &mut rng(0)).unwrap()),
    ];
    let Err(err) = Sequential::new(layers) else {
        panic!("widths 25 and 24 do not chain")
    };
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "shape mismatch in Sequential: layer 0 Linear(2→25) outputs width 25 but layer 2 Linear(24→2) takes width 24"
    );
    let empty: Vec<Box<dyn Module<Cpu>>> = Vec::new();
    let m = invalid(Sequential::new(empty).err().unwrap());
    assert!(m.contains("at least one layer"), "{m}");
}

fn wrong_width<B: Backend>(b: &B) -> String {
    let mut model = seed::network(b, &mut rng(0)).unwrap();
    let x = b.alloc(4, 3).unwrap();
    let Err(err) = model.forward(b, &x) else {
        panic!("3 columns into Linear(2→25)")
    };
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn a_forward_input_of_the_wrong_width_names_the_layer_and_both_widths() {
    let m = wrong_width(&Cpu::new());
    assert_eq!(
        m,
        "shape mismatch in Linear(2→25): expected input width 2, got a 4×3 input"
    );
    if let Some(gpu) = gpu() {
        assert_eq!(wrong_width(&gpu), m);
    }
}

#[test]
fn data_and_labels_of_different_lengths() {
    let inputs = Tensor::new(&[3, 2], vec![0.0; 6]).unwrap();
    let err = Dataset::new(inputs, vec![0, 1], 2).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "shape mismatch in Dataset: 3 inputs but 2 labels"
    );
}

#[test]
fn an_empty_data_set() {
    let empty = Tensor::new(&[0, 2], vec![]).unwrap();
    let m = invalid(Dataset::new(empty, vec![], 2).unwrap_err());
    assert_eq!(m, "invalid argument: the data set is empty");
}

#[test]
fn a_batch_size_of_zero() {
    let (train, _) = disc_train_test(0).unwrap();
    let mut model = seed::network(&Cpu::new(), &mut rng(0)).unwrap();
    let config = FitConfig {
        batch_size: 0,
        ..FitConfig::default()
    };
    let err = fit(
        &Cpu::new(),
        &mut model,
        &mut MseLoss::new(Reduction::Sum),
        &mut Sgd::new(0.01).unwrap(),
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(
        invalid(err),
        "invalid argument: batch size must be at least 1"
    );
}

#[test]
fn a_learning_rate_that_is_not_finite_or_not_positive() {
    for lr in [0.0f32, -0.5, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let want =
            format!("invalid argument: learning rate must be a positive finite number, got {lr}");
        assert_eq!(invalid(Sgd::<Cpu>::new(lr).err().unwrap()), want);
        assert_eq!(invalid(Adam::<Cpu>::new(lr).err().unwrap()), want);
    }
}

#[test]
fn nan_or_infinity_in_the_inputs() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let inputs = Tensor::new(&[2, 2], vec![0.5, 0.5, 0.25, bad]).unwrap();
        let m = invalid(Dataset::new(inputs.clone(), vec![0, 1], 2).unwrap_err());
        assert_eq!(
            m,
            format!("invalid argument: Dataset: input row 1, column 1 is {bad}")
        );
        let mut model = seed::network(&Cpu::new(), &mut rng(0)).unwrap();
        let m = invalid(predict(&Cpu::new(), &mut model, &inputs).unwrap_err());
        assert_eq!(
            m,
            format!("invalid argument: predict: input row 1, column 1 is {bad}")
        );
    }
}

#[test]
fn a_tensor_larger_than_the_adapters_binding_limit_names_the_limit() {
    let Some(gpu) = gpu() else { return };
    let limit = gpu
        .limits()
        .max_storage_buffer_binding_size
        .min(gpu.limits().max_buffer_size)
        .min(u32::MAX as u64 * 4);
    let cols = (limit / 4 + 1) as usize;
    let err = gpu.alloc(1, cols).err().unwrap();
    let Error::TooLarge {
        bytes, limit: l, ..
    } = &err
    else {
        panic!("expected TooLarge, got {err:?}")
    };
    assert_eq!((*bytes, *l), (cols as u64 * 4, limit));
    assert_eq!(
        err.to_string(),
        format!(
            "a 1×{cols} tensor needs {} bytes, over the adapter's limit of {limit} bytes",
            cols * 4
        )
    );
}

#[test]
fn no_adapter_is_an_error_naming_what_was_asked_for_and_what_exists() {
    let err = Gpu::with_adapter(Some("no adapter is called this"))
        .err()
        .unwrap();
    let Error::NoAdapter(m) = &err else {
        panic!("expected NoAdapter, got {err:?}")
    };
    assert!(m.contains("no adapter is called this"), "{m}");
    if !Gpu::adapters().is_empty() {
        assert!(m.contains("available"), "{m}");
    }
}

#[test]
fn a_lost_device_is_an_error_on_every_later_op_not_a_panic_or_a_hang() {
    if gpu().is_none() {
        return;
    }
    // A device of its own: losing it must not disturb the other tests.
    let lost = Gpu::new().unwrap();
    let mut model = seed::network(&lost, &mut rng(0)).unwrap();
    let x = lost
        .upload(&Tensor::new(&[1, 2], vec![0.5, 0.5]).unwrap())
        .unwrap();
    lost.destroy();
    let is_lost = |r: Result<(), Error>, what: &str| {
        let err = r
            .err()
            .unwrap_or_else(|| panic!("{what} succeeded on a lost device"));
        assert!(matches!(err, Error::DeviceLost(_)), "{what}: {err:?}");
        assert!(
            err.to_string().starts_with("GPU device lost: Destroyed"),
            "{what}: {err} (the device's lost callback should have recorded the loss)"
        );
    };
    is_lost(model.forward(&lost, &x).map(|_| ()), "forward");
    is_lost(lost.download(&x).map(|_| ()), "download");
    is_lost(lost.alloc(2, 2).map(|_| ()), "alloc");
    is_lost(lost.synchronize(), "synchronize");
    let (train, _) = disc_train_test(0).unwrap();
    let result = fit(
        &lost,
        &mut model,
        &mut MseLoss::new(Reduction::Sum),
        &mut Sgd::new(0.01).unwrap(),
        &train,
        &FitConfig::default(),
        |_, _| Ok(()),
    );
    is_lost(result.map(|_| ()), "fit");
}

/// The first `rows` points of `data`.
fn head(data: &Dataset, rows: usize) -> Dataset {
    let cols = data.inputs().shape()[1];
    Dataset::new(
        Tensor::new(&[rows, cols], data.inputs().data()[..cols * rows].to_vec()).unwrap(),
        data.labels()[..rows].to_vec(),
        data.classes(),
    )
    .unwrap()
}

/// The parameters of the seed network (weights from `init`) after `epochs` whole
/// epochs of `config` and then `steps` steps of the next one, with a learning rate of
/// `lr`.
fn replay<B: Backend>(
    b: &B,
    init: u64,
    lr: f32,
    config: &FitConfig,
    epochs: usize,
    steps: usize,
) -> Vec<Vec<f32>> {
    let (train, _) = disc_train_test(2).unwrap();
    let mut model = seed::network(b, &mut rng(init)).unwrap();
    let mut sgd = Sgd::new(lr).unwrap();
    let mut loss = MseLoss::new(Reduction::Sum);
    let before = FitConfig {
        epochs,
        ..config.clone()
    };
    fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &train,
        &before,
        |_, _| Ok(()),
    )
    .unwrap();
    if steps > 0 {
        let one = FitConfig {
            epochs: 1,
            ..config.clone()
        };
        let data = head(&train, steps * config.batch_size);
        fit(b, &mut model, &mut loss, &mut sgd, &data, &one, |_, _| {
            Ok(())
        })
        .unwrap();
    }
    model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap().into_data())
        .collect()
}

/// Trains the seed network with a learning rate of 1e30 until it diverges: checks the
/// error, and that the model then holds the parameters of a separate run of the kept
/// steps, the last steps whose loss was finite and whose update left every parameter
/// finite. Returns the error.
fn diverge<B: Backend>(b: &B, fused: bool) -> Error {
    let (train, _) = disc_train_test(2).unwrap();
    let config = FitConfig {
        epochs: 3,
        fused: fused.into(),
        ..FitConfig::default()
    };
    let (init, lr) = (3, 1e30);
    let mut model = seed::network(b, &mut rng(init)).unwrap();
    let mut sgd = Sgd::new(lr).unwrap();
    let mut loss = MseLoss::new(Reduction::Sum);
    let err = fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap_err();
    let Error::Diverged {
        epoch,
        step,
        loss: bad,
        kept_steps,
    } = err
    else {
        panic!("expected Diverged, got {err:?}")
    };
    assert!(!bad.is_finite(), "the reported loss {bad} is finite");
    assert!(kept_steps < step, "kept {kept_steps} steps of {step}");
    let kept: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap().into_data())
        .collect();
    assert!(
        kept.iter().flatten().all(|v| v.is_finite()),
        "the kept parameters are not finite"
    );
    assert_eq!(
        replay(b, init, lr, &config, epoch - 1, kept_steps),
        kept,
        "the kept parameters differ from a run of the {kept_steps} kept steps"
    );
    // Fewer steps were kept only if the next step's update was not finite.
    if kept_steps + 1 < step {
        let next = replay(b, init, lr, &config, epoch - 1, kept_steps + 1);
        assert!(
            next.iter().flatten().any(|v| !v.is_finite()),
            "step {} left finite parameters but was not kept",
            kept_steps + 1
        );
    }
    err
}

#[test]
fn divergence_stops_with_the_epoch_and_step_and_keeps_the_last_finite_parameters() {
    for fused in [false, true] {
        let err = diverge(&Cpu::new(), fused);
        let Error::Diverged { epoch, step, .. } = &err else {
            unreachable!()
        };
        let m = err.to_string();
        assert!(
            m.starts_with(&format!(
                "training diverged at epoch {epoch}, step {step}: the loss is"
            )),
            "{m}"
        );
        if let Some(gpu) = gpu() {
            diverge(&gpu, fused);
        }
    }
}

/// Multiplies the last layer's weight by 1e36: the next epoch's updates overflow.
fn poison<B: Backend, M: Module<B>>(b: &B, model: &M) -> Result<(), Error> {
    let params = model.parameters();
    let w = params.iter().find(|p| p.name == "6.weight").unwrap();
    let scaled: Vec<f32> = b
        .download(w.value)?
        .data()
        .iter()
        .map(|v| v * 1e36)
        .collect();
    b.write(w.value, &scaled)
}

fn diverge_later<B: Backend>(b: &B) {
    use minidl::nn::CrossEntropyLoss;
    let (train, _) = disc_train_test(4).unwrap();
    let config = FitConfig {
        epochs: 3,
        ..FitConfig::default()
    };
    let mut model = seed::logit_network(b, &mut rng(5)).unwrap();
    let mut loss = CrossEntropyLoss::new(Reduction::Sum);
    let mut sgd = Sgd::new(0.01).unwrap();
    let err = fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &train,
        &config,
        |r, m| {
            if r.epoch == 1 {
                poison(b, m)?;
            }
            Ok(())
        },
    )
    .unwrap_err();
    let Error::Diverged {
        epoch,
        step,
        kept_steps,
        ..
    } = err
    else {
        panic!("expected Diverged, got {err:?}")
    };
    assert_eq!(epoch, 2, "{err}");
    assert!(kept_steps < step, "{err}");
    let kept: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap().into_data())
        .collect();
    assert!(kept.iter().flatten().all(|v| v.is_finite()));
    // Epoch 1, the poison, then the kept steps of epoch 2.
    let mut again = seed::logit_network(b, &mut rng(5)).unwrap();
    let mut sgd = Sgd::new(0.01).unwrap();
    let one = FitConfig {
        epochs: 1,
        ..config
    };
    fit(b, &mut again, &mut loss, &mut sgd, &train, &one, |_, _| {
        Ok(())
    })
    .unwrap();
    poison(b, &again).unwrap();
    if kept_steps > 0 {
        let data = head(&train, kept_steps * config.batch_size);
        fit(b, &mut again, &mut loss, &mut sgd, &data, &one, |_, _| {
            Ok(())
        })
        .unwrap();
    }
    for (i, (p, k)) in again.parameters().iter().zip(&kept).enumerate() {
        assert_eq!(b.download(p.value).unwrap().data(), &k[..], "parameter {i}");
    }
}

#[test]
fn divergence_in_a_later_epoch_names_that_epoch() {
    diverge_later(&Cpu::new());
    if let Some(gpu) = gpu() {
        diverge_later(&gpu);
    }
}
