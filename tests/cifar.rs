//! CIFAR-10 and CIFAR-100 in their binary version, written record by record as the
//! data set's page describes them (a label byte, or a coarse and a fine one, then the
//! red, green and blue 32×32 planes): they read as rows in (C, H, W) order with their
//! labels, a folder as its `data_batch_N.bin` files in N's order, through `data::load`
//! and `train`; a `.bin` that is a minidl MNIST file still reads as one; every
//! malformed file is an `Error::Data` naming it, never a panic.

mod common;

use std::path::{Path, PathBuf};

use minidl::data::{self, cifar_kind, parse_cifar, read_cifar, CifarKind, LoadOptions};
use minidl::Error;
use proptest::prelude::*;

const PLANE: usize = 32 * 32;

/// A fresh folder for this test's files.
fn folder(name: &str) -> common::TempFolder {
    common::temp_folder(&format!("cifar-{name}"))
}

/// The pixel at channel `c`, row `h`, column `w` of image `i`: every position its own
/// value (mod 256).
fn pixel(i: usize, c: usize, h: usize, w: usize) -> u8 {
    (i * 7 + c * 101 + h * 13 + w * 3) as u8
}

/// Records with these label bytes, each followed by its three planes, row by row.
fn records(labels: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, head) in labels.iter().enumerate() {
        bytes.extend_from_slice(head);
        for c in 0..3 {
            for h in 0..32 {
                bytes.extend((0..32).map(|w| pixel(i, c, h, w)));
            }
        }
    }
    bytes
}

fn here() -> PathBuf {
    PathBuf::from("test_batch.bin")
}

#[test]
fn records_read_as_rows_in_channel_height_width_order() {
    let ten = parse_cifar(&records(&[&[3], &[0], &[9]]), &here()).unwrap();
    assert_eq!(
        (ten.len(), ten.features(), ten.classes()),
        (3, 3 * PLANE, 10)
    );
    assert_eq!(ten.labels(), &[3, 0, 9]);
    let hundred = parse_cifar(&records(&[&[19, 99], &[0, 5]]), &here()).unwrap();
    assert_eq!((hundred.len(), hundred.classes()), (2, 100));
    assert_eq!(hundred.labels(), &[99, 5]);
    for (d, n) in [(&ten, 3), (&hundred, 2)] {
        let x = d.inputs().data();
        for i in 0..n {
            for (c, h, w) in [(0, 0, 0), (0, 0, 31), (1, 5, 7), (2, 31, 0), (2, 31, 31)] {
                let at = i * 3 * PLANE + c * PLANE + h * 32 + w;
                assert_eq!(x[at], f32::from(pixel(i, c, h, w)), "{i} {c} {h} {w}");
            }
        }
    }
    assert_eq!(
        cifar_kind(&records(&[&[1]]), &here()).unwrap(),
        CifarKind::Ten
    );
}

#[test]
fn a_folder_reads_its_training_batches_in_order_and_load_tells_the_formats_apart() {
    let dir = folder("batches");
    // Batches 1, 2 and 10 (in that order, not the names'), and files that are no batch.
    std::fs::write(dir.join("data_batch_10.bin"), records(&[&[7]])).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), records(&[&[5], &[6]])).unwrap();
    std::fs::write(dir.join("data_batch_1.bin"), records(&[&[1]])).unwrap();
    std::fs::write(dir.join("test_batch.bin"), records(&[&[2]])).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), "airplane\n").unwrap();
    // A subfolder does not make it an image folder while it holds batches.
    std::fs::create_dir_all(dir.join("extracted")).unwrap();
    let all = data::load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(all.labels(), &[1, 5, 6, 7]);
    assert_eq!(all, read_cifar(&dir).unwrap());
    let second = parse_cifar(&records(&[&[5], &[6]]), &here()).unwrap();
    assert_eq!(
        all.inputs().data()[3 * PLANE..9 * PLANE],
        second.inputs().data()[..]
    );
    let test = data::load(dir.join("test_batch.bin"), &LoadOptions::default()).unwrap();
    assert_eq!(test.labels(), &[2]);
    // A `.bin` that is a minidl MNIST file, unpacked, still reads as one.
    let packed = std::fs::read(data::mnist_path()).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut raw).unwrap();
    let mnist = dir.join("mnist.bin");
    std::fs::write(&mnist, raw).unwrap();
    let digits = data::load(&mnist, &LoadOptions::default()).unwrap();
    assert_eq!(digits, data::read_mnist(data::mnist_path()).unwrap());
}

