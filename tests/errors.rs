//! Misuse gives a clear error, the same on both backends, and never a panic.

mod common;

use common::gpu;
use minidl::data::{batches, Dataset};
use minidl::optim::Sgd;
use minidl::{Act, LossKind, Ops};
use minidl::{Backend, Cpu, Error, Gpu, Tensor};

fn shape_errors<B: Backend>(b: &B) -> Vec<String> {
    let x = b.alloc(4, 3).unwrap();
    let w = b.alloc(5, 2).unwrap();
    let bias = b.alloc(1, 5).unwrap();
    let y = b.alloc(4, 5).unwrap();
    let mut errors = Vec::new();
    let err = b.linear_forward(&x, &w, &bias, &y).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    errors.push(err.to_string());
    let err = b.activation_forward(Act::Relu, &x, &y).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    errors.push(err.to_string());
    let out = b.alloc(1, 2).unwrap();
    let err = b
        .loss(LossKind::Mse, &x, &x, minidl::Reduction::Sum, &out)
        .unwrap_err();
    errors.push(err.to_string());
    errors
}

#[test]
fn bad_shapes_are_errors_with_the_same_message_on_both_backends() {
    let cpu = shape_errors(&Cpu::new());
    assert_eq!(
        cpu[0],
        "shape mismatch in linear_forward: weight should be 5×3, got 5×2"
    );
    assert_eq!(
        cpu[1],
        "shape mismatch in relu_forward: output should be 4×3, got 4×5"
    );
    assert_eq!(
        cpu[2],
        "shape mismatch in mse_loss: output should be 1×1, got 1×2"
    );
    if let Some(gpu) = gpu() {
        assert_eq!(shape_errors(&gpu), cpu);
    }
}

fn alias_errors<B: Backend>(b: &B) {
    let x = b.alloc(6, 3).unwrap();
    let w = b.alloc(3, 3).unwrap();
    let bias = b.alloc(1, 3).unwrap();
    // The output is another view of the input's buffer.
    let y = x.slice_rows(3, 3).unwrap();
    let err = b
        .linear_forward(&x.slice_rows(0, 3).unwrap(), &w, &bias, &y)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Aliasing {
                op: "linear_forward"
            }
        ),
        "{err}"
    );
    let err = b.sgd_step(&w, &w, 0.1).unwrap_err();
    assert!(matches!(err, Error::Aliasing { op: "sgd_step" }), "{err}");
    let err = b
        .sgd_step(&w, &b.alloc(3, 3).unwrap(), f32::NAN)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn outputs_that_alias_inputs_are_errors() {
    alias_errors(&Cpu::new());
    if let Some(gpu) = gpu() {
        alias_errors(&gpu);
    }
}

fn view_errors<B: Backend>(b: &B) {
    let t = b.alloc(4, 2).unwrap();
    assert!(matches!(t.slice_rows(3, 2), Err(Error::Shape { .. })));
    assert!(matches!(
        t.slice_rows(usize::MAX, 2),
        Err(Error::Shape { .. })
    ));
    let rank3 = Tensor::new(&[2, 2, 2], vec![0.0; 8]).unwrap();
    assert!(matches!(b.upload(&rank3), Err(Error::Shape { .. })));
    assert!(matches!(b.write(&t, &[1.0; 7]), Err(Error::Shape { .. })));
}

#[test]
fn bad_views_uploads_and_writes_are_errors() {
    view_errors(&Cpu::new());
    if let Some(gpu) = gpu() {
        view_errors(&gpu);
    }
}

#[test]
fn bad_hyperparameters_and_data_are_errors() {
    for lr in [0.0, -0.1, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(Sgd::<Cpu>::new(lr), Err(Error::InvalidArgument(_))),
            "lr {lr}"
        );
    }
    assert!(matches!(batches(10, 0), Err(Error::InvalidArgument(_))));
    let empty = Tensor::new(&[0, 2], vec![]).unwrap();
    assert!(matches!(
        Dataset::new(empty, vec![], 2),
        Err(Error::InvalidArgument(_))
    ));
    let nan = Tensor::new(&[1, 2], vec![0.5, f32::NAN]).unwrap();
    assert!(matches!(
        Dataset::new(nan, vec![0], 2),
        Err(Error::InvalidArgument(_))
    ));
    let ok = Tensor::new(&[1, 2], vec![0.5, 0.5]).unwrap();
    assert!(matches!(
        Dataset::new(ok, vec![2], 2),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Tensor::new(&[2, 2], vec![0.0; 3]),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn an_adapter_name_that_matches_nothing_is_a_no_adapter_error() {
    let err = Gpu::with_adapter(Some("no adapter is called this")).unwrap_err();
    let Error::NoAdapter(message) = &err else {
        panic!("expected NoAdapter, got {err}")
    };
    // With adapters present, the message names the request and what exists.
    if !Gpu::adapters().is_empty() {
        assert!(
            message.contains("no adapter is called this") && message.contains("available"),
            "{message}"
        );
    }
}
