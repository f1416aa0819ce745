//! The `disc_gpu` command line as a user meets it: a bad flag or value exits with code
//! 2 and the usage, a failure at run time with code 1 and one line, never a Rust panic
//! message or backtrace. Runs the example binary that `cargo test` builds beside the
//! test binaries.

use std::process::{Command, Output};

mod common;

fn run(args: &[&str]) -> Output {
    common::run_example("disc_gpu", args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No panic message, no backtrace.
fn assert_no_panic(what: &str, out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("RUST_BACKTRACE"),
        "{what}: {err}"
    );
}

#[test]
fn bad_flags_and_values_exit_2_with_the_usage() {
    let cases: [(&[&str], &str); 13] = [
        (&["--frobnicate"], "unknown argument \"--frobnicate\""),
        (&["--epochs"], "--epochs needs a value"),
        (
            &["--epochs", "ten"],
            "--epochs: \"ten\" is not a valid value",
        ),
        (&["--epochs", "-1"], "--epochs: \"-1\" is not a valid value"),
        (
            &["--lr", "-0.1"],
            "--lr: must be a positive finite number, got -0.1",
        ),
        (
            &["--lr", "NaN"],
            "--lr: must be a positive finite number, got NaN",
        ),
        (
            &["--lr", "inf"],
            "--lr: must be a positive finite number, got inf",
        ),
        (&["--batch-size", "0"], "--batch-size: must be at least 1"),
        (
            &["--backend", "tpu"],
            "--backend: expected auto, gpu or cpu, got \"tpu\"",
        ),
        (
            &["--loss", "hinge"],
            "--loss: expected mse or ce, got \"hinge\"",
        ),
        (
            &["--optimizer", "lbfgs"],
            "--optimizer: expected sgd, momentum or adam",
        ),
        (&["--nesterov"], "--nesterov needs --optimizer momentum"),
        (
            &["--lr-schedule", "linear"],
            "--lr-schedule: expected constant, cosine or step",
        ),
    ];
    for (args, says) in cases {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("disc_gpu: ") && first.contains(says),
            "{args:?}: {err}"
        );
        assert!(err.contains("usage: disc_gpu"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: printed to stdout");
        assert_no_panic(&format!("{args:?}"), &out);
    }
}

/// Exit code 1 and exactly one line on stderr, starting `disc_gpu: ` and holding `says`.
fn assert_runtime_failure(args: &[&str], says: &str) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {err}");
    assert!(
        lines[0].starts_with("disc_gpu: ") && lines[0].contains(says),
        "{args:?}: {err}"
    );
    assert_no_panic(&format!("{args:?}"), &out);
}

#[test]
fn failures_at_run_time_exit_1_with_one_line() {
    let dir = std::env::temp_dir().join(format!("minidl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.safetensors");
    assert_runtime_failure(
        &["--backend", "cpu", "--load", missing.to_str().unwrap()],
        "reading failed",
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    assert_runtime_failure(
        &["--backend", "cpu", "--load", garbage.to_str().unwrap()],
        "not a valid safetensors file",
    );
    let no_folder = dir.join("no/such/folder/net.safetensors");
    assert_runtime_failure(
        &[
            "--backend",
            "cpu",
            "--epochs",
            "1",
            "--save",
            no_folder.to_str().unwrap(),
        ],
        "writing failed",
    );
    assert_runtime_failure(
        &["--backend", "gpu", "--adapter", "no adapter is called this"],
        "no GPU adapter",
    );
    assert_runtime_failure(
        &[
            "--backend",
            "cpu",
            "--loss",
            "ce",
            "--lr",
            "100",
            "--seed",
            "2",
        ],
        "training diverged at epoch 1, step",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_prints_nothing_but_the_json_line() {
    let out = run(&["--backend", "cpu", "--epochs", "2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("{\"backend\":\"cpu\"") && lines[0].ends_with('}'),
        "{stdout}"
    );
}

#[test]
fn help_exits_0_with_the_usage() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: disc_gpu"));
}

/// The `"key":value` of a flat JSON line, as text.
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
    let rest = &json[at..];
    &rest[..rest.find([',', '}']).unwrap()]
}

#[test]
fn save_load_and_plot_work_end_to_end() {
    let dir = std::env::temp_dir().join(format!("minidl-cli-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let net = dir.join("net.safetensors");
    let plots = dir.join("plots");
    let net_arg = net.to_str().unwrap();
    let trained = run(&[
        "--backend",
        "cpu",
        "--epochs",
        "3",
        "--save",
        net_arg,
        "--plot",
        plots.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(trained.status.code(), Some(0), "{}", stderr(&trained));
    let trained = String::from_utf8(trained.stdout).unwrap();
    // Only evaluating the saved network gives its errors again.
    let loaded = run(&[
        "--backend",
        "cpu",
        "--epochs",
        "0",
        "--load",
        net_arg,
        "--json",
    ]);
    assert_eq!(loaded.status.code(), Some(0), "{}", stderr(&loaded));
    let loaded = String::from_utf8(loaded.stdout).unwrap();
    for key in ["train_errors", "test_errors"] {
        assert_eq!(
            field(&trained, key),
            field(&loaded, key),
            "{key}: {trained} / {loaded}"
        );
    }
    // Continuing from it trains on.
    let more = run(&[
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--load",
        net_arg,
        "--json",
    ]);
    assert_eq!(more.status.code(), Some(0), "{}", stderr(&more));
    for picture in ["training_curve.png", "decision_boundary.png"] {
        let bytes = std::fs::read(plots.join(picture)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{picture} is not a PNG"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn auto_takes_a_hardware_gpu_and_otherwise_the_cpu_with_a_notice() {
    let adapters = minidl::Gpu::adapters();
    let hardware = adapters.iter().find(|a| {
        matches!(
            a.device_type.as_str(),
            "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu"
        )
    });
    let mut command = Command::new(common::example("disc_gpu"));
    command.args(["--epochs", "1", "--json"]);
    command.env_remove("MINIDL_ADAPTER");
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    match hardware {
        Some(a) => assert!(
            stdout.starts_with("{\"backend\":\"gpu\"") && stdout.contains(&a.name),
            "a hardware adapter exists ({a}) but auto gave {stdout}"
        ),
        None => {
            assert!(stdout.starts_with("{\"backend\":\"cpu\""), "{stdout}");
            let note = stderr(&out);
            match adapters.first() {
                Some(software) => assert!(
                    note.contains(&software.name) && note.contains("running on the CPU backend"),
                    "the notice should name the software adapter {software}: {note}"
                ),
                None => assert!(note.contains("no GPU adapter"), "{note}"),
            }
        }
    }
}

#[test]
fn runs_print_every_run_and_the_distribution_and_draw_them() {
    let out = run(&[
        "--backend",
        "cpu",
        "--epochs",
        "2",
        "--runs",
        "3",
        "--seed",
        "5",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    for key in [
        "\"runs\":[{\"seed\":5,",
        "{\"seed\":6,",
        "{\"seed\":7,",
        "\"test_errors_median\":",
        "\"test_errors_min\":",
        "\"test_errors_max\":",
    ] {
        assert!(stdout.contains(key), "{key} missing from {stdout}");
    }
    // The pictures of several runs.
    let plots = std::env::temp_dir().join(format!("minidl-cli-runs-{}", std::process::id()));
    let out = run(&[
        "--backend",
        "cpu",
        "--epochs",
        "2",
        "--runs",
        "3",
        "--lr-schedule",
        "cosine,constant",
        "--plot",
        plots.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one line per schedule: {stdout}");
    assert!(lines[0].contains("\"lr_schedule\":\"cosine\""), "{stdout}");
    assert!(
        lines[1].contains("\"lr_schedule\":\"constant\""),
        "{stdout}"
    );
    for picture in [
        "test_errors.png",
        "training_curve.png",
        "training_curve_constant.png",
    ] {
        let bytes = std::fs::read(plots.join(picture)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{picture} is not a PNG"
        );
    }
    assert!(!plots.join("decision_boundary.png").exists());
    std::fs::remove_dir_all(&plots).unwrap();
    for (args, says) in [
        (&["--runs", "0"][..], "--runs: must be at least 1"),
        (
            &["--runs", "2", "--save", "x.safetensors"][..],
            "--runs above 1 takes no --save",
        ),
        (
            &["--lr-schedule", "cosine,constant"][..],
            "a list of schedules needs --runs above 1",
        ),
        (
            &["--runs", "2", "--lr-schedule", "cosine,linear"][..],
            "--lr-schedule: expected constant, cosine or step",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}
