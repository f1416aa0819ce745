//! Resuming a run: a training checkpoint (parameters, optimizer state, epoch, scaler)
//! written during a run and loaded into a fresh model and optimizer continues to the
//! same parameters as a run that was never interrupted, on the CPU bit for bit and on
//! the GPU too (the same ops in the same order on one device). Through the library, and
//! through the `train` example killed with SIGKILL half-way.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minidl::backend::DeviceTensor;
use minidl::checkpoint::{self, TrainingState};
use minidl::data::{Dataset, Standardizer};
use minidl::nn::{CrossEntropyLoss, Linear, Module, ReLU, Sequential};
use minidl::optim::{Adam, Optimizer};
use minidl::train::{fit, Control, FitConfig};
use minidl::{Backend, Cpu, Reduction, Tensor};

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("minidl-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 300 points of 4 features in 3 classes (by the sign pattern of two sums).
fn data() -> Dataset {
    let mut r = common::rng(5);
    let x = common::random(&mut r, 300, 4, -1.0, 1.0);
    let labels = x
        .data()
        .chunks(4)
        .map(|p| usize::from(p[0] + p[1] > 0.0) + usize::from(p[2] - p[3] > 0.3))
        .collect();
    Dataset::new(x, labels, 3).unwrap()
}

fn network<B: Backend>(b: &B) -> Sequential<B> {
    let mut r = common::rng(6);
    Sequential::new(vec![
        Box::new(Linear::new(b, 4, 16, &mut r).unwrap()),
        Box::new(ReLU::new()),
        Box::new(Linear::new(b, 16, 3, &mut r).unwrap()),
    ])
    .unwrap()
}

fn config(epochs: usize, start_epoch: usize) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 16,
        shuffle: true,
        seed: 11,
        start_epoch,
        ..FitConfig::default()
    }
}

fn parameters<B: Backend>(b: &B, model: &Sequential<B>) -> BTreeMap<String, Tensor> {
    checkpoint::state_dict(b, model).unwrap()
}

/// Trains 9 epochs straight; then 4 epochs with a checkpoint after epoch 4, stopped
/// there, and a fresh model and optimizer resumed from the file for the other 5.
fn resumed_equals_uninterrupted<B: Backend>(b: &B, name: &str) {
    let dir = folder(name);
    let path = dir.join("run.safetensors");
    let data = data();
    let scaler = Standardizer::fit(data.inputs()).unwrap();
    let mut loss = CrossEntropyLoss::new(Reduction::Mean);

    let mut straight = network(b);
    let mut adam = Adam::<B>::new(0.01).unwrap();
    fit(
        b,
        &mut straight,
        &mut loss,
        &mut adam,
        &data,
        &config(9, 0),
        |_, _| Ok(()),
    )
    .unwrap();

    let mut first = network(b);
    let mut adam = Adam::<B>::new(0.01).unwrap();
    adam.prepare(b, &first.parameters()).unwrap();
    let state: Vec<DeviceTensor<B>> = adam.state().into_iter().cloned().collect();
    let refs: Vec<&DeviceTensor<B>> = state.iter().collect();
    let reports = fit(
        b,
        &mut first,
        &mut loss,
        &mut adam,
        &data,
        &config(9, 0),
        |r, m| {
            if r.epoch < 4 {
                return Ok(Control::Continue);
            }
            let s = TrainingState {
                epoch: r.epoch,
                scaler: Some(scaler.clone()),
            };
            checkpoint::save_training(b, m, &refs, &s, &path)?;
            Ok(Control::Stop)
        },
    )
    .unwrap();
    assert_eq!(reports.len(), 4);

    let mut resumed = network(b);
    let mut adam = Adam::<B>::new(0.01).unwrap();
    adam.prepare(b, &resumed.parameters()).unwrap();
    let saved = checkpoint::load_training(b, &resumed, Some(&adam.state()), &path).unwrap();
    assert_eq!(saved.epoch, 4);
    assert_eq!(saved.scaler.as_ref(), Some(&scaler));
    let rest = fit(
        b,
        &mut resumed,
        &mut loss,
        &mut adam,
        &data,
        &config(9, saved.epoch),
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        (5..=9).collect::<Vec<_>>()
    );
    assert_eq!(parameters(b, &resumed), parameters(b, &straight));
    assert_ne!(parameters(b, &first), parameters(b, &straight));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_fit_equals_the_uninterrupted_one_on_the_cpu() {
    resumed_equals_uninterrupted(&Cpu::new(), "cpu");
}

#[test]
fn a_resumed_fit_equals_the_uninterrupted_one_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    resumed_equals_uninterrupted(&gpu, "gpu");
}

