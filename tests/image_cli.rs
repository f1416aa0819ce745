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

/// One epoch of `model` on a tenth of the digits (default scaling; 85 % validation), with `image` as
/// `--image` or without the flag: the JSON line less its times.
fn digits_epoch(model: &str, image: Option<&str>, data: &str) -> String {
    let mut args = vec!["--data", data, "--model", model];
    if let Some(shape) = image {
        args.extend(["--image", shape]);
    }
    args.extend([
        "--epochs",
        "1",
        "--split",
        "0.1,0.85,0.05",
        "--backend",
        "cpu",
        "--json",
    ]);
    let out = common::run_example("train", &args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let line = last_line(&out);
    let timed = ["epoch_ms_median", "total_s"];
    let members: Vec<&str> = line
        .split(',')
        .filter(|m| !timed.iter().any(|t| m.contains(&format!("\"{t}\""))))
        .collect();
    members.join(",")
}

/// MNIST's file knows its 1×28×28 images: LeNet-5 without `--image` trains exactly as
/// with `--image 1,28,28` (the same network, the same all-pixel scaling, the same
/// results), and says so in its JSON; a list that starts with `linear` keeps flat rows;
/// a table, which knows no shape, still needs the flag.
#[test]
fn the_digits_give_their_image_shape_without_the_flag() {
    let data = mnist_path().display().to_string();
    let inferred = digits_epoch(LENET, None, &data);
    assert!(inferred.contains("\"image\":[1,28,28]"), "{inferred}");
    assert!(
        inferred.contains("\"rows\":{\"train\":1000,\"validation\":8500,\"test\":500}"),
        "{inferred}"
    );
    assert_eq!(inferred, digits_epoch(LENET, Some("1,28,28"), &data));
    // `--image` overrides the file's shape.
    let other = digits_epoch("conv(6,5),relu,flatten,linear(10)", Some("1,14,56"), &data);
    assert!(other.contains("\"image\":[1,14,56]"), "{other}");

    let flat = digits_epoch("linear(32),relu,linear(10)", None, &data);
    assert!(flat.contains("\"image\":null"), "{flat}");

    let table = some_digits("table");
    let args = [
        "--data",
        table.to_str().unwrap(),
        "--label",
        "labels",
        "--model",
        LENET,
        "--epochs",
        "1",
    ];
    let out = common::run_example("train", &args);
    std::fs::remove_file(&table).unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("layer 0 (conv(6,5,padding=2))") && err.contains("give --image C,H,W"),
        "{err}"
    );
}

/// 1500 of the digits, a seeded random subset, as a safetensors file (`inputs` and
/// `labels`) named after `name`, whose path is returned.
fn some_digits(name: &str) -> std::path::PathBuf {
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
    let file = format!("minidl-{name}-{}.safetensors", std::process::id());
    let path = std::env::temp_dir().join(file);
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
    let file = some_digits("digits");
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
    for args in [
        &["--sigma", "-1"][..],
        &["--epochs", "0"],
        &["--bogus"],
        &["--image", "1,28"],
        &["--scale-by", "0"],
    ] {
        let out = common::run_example("denoise", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("usage: denoise"), "{args:?}");
    }
}

/// One epoch of the denoiser on the CPU on `n` images of `data` with `extra` flags:
/// the run's output.
fn denoise_on(data: &std::path::Path, n: &str, extra: &[&str]) -> Output {
    let data = data.display().to_string();
    let mut args = vec!["--data", &data, "--digits", n, "--epochs", "1"];
    args.extend(["--backend", "cpu", "--json"]);
    args.extend(extra);
    common::run_example("denoise", &args)
}

/// The JSON line of a run that succeeded, less its step time.
fn untimed(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    let line = last_line(out);
    let members: Vec<&str> = line
        .split(',')
        .filter(|m| !m.contains("\"step_ms_median\""))
        .collect();
    members.join(",")
}

/// The denoiser takes any file of images: the shipped digits as LeCun's IDX files train
/// exactly as the MNIST file does; CIFAR records train in colour, three channels in and
/// out, and draw their picture; images whose sides 4 does not divide, and a table
/// without `--image`, exit 1 with one line.
#[test]
fn the_denoiser_takes_any_images_file() {
    let dir = common::temp_folder("denoise-files");
    let shipped = minidl::data::read_mnist(mnist_path()).unwrap();
    let (images, labels) = common::mnist_as_idx(&shipped);
    let idx = dir.join("train-images-idx3-ubyte");
    std::fs::write(&idx, &images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let from_idx = untimed(&denoise_on(&idx, "300", &[]));
    assert!(from_idx.contains("\"image\":[1,28,28]"), "{from_idx}");
    assert_eq!(from_idx, untimed(&denoise_on(&mnist_path(), "300", &[])));

    // 40 CIFAR-10 records: a label byte, then the red, green and blue planes.
    let mut cifar = Vec::new();
    for i in 0..40usize {
        cifar.push((i % 10) as u8);
        cifar.extend((0..3 * 32 * 32).map(|p| ((p / 32 + p % 32) * 3 + i * 11) as u8));
    }
    let cifar_path = dir.join("data_batch_1.bin");
    std::fs::write(&cifar_path, cifar).unwrap();
    let plot = dir.join("plot");
    let plot_flag = plot.display().to_string();
    let colour = untimed(&denoise_on(&cifar_path, "40", &["--plot", &plot_flag]));
    assert!(colour.contains("\"image\":[3,32,32]"), "{colour}");
    // Unclipped noise of σ = 0.2 on pixels in [0, 1]: about −10·log₁₀(0.04) dB.
    assert!(
        (number(&colour, "noisy_psnr_db") - 13.98).abs() < 0.3,
        "{colour}"
    );
    assert!(number(&colour, "psnr_db").is_finite(), "{colour}");
    assert!(plot.join("denoised.png").is_file());

    let (images, labels) = (common::idx(0x08, &[20, 10, 10], &[7; 2000]), [0; 20]);
    let small = dir.join("small-images-idx3-ubyte");
    std::fs::write(&small, images).unwrap();
    std::fs::write(
        dir.join("small-labels-idx1-ubyte"),
        common::idx(0x08, &[20], &labels),
    )
    .unwrap();
    let table = some_digits("denoise-table");
    for (data, expected) in [
        (
            &small,
            "images of 1×10×10: the denoiser gives back 1×12×12 images",
        ),
        (
            &table,
            "its rows are not images of a known shape: give --image C,H,W",
        ),
    ] {
        let out = denoise_on(data, "20", &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{err}");
    }
    std::fs::remove_file(&table).unwrap();
}
