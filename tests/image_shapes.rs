//! The image shape a data file gives its rows: MNIST's digits are 1×28×28, CIFAR's
//! records 3×32×32, an IDX file of rank 3 `[n, H, W]` gives 1×H×W and other ranks none,
//! a table none. The shape survives a selection and a split, goes with the width when
//! the inputs change, and `Dataset::with_image_shape` refuses a shape that is not the
//! rows' width; `takes_images` tells the model lists that want one.

mod common;

use std::path::PathBuf;

use minidl::data::{self, parse_cifar, parse_idx, Dataset, SplitFractions};
use minidl::nn::{parse_model, takes_images};
use minidl::{Error, Tensor};

/// A labelled data set of `n` rows of `width` values, without a shape.
fn rows(n: usize, width: usize) -> Dataset {
    let x = Tensor::new(&[n, width], (0..n * width).map(|v| v as f32).collect()).unwrap();
    Dataset::new(x, (0..n).map(|i| i % 3).collect(), 3).unwrap()
}

#[test]
fn each_file_kind_gives_the_shape_its_format_fixes() {
    let mnist = data::read_mnist(data::mnist_path()).unwrap();
    assert_eq!(mnist.image_shape(), Some((1, 28, 28)));

    let record: Vec<u8> = std::iter::once(4)
        .chain((0..3 * 32 * 32).map(|v| v as u8))
        .collect();
    let cifar = parse_cifar(&record, &PathBuf::from("one.bin")).unwrap();
    assert_eq!(cifar.image_shape(), Some((3, 32, 32)));

    // Two items of 3×5 (rank 3), of 15 (rank 2) and of 1×3×5 (rank 4), labelled 0, 1.
    let pixels: Vec<u8> = (0..30).collect();
    let labels = parse_idx(&common::idx(0x08, &[2], &[0, 1]), &PathBuf::from("l")).unwrap();
    for (dims, shape) in [
        (&[2, 3, 5][..], Some((1, 3, 5))),
        (&[2, 15], None),
        (&[2, 1, 3, 5], None),
    ] {
        let path = PathBuf::from("images");
        let images = parse_idx(&common::idx(0x08, dims, &pixels), &path).unwrap();
        let d = data::idx_dataset(&images, &path, &labels, &PathBuf::from("l")).unwrap();
        assert_eq!(d.features(), 15, "{dims:?}");
        assert_eq!(d.image_shape(), shape, "{dims:?}");
    }

    assert_eq!(rows(4, 6).image_shape(), None);
}

#[test]
fn the_shape_survives_selections_and_splits_and_follows_the_width() {
    let digits = data::read_mnist(data::mnist_path()).unwrap();
    let fractions = SplitFractions {
        train: 0.5,
        validation: 0.2,
    };
    let parts = data::split(&digits, fractions, 1).unwrap();
    for part in [
        Some(&parts.train),
        parts.validation.as_ref(),
        parts.test.as_ref(),
    ] {
        assert_eq!(part.unwrap().image_shape(), Some((1, 28, 28)));
    }
    let some = digits.select(&[3, 3, 0]).unwrap();
    assert_eq!(some.image_shape(), Some((1, 28, 28)));
    assert_eq!(
        some.labels(),
        &[digits.labels()[3], digits.labels()[3], digits.labels()[0]]
    );

    let halved: Vec<f32> = some.inputs().data().iter().map(|v| v / 2.0).collect();
    let scaled = some
        .with_inputs(Tensor::new(some.inputs().shape(), halved).unwrap())
        .unwrap();
    assert_eq!(scaled.image_shape(), Some((1, 28, 28)));
    let narrower = Tensor::new(&[3, 10], vec![0.0; 30]).unwrap();
    assert_eq!(some.with_inputs(narrower).unwrap().image_shape(), None);
}

#[test]
fn a_shape_must_be_the_rows_width() {
    let d = rows(2, 12).with_image_shape((3, 2, 2)).unwrap();
    assert_eq!(d.image_shape(), Some((3, 2, 2)));
    for shape in [(1, 3, 5), (3, 2, 3), (0, 2, 6), (usize::MAX, 2, 2)] {
        match rows(2, 12).with_image_shape(shape) {
            Err(Error::Shape { detail, .. }) => assert!(detail.contains("rows of 12"), "{detail}"),
            other => panic!("{shape:?}: {other:?}"),
        }
    }
}

#[test]
fn the_class_count_widens_but_never_below_a_label() {
    let d = rows(5, 4).with_image_shape((1, 2, 2)).unwrap();
    let wider = d.clone().with_classes(7).unwrap();
    assert_eq!((wider.classes(), wider.labels()), (7, d.labels()));
    assert_eq!(wider.image_shape(), Some((1, 2, 2)));
    assert_eq!(wider.inputs(), d.inputs());
    // The one-hot targets of the same labels in 7 columns, as `one_hot` writes them.
    assert_eq!(wider.targets(), &data::one_hot(d.labels(), 7).unwrap());
    assert!(d.clone().with_classes(2).is_err());
    let regression = Dataset::regression(Tensor::zeros(&[2, 3]), Tensor::zeros(&[2, 1])).unwrap();
    assert!(regression.with_classes(4).is_err());
}

#[test]
fn lists_that_start_with_an_image_layer_take_images() {
    for (list, images) in [
        ("conv(6,5),relu,flatten,linear(10)", true),
        ("relu,maxpool(2),flatten,linear(10)", true),
        ("upsample(2),conv(1,3)", true),
        ("flatten,linear(10)", true),
        ("leakyrelu(0.1),tanh,flatten,linear(10)", true),
        ("linear(32),relu,linear(10)", false),
        ("relu,linear(10)", false),
        ("relu,sigmoid", false),
    ] {
        let layers = parse_model(list).unwrap();
        assert_eq!(takes_images(&layers), images, "{list}");
    }
    assert!(!takes_images(&[]));
}
