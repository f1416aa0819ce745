//! The `train` example's command line as a user meets it: a bad flag or value exits
//! with code 2 and the usage, a bad data file or checkpoint with code 1 and one line
//! naming it, never a panic; a good run prints its JSON line.

mod common;

use std::path::PathBuf;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    common::run_example("train", args)
}

fn run_owned(args: &[String]) -> Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn digits() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("datasets/digits/digits.csv.gz")
        .display()
        .to_string()
}

#[test]
fn bad_flags_exit_2_with_the_usage() {
    let d = digits();
    let cases: [(Vec<&str>, &str); 9] = [
        (vec![], "--data FILE is required"),
        (
            vec!["--data", &d, "--frobnicate"],
            "unknown argument \"--frobnicate\"",
        ),
        (
            vec!["--data", &d, "--hidden", "64,0"],
            "--hidden: every width must be at least 1",
        ),
        (
            vec!["--data", &d, "--hidden", "wide"],
            "--hidden: \"wide\" is not a valid value",
        ),
        (
            vec!["--data", &d, "--split", "0.5,0.5"],
            "--split: expected three fractions",
        ),
        (
            vec!["--data", &d, "--split", "0.5,0.4,0.3"],
            "--split: the fractions must",
        ),
        (
            vec!["--data", &d, "--targets", "3", "--loss", "ce"],
            "--loss ce needs class labels",
        ),
        (
            vec!["--data", &d, "--checkpoint-every", "0"],
            "--checkpoint-every: must be at least 1",
        ),
        (
            vec!["--data", &d, "--activation", "gelu"],
            "--activation: expected relu, tanh or sigmoid",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(err.contains("usage: train --data FILE"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn bad_files_exit_1_with_one_line_naming_them() {
    let dir = std::env::temp_dir().join(format!("minidl-train-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "1,2,0\n3,1\n").unwrap();
    let not_checkpoint = dir.join("not.safetensors");
    std::fs::write(&not_checkpoint, "nothing").unwrap();
    let (ragged_s, not_s, d) = (
        ragged.display().to_string(),
        not_checkpoint.display().to_string(),
        digits(),
    );
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["--data", &ragged_s, "--backend", "cpu"],
            "line 2 has 2 fields, expected 3",
        ),
        (
            vec!["--data", "/nonexistent/data.csv", "--backend", "cpu"],
            "data file /nonexistent/data.csv: cannot open",
        ),
        (
            vec!["--data", &d, "--backend", "cpu", "--resume", &not_s],
            "not a valid safetensors file",
        ),
    ];
    for (args, expected) in cases {
        let out = run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("train: ") && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_on_the_digits_prints_its_results_as_json() {
    let d = digits();
    let out = run(&["--data", &d, "--backend", "cpu", "--epochs", "3", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap();
    for key in [
        "\"test_accuracy\":",
        "\"validation_accuracy\":",
        "\"test_confusion\":[[",
        "\"test_per_class_accuracy\":[",
        "\"rows\":{\"train\":1078,\"validation\":359,\"test\":360}",
    ] {
        assert!(line.contains(key), "{key} missing from {line}");
    }
}

/// MNIST as LeCun's IDX files (the shipped digits dealt into 2000 training and 1000 test
/// digits): `--data` reads the images with their labels file beside them, and
/// `--test-data` gives the test rows; the split then only takes the validation rows out
/// of the training file, and what does not fit the training data (a width, a class,
/// an image shape) exits 1 or 2.
#[test]
fn idx_files_train_with_a_test_file_of_their_own() {
    let dir = std::env::temp_dir().join(format!("minidl-train-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = minidl::data::read_mnist(minidl::data::mnist_path()).unwrap();
    let fractions = minidl::data::SplitFractions {
        train: 0.2,
        validation: 0.1,
    };
    let parts = minidl::data::split(&shipped, fractions, 7).unwrap();
    // `last_label` replaces the last label; `side` gives the images another height and
    // width of as many pixels.
    let write_pair = |prefix: &str,
                      digits: &minidl::data::Dataset,
                      last_label: Option<u8>,
                      side: Option<(u32, u32)>| {
        let (mut images, mut labels) = common::mnist_as_idx(digits);
        if let Some(l) = last_label {
            *labels.last_mut().unwrap() = l;
        }
        if let Some((h, w)) = side {
            images[8..12].copy_from_slice(&h.to_be_bytes());
            images[12..16].copy_from_slice(&w.to_be_bytes());
        }
        let images_path = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
        std::fs::write(&images_path, common::gzip(&images)).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
        images_path.display().to_string()
    };
    let validation = parts.validation.as_ref().unwrap();
    let train = write_pair("train", &parts.train, None, None);
    let test = write_pair("t10k", validation, None, None);
    let eleven = write_pair("eleven", validation, Some(10), None);
    let wide = write_pair("wide", validation, None, Some((14, 56)));
    let flags = |test: &str| -> Vec<String> {
        let rest = ["--hidden", "32", "--epochs", "2", "--scale-by", "255"];
        ["--data", train.as_str(), "--test-data", test]
            .into_iter()
            .chain(rest)
            .chain(["--backend", "cpu", "--json"])
            .map(String::from)
            .collect()
    };
    let out = run_owned(&flags(&test));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap();
    assert!(
        line.contains("\"rows\":{\"train\":1600,\"validation\":400,\"test\":1000}"),
        "{line}"
    );
    let at = line.find("\"test_accuracy\":").unwrap() + 16;
    let accuracy: f64 = line[at..]
        .split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(accuracy > 0.7, "{line}");

    let d = digits();
    let mut split = flags(&test);
    split.extend(["--split".into(), "0.6,0.2,0.2".into()]);
    let mut narrow = flags(&d);
    narrow.retain(|f| f != "--scale-by" && f != "255");
    let cases: [(Vec<String>, i32, &str); 4] = [
        (
            split,
            2,
            "--split: with --test-data the test rows are that file's",
        ),
        (narrow, 1, "64 values per row, but --data has 784"),
        (
            flags(&eleven),
            1,
            "class 10 is not among the 10 classes of --data",
        ),
        (
            flags(&wide),
            1,
            "images of 1×14×56 but --data has images of 1×28×28",
        ),
    ];
    for (args, code, expected) in cases {
        let out = run_owned(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