#[test]
fn malformed_files_and_folders_are_errors_that_say_what_is_wrong() {
    let both = vec![0u8; 3073 * 3074];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "the file is empty"),
        (
            vec![0; 3072],
            "not a CIFAR file: 3072 bytes are whole records neither",
        ),
        (both, "the kind cannot be told"),
        (
            records(&[&[1], &[10]]),
            "record 1: label bytes [10] are not a CIFAR-10 (0–9) label",
        ),
        (records(&[&[19, 100]]), "record 0: label bytes [19, 100]"),
        (
            records(&[&[0, 1], &[20, 1]]),
            "record 1: label bytes [20, 1]",
        ),
    ];
    for (bytes, expected) in cases {
        let text = common::data_error(parse_cifar(&bytes, &here()), &here());
        assert!(text.contains(expected), "{text}");
    }
    let empty = folder("empty");
    let text = common::data_error(read_cifar(&empty), &empty);
    assert!(text.contains("no CIFAR-10 training batches"), "{text}");
    let mixed = folder("mixed");
    std::fs::write(mixed.join("data_batch_1.bin"), records(&[&[1]])).unwrap();
    let hundred = mixed.join("data_batch_2.bin");
    std::fs::write(&hundred, records(&[&[1, 1]])).unwrap();
    let text = common::data_error(read_cifar(&mixed), &hundred);
    assert!(text.contains("a Hundred batch among Ten ones"), "{text}");
    let missing = Path::new("/nonexistent/data_batch_1.bin");
    assert!(common::data_error(read_cifar(missing), missing).contains("cannot open"));
}

/// `train` on a folder of batches with `--test-data` its test batch, as a user runs it
/// on the unpacked `cifar-10-batches-bin`.
#[test]
fn train_takes_a_folder_of_batches_and_its_test_batch() {
    let dir = folder("train");
    let labels: Vec<[u8; 1]> = (0..40).map(|i| [(i % 10) as u8]).collect();
    let heads: Vec<&[u8]> = labels.iter().map(|l| &l[..]).collect();
    std::fs::write(dir.join("data_batch_1.bin"), records(&heads[..30])).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), records(&heads[30..])).unwrap();
    let test = dir.join("test_batch.bin");
    std::fs::write(&test, records(&heads[..20])).unwrap();
    let (dir_s, test_s) = (dir.display().to_string(), test.display().to_string());
    let args = [
        "--data",
        &dir_s,
        "--test-data",
        &test_s,
        "--image",
        "3,32,32",
        "--model",
        "conv(4,5,stride=2),relu,maxpool(2),flatten,linear(10)",
        "--epochs",
        "1",
    ];
    let line = common::train_json_on_cpu(&args);
    assert!(
        line.contains("\"rows\":{\"train\":32,\"validation\":8,\"test\":20}"),
        "{line}"
    );
}

proptest! {
    #![proptest_config(common::proptest_config(256, 0x0063_6966))]

    /// Whole records with any label bytes, a byte changed, or cut anywhere: a data set
    /// or an error naming the file, never a panic.
    #[test]
    fn damaged_files_never_panic(
        heads in proptest::collection::vec(any::<u8>(), 1..4),
        hundred in any::<bool>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let width = if hundred { 2 } else { 1 };
        let labels: Vec<&[u8]> = heads.chunks(width).collect();
        let mut bytes = records(&labels);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        for bytes in [&bytes[..], &bytes[..cut.index(bytes.len())]] {
            if let Err(e) = parse_cifar(bytes, &here()) {
                prop_assert!(matches!(e, Error::Data { .. }), "{e}");
            }
        }
    }
}
