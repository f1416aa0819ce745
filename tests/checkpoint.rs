//! Checkpoints: PyTorch's state_dict names and shapes, round trips on both backends,
//! and clear errors for every kind of mismatching or damaged file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{gpu, random, rng};
use minidl::checkpoint::{self, parse, serialize};
use minidl::data::disc_train_test;
use minidl::nn::{Linear, Module, Sequential, Tanh};
use minidl::optim::Sgd;
use minidl::train::{fit, predict, FitConfig};
use minidl::Ops;
use minidl::{seed, Backend, Cpu, Error, Tensor};

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("minidl-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn seed_network<B: Backend>(b: &B, init: u64) -> Sequential<B> {
    seed::network(b, &mut rng(init)).unwrap()
}

/// The outputs of `model` on `inputs`.
fn outputs<B: Backend, M: Module<B>>(b: &B, model: &mut M, inputs: &Tensor) -> Tensor {
    let x = b.upload(inputs).unwrap();
    let y = model.forward(b, &x).unwrap().clone();
    b.download(&y).unwrap()
}

fn message(e: Error) -> String {
    match &e {
        Error::Checkpoint { .. } => e.to_string(),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn tensors_are_named_and_shaped_as_pytorch_state_dict() {
    let dir = scratch("names");
    let path = dir.join("seed.safetensors");
    let model = seed_network(&Cpu::new(), 1);
    checkpoint::save(&Cpu::new(), &model, &path).unwrap();
    let tensors = parse(&std::fs::read(&path).unwrap(), &path).unwrap();
    let listing: Vec<(String, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.shape().to_vec()))
        .collect();
    // nn.Sequential(Linear(2,25), ReLU(), Linear(25,25), ReLU(), Linear(25,25), ReLU(),
    // Linear(25,2), Tanh()).state_dict(): the ReLUs and the Tanh keep their indices.
    let want: Vec<(String, Vec<usize>)> = [
        ("0.bias", vec![25]),
        ("0.weight", vec![25, 2]),
        ("2.bias", vec![25]),
        ("2.weight", vec![25, 25]),
        ("4.bias", vec![25]),
        ("4.weight", vec![25, 25]),
        ("6.bias", vec![2]),
        ("6.weight", vec![2, 25]),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_string(), s))
    .collect();
    assert_eq!(listing, want);
    // The values are the parameters, weights row-major as [out, in].
    let w0 = Cpu::new().download(model.parameters()[0].value).unwrap();
    assert_eq!(tensors["0.weight"].data(), w0.data());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn round_trip<B: Backend>(b: &B, name: &str) {
    let dir = scratch(name);
    let path = dir.join("trained.safetensors");
    let (train, test) = disc_train_test(3).unwrap();
    let mut model = seed_network(b, 4);
    let config = FitConfig {
        epochs: 2,
        ..FitConfig::default()
    };
    let mut loss = minidl::nn::MseLoss::new(seed::REDUCTION);
    let mut sgd = Sgd::new(seed::LR).unwrap();
    fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    checkpoint::save(b, &model, &path).unwrap();
    // Another initialisation, then the checkpoint: the same outputs, bit for bit.
    let mut loaded = seed_network(b, 99);
    assert_ne!(
        outputs(b, &mut loaded, test.inputs()),
        outputs(b, &mut model, test.inputs())
    );
    checkpoint::load(b, &loaded, &path).unwrap();
    assert_eq!(
        outputs(b, &mut loaded, test.inputs()),
        outputs(b, &mut model, test.inputs()),
        "{name}"
    );
    assert_eq!(
        predict(b, &mut loaded, test.inputs()).unwrap(),
        predict(b, &mut model, test.inputs()).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_saved_network_loads_with_the_same_outputs_on_the_cpu() {
    round_trip(&Cpu::new(), "cpu");
}

#[test]
fn a_saved_network_loads_with_the_same_outputs_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    round_trip(&gpu, "gpu");
}

#[test]
fn checkpoints_move_between_backends() {
    let Some(gpu) = gpu() else { return };
    let dir = scratch("between");
    let path = dir.join("cpu.safetensors");
    checkpoint::save(&Cpu::new(), &seed_network(&Cpu::new(), 5), &path).unwrap();
    let on_gpu = seed_network(&gpu, 6);
    checkpoint::load(&gpu, &on_gpu, &path).unwrap();
    let back = dir.join("gpu.safetensors");
    checkpoint::save(&gpu, &on_gpu, &back).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&back).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `tensors` (f32) to a file, as another program would.
fn write(path: &Path, tensors: &[(&str, Tensor)]) {
    let map: BTreeMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| (k.to_string(), t.clone()))
        .collect();
    std::fs::write(path, serialize(&map).unwrap()).unwrap();
}

fn linear_model(b: &Cpu, widths: &[usize]) -> Sequential<Cpu> {
    let mut r = rng(7);
    let mut layers: Vec<Box<dyn Module<Cpu>>> = Vec::new();
    for pair in widths.windows(2) {
        layers.push(Box::new(Linear::new(b, pair[0], pair[1], &mut r).unwrap()));
        layers.push(Box::new(Tanh::new()));
    }
    Sequential::new(layers).unwrap()
}

#[test]
fn mismatches_are_all_named_and_change_nothing() {
    let dir = scratch("mismatch");
    let path = dir.join("other.safetensors");
    let mut r = rng(8);
    write(
        &path,
        &[
            ("0.weight", random(&mut r, 3, 2, -1.0, 1.0)),
            ("0.bias", Tensor::new(&[3], vec![0.0; 3]).unwrap()),
            ("2.weight", random(&mut r, 1, 3, -1.0, 1.0)),
            ("extra", Tensor::new(&[1], vec![1.0]).unwrap()),
        ],
    );
    let model = linear_model(&Cpu::new(), &[2, 4, 1]);
    let before = checkpoint::state_dict(&Cpu::new(), &model).unwrap();
    let m = message(checkpoint::load(&Cpu::new(), &model, &path).unwrap_err());
    for part in [
        "other.safetensors",
        "tensor \"0.weight\" has shape [3, 2], the model expects [4, 2]",
        "tensor \"0.bias\" has shape [3], the model expects [4]",
        "tensor \"2.weight\" has shape [1, 3], the model expects [1, 4]",
        "missing tensor \"2.bias\" (shape [1])",
        "unexpected tensor \"extra\"",
    ] {
        assert!(m.contains(part), "{part:?} not in: {m}");
    }
    assert_eq!(checkpoint::state_dict(&Cpu::new(), &model).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file holding a `[3, 2]` "0.weight" and a `[3]` "0.bias" in `dtype`, as PyTorch
/// writes a double or half precision state dict.
fn in_dtype(dtype: safetensors::Dtype) -> Vec<u8> {
    let size = dtype.bitsize() / 8;
    let w = vec![0u8; 6 * size];
    let b = vec![0u8; 3 * size];
    let views = vec![
        (
            "0.weight",
            safetensors::tensor::TensorView::new(dtype, vec![3, 2], &w).unwrap(),
        ),
        (
            "0.bias",
            safetensors::tensor::TensorView::new(dtype, vec![3], &b).unwrap(),
        ),
    ];
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let dir = scratch("damaged");
    let good = dir.join("good.safetensors");
    let model = linear_model(&Cpu::new(), &[2, 3]);
    checkpoint::save(&Cpu::new(), &model, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a valid safetensors file"),
        (
            "truncated",
            bytes[..bytes.len() - 5].to_vec(),
            "not a valid safetensors file",
        ),
        (
            "header only",
            bytes[..12].to_vec(),
            "not a valid safetensors file",
        ),
        (
            "garbage",
            b"this is not a checkpoint at all".to_vec(),
            "not a valid safetensors file",
        ),
        (
            "f64",
            in_dtype(safetensors::Dtype::F64),
            "dtype F64, expected F32",
        ),
        (
            "f16",
            in_dtype(safetensors::Dtype::F16),
            "dtype F16, expected F32",
        ),
    ];
    for (what, data, says) in cases {
        let path = dir.join(format!("{what}.safetensors"));
        std::fs::write(&path, &data).unwrap();
        let m = message(checkpoint::load(&Cpu::new(), &model, &path).unwrap_err());
        assert!(m.contains(says), "{what}: {m}");
    }
    // Non-finite values are refused too.
    let nan = dir.join("nan.safetensors");
    let mut r = rng(9);
    let mut w = random(&mut r, 3, 2, -1.0, 1.0);
    w.data_mut()[4] = f32::NAN;
    write(
        &nan,
        &[
            ("0.weight", w),
            ("0.bias", Tensor::new(&[3], vec![0.0; 3]).unwrap()),
        ],
    );
    let m = message(checkpoint::load(&Cpu::new(), &model, &nan).unwrap_err());
    assert!(m.contains("\"0.weight\" holds NaN at element 4"), "{m}");
    let missing = dir.join("no such file");
    let m = message(checkpoint::load(&Cpu::new(), &model, &missing).unwrap_err());
    assert!(
        m.contains("no such file") && m.contains("reading failed"),
        "{m}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_save_is_an_error_and_leaves_the_previous_file() {
    let dir = scratch("failed-save");
    let model = linear_model(&Cpu::new(), &[2, 3]);
    let m = message(
        checkpoint::save(
            &Cpu::new(),
            &model,
            dir.join("missing/folder/x.safetensors"),
        )
        .unwrap_err(),
    );
    assert!(m.contains("writing failed"), "{m}");
    // A save over a path that is a folder fails at the rename and leaves it as it was,
    // with no temporary file beside it.
    let target = dir.join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"kept").unwrap();
    assert!(checkpoint::save(&Cpu::new(), &model, &target).is_err());
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"kept");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["taken".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}
