//! Images from the command line: `train --image C,H,W --model LAYERS` on the shipped
//! MNIST digits (a model list that does not parse exits 2 with the usage and the
//! offending token; an image shape or a model that does not fit the data exits 1 with
//! one line; a good run prints its JSON line, on the CPU and on the GPU where there is
//! one), and `examples/denoise`, which reports its PSNR against the noisy input's.

mod common;

use std::process::Output;

use minidl::data::mnist_path;

const LENET: &str = "conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),flatten,\
                     linear(120),relu,linear(84),relu,linear(10)";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn last_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or_default().to_string()
}

/// The number after `"key":` in a JSON line.
fn number(line: &str, key: &str) -> f64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap()
}

#[test]
fn a_model_list_that_does_not_parse_exits_2_with_the_usage_and_the_token() {
    let data = mnist_path().display().to_string();
    for (model, token) in [
        ("conv(6,5),rleu,flatten,linear(10)", "rleu"),
        (
            "conv(6,5,stride=0),flatten,linear(10)",
            "conv(6,5,stride=0)",
        ),
        ("conv(6,5", "conv(6,5"),
    ] {
        let args = ["--data", &data, "--image", "1,28,28", "--model", model];
        let out = common::run_example("train", &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{model}: {err}");
        assert!(err.contains(&format!("{token:?}")), "{model}: {err}");
        assert!(err.contains("usage: train"), "{model}: {err}");
    }
    let out = common::run_example("train", &["--data", &data, "--image", "1,28"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_shape_that_does_not_fit_the_data_exits_1_with_one_line() {
    let data = mnist_path().display().to_string();
    for (image, model, expected) in [
        ("1,28,27", LENET, "values per row, but the data has 784"),
        (
            "1,28,28",
            "conv(6,5),flatten,linear(7)",
            "end with linear(10)",
        ),
        (
            "1,28,28",
            "conv(6,5),maxpool(2),conv(4,13)",
            "layer 2 (conv(4,13))",
        ),
        ("1,28,28", "conv(6,5),linear(10)", "put flatten before it"),
    ] {
        let args = [
            "--data",
            &data,
            "--image",
            image,
            "--model",
            model,
            "--backend",
            "cpu",
            "--epochs",
            "1",
        ];
        let out = common::run_example("train", &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{model}: {err}");
        assert_eq!(err.lines().count(), 1, "{model}: {err}");
        assert!(
            err.starts_with("train: ") && err.contains(expected),
            "{model}: {err}"
        );
    }
}

/// One epoch of LeNet-5 with `backend` on the digits split as `split`: its JSON line.
fn lenet_epoch(backend: &str, split: &str) -> String {
    let data = mnist_path().display().to_string();
    let args = [
        "--data",
        &data,
        "--image",
        "1,28,28",
        "--model",
        LENET,
        "--optimizer",
        "momentum",
        "--lr",
        "0.05",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--split",
        split,
        "--scale-by",
        "255",
        "--backend",
        backend,
        "--json",
    ];
    let out = common::run_example("train", &args);
    assert!(out.status.success(), "{}", stderr(&out));
    last_line(&out)
}

/// One epoch of LeNet-5 learns the digits far beyond chance (10 %): a network that
/// did not train, or trained on shuffled pixels, would not.
#[test]
fn lenet_learns_the_digits_on_the_cpu() {
    let line = lenet_epoch("cpu", "0.8,0,0.2");
    assert!(number(&line, "test_accuracy") > 0.8, "{line}");
    assert!(
        line.contains("\"rows\":{\"train\":8000,\"validation\":0,\"test\":2000}"),
        "{line}"
    );
    assert!(number(&line, "epoch_ms_median") > 0.0, "{line}");
}

/// 1500 of the digits, a seeded random subset, as a safetensors file (`inputs` and
/// `labels`), whose path is returned.
fn some_digits() -> std::path::PathBuf {
    let all = minidl::data::read_mnist(mnist_path()).unwrap();
    let fractions = minidl::data::SplitFractions {
        train: 0.15,
        validation: 0.0,
    };
    let rows = minidl::data::split(&all, fractions, 3).unwrap().rows[0].clone();
    let part = all.select(&rows).unwrap();
    let labels: Vec<f32> = part.labels().iter().map(|&l| l as f32).collect();
    let tensors = std::collections::BTreeMap::from([
        ("inputs".to_string(), part.inputs().clone()),
        (
            "labels".to_string(),
            minidl::Tensor::new(&[labels.len()], labels).unwrap(),
        ),
    ]);
    let path =
        std::env::temp_dir().join(format!("minidl-digits-{}.safetensors", std::process::id()));
    std::fs::write(&path, minidl::checkpoint::serialize(&tensors).unwrap()).unwrap();
    path
}

/// One epoch of LeNet-5 on 1000 digits (16 steps: lavapipe, where CI runs this, takes
/// about 0.25 s a step) on the GPU and on the CPU: the same accuracy on the 500 test
/// digits but for a prediction or two that the backends' rounding may tip.
#[test]
fn lenet_trains_on_the_gpu_as_on_the_cpu() {
    if common::gpu().is_none() {
        return;
    }
    let file = some_digits();
    let data = file.display().to_string();
    let run = |backend: &str| {
        let args = [
            "--data",
            &data,
            "--label",
            "labels",
            "--image",
            "1,28,28",
            "--model",
            LENET,
            "--optimizer",
            "momentum",
            "--lr",
            "0.05",
            "--batch-size",
            "64",
            "--epochs",
            "1",
            "--split",
            "0.6667,0,0.3333",
            "--scale-by",
            "255",
            "--backend",
            backend,
            "--json",
        ];
        let out = common::run_example("train", &args);
        assert!(out.status.success(), "{}", stderr(&out));
        last_line(&out)
    };
    let (gpu, cpu) = (run("gpu"), run("cpu"));
    std::fs::remove_file(&file).unwrap();
    assert!(
        gpu.contains("\"rows\":{\"train\":1000,\"validation\":0,\"test\":500}"),
        "{gpu}"
    );
    let (g, c) = (number(&gpu, "test_accuracy"), number(&cpu, "test_accuracy"));
    assert!((g - c).abs() <= 2.0 / 500.0, "gpu {gpu}\ncpu {cpu}");
    assert!(c > 0.2, "16 steps learn beyond chance: {cpu}");
}

/// One epoch of the denoiser on `backend` (on `digits` of the digits, or all): its
/// JSON line.
fn denoise_epoch(backend: &str, digits: Option<&str>) -> String {
    let mut args = vec!["--epochs", "1", "--backend", backend, "--json"];
    if let Some(n) = digits {
        args.extend(["--digits", n]);
    }
    let out = common::run_example("denoise", &args);
    assert!(out.status.success(), "{}", stderr(&out));
    last_line(&out)
}

/// An epoch on all the training digits: the output is closer to the clean digits than
/// the noisy input it was given.
#[test]
fn the_denoiser_denoises_on_the_cpu() {
    let line = denoise_epoch("cpu", None);
    let (psnr, noisy) = (number(&line, "psnr_db"), number(&line, "noisy_psnr_db"));
    // σ = 0.2 on pixels in [0, 1]: the noisy input's PSNR is about −10·log₁₀(0.04).
    assert!((noisy - 13.98).abs() < 0.1, "{line}");
    assert!(psnr > noisy + 1.0, "{line}");
    assert!(number(&line, "step_ms_median") > 0.0, "{line}");
}

/// The same short run (13 steps on 1000 digits: lavapipe, where CI runs this, takes
/// about 2 s a step) on the GPU and on the CPU: the same noise, so the same PSNR but
/// for the rounding of each backend's sums.
#[test]
fn the_denoiser_trains_on_the_gpu_as_on_the_cpu() {
    if common::gpu().is_none() {
        return;
    }
    let gpu = denoise_epoch("gpu", Some("1000"));
    let cpu = denoise_epoch("cpu", Some("1000"));
    let (g, c) = (number(&gpu, "psnr_db"), number(&cpu, "psnr_db"));
    assert!((g - c).abs() < 0.01, "gpu {gpu}\ncpu {cpu}");
    assert_eq!(number(&gpu, "noisy_psnr_db"), number(&cpu, "noisy_psnr_db"));
}

#[test]
fn denoise_refuses_bad_flags_with_the_usage() {
    for args in [&["--sigma", "-1"][..], &["--epochs", "0"], &["--bogus"]] {
        let out = common::run_example("denoise", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("usage: denoise"), "{args:?}");
    }
}