#[test]
fn a_checkpoint_of_another_optimizer_or_network_is_refused_whole() {
    let b = Cpu::new();
    let dir = folder("mismatch");
    let path = dir.join("adam.safetensors");
    let model = network(&b);
    let mut adam = Adam::<Cpu>::new(0.01).unwrap();
    adam.prepare(&b, &model.parameters()).unwrap();
    let state = TrainingState {
        epoch: 3,
        scaler: None,
    };
    checkpoint::save_training(&b, &model, &adam.state(), &state, &path).unwrap();
    // Plain SGD has no state: the file's Adam moments (one tensor per parameter) do
    // not fit it.
    let e = checkpoint::load_training(&b, &model, Some(&[]), &path).unwrap_err();
    assert!(
        e.to_string()
            .contains("the checkpoint holds 4 optimizer state tensors, the optimizer has 0"),
        "{e}"
    );
    // Without an optimizer the state is ignored (to predict).
    assert_eq!(
        checkpoint::load_training(&b, &model, None, &path).unwrap(),
        state
    );
    let other = Sequential::new(vec![
        Box::new(Linear::new(&b, 4, 3, &mut common::rng(1)).unwrap()) as Box<dyn Module<Cpu>>,
    ])
    .unwrap();
    let before = parameters(&b, &other);
    let e = checkpoint::load_training(&b, &other, None, &path).unwrap_err();
    assert!(
        e.to_string()
            .contains("tensor \"0.weight\" has shape [16, 4], the model expects [3, 4]"),
        "{e}"
    );
    assert_eq!(
        parameters(&b, &other),
        before,
        "a refused checkpoint changed the model"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes a CSV of 3000 rows, 6 features and 4 classes.
fn table(dir: &Path) -> PathBuf {
    let mut r = common::rng(9);
    let x = common::random(&mut r, 3000, 6, -2.0, 2.0);
    let mut text = String::from("a,b,c,d,e,f,class\n");
    for p in x.data().chunks(6) {
        let class = usize::from(p[0] * p[1] > 0.0) + 2 * usize::from(p[2] + p[3] - p[4] > 0.0);
        let row: Vec<String> = p.iter().map(|v| v.to_string()).collect();
        text.push_str(&format!("{},{class}\n", row.join(",")));
    }
    let path = dir.join("table.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The `train` example's flags for one run on `backend`.
fn train_args(data: &Path, backend: &str) -> Vec<String> {
    [
        "--data",
        &data.display().to_string(),
        "--label",
        "class",
        "--hidden",
        "64,64",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--batch-size",
        "32",
        "--epochs",
        "60",
        "--lr-schedule",
        "cosine",
        "--seed",
        "3",
        "--backend",
        backend,
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The `train` example as a command (with a runtime folder, without which libwayland
/// warns when the GPU adapters are listed).
fn train_command(args: &[String]) -> Command {
    let mut command = Command::new(common::example("train"));
    command.args(args);
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    command
}

fn run_train(args: &[String]) {
    let out = train_command(args).output().unwrap();
    assert!(
        out.status.success(),
        "train {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A full run; a run killed with SIGKILL after its first checkpoint; the killed run
/// resumed from its checkpoint: the resumed run's parameters equal the full run's.
fn killed_and_resumed(backend: &str) {
    let dir = folder(&format!("kill-{backend}"));
    let data = table(&dir);
    let args = train_args(&data, backend);
    let full = dir.join("full.safetensors");
    let mut straight = args.clone();
    straight.extend(["--save".into(), full.display().to_string()]);
    run_train(&straight);

    let ck = dir.join("ck.safetensors");
    let mut checkpointed = args.clone();
    checkpointed.extend([
        "--checkpoint-every".into(),
        "1".into(),
        "--checkpoint".into(),
        ck.display().to_string(),
    ]);
    let mut child = train_command(&checkpointed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ck.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let bytes = std::fs::read(&ck).unwrap();
    let meta = checkpoint::parse_metadata(&bytes, &ck).unwrap();
    let epoch: usize = meta["minidl.epoch"].parse().unwrap();
    assert!(
        epoch < 60,
        "the run ended (epoch {epoch}) before it was killed"
    );
    eprintln!("{backend}: killed after the checkpoint of epoch {epoch}");

    let resumed = dir.join("resumed.safetensors");
    let mut resume = args.clone();
    resume.extend([
        "--resume".into(),
        ck.display().to_string(),
        "--save".into(),
        resumed.display().to_string(),
    ]);
    run_train(&resume);
    let a = checkpoint::parse(&std::fs::read(&full).unwrap(), &full).unwrap();
    let b = checkpoint::parse(&std::fs::read(&resumed).unwrap(), &resumed).unwrap();
    assert!(a.contains_key("0.weight") && a.contains_key("scaler.mean"));
    assert_eq!(
        a, b,
        "the resumed run (killed after epoch {epoch}) ended elsewhere"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_killed_train_run_resumes_to_the_same_parameters_on_the_cpu() {
    killed_and_resumed("cpu");
}

#[test]
fn a_killed_train_run_resumes_to_the_same_parameters_on_the_gpu() {
    if common::gpu().is_none() {
        return;
    }
    killed_and_resumed("gpu");
}
