//! IDX files (LeCun's MNIST format, also Fashion-MNIST's and EMNIST's): the shipped
//! digits written as an images file and a labels file by the format's description read
//! back equal to what the minidl MNIST reader gives, through `data::load` and the
//! naming that pairs the two files; every number type decodes big-endian to the values
//! written; and every malformed file (truncated anywhere, another magic, type, rank or
//! size, labels that do not match, a corrupt gzip stream, arbitrary bytes) is an
//! `Error::Data` naming the file at fault, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{gzip, idx, mnist_as_idx};
use minidl::data::{
    self, idx_dataset, idx_labels_path, parse_idx, read_idx, read_idx_pair, read_mnist, read_npy,
    Dataset, IdxType, LoadOptions,
};
use minidl::Error;
use proptest::prelude::*;

/// A fresh folder for this test's files.
fn folder(name: &str) -> common::TempFolder {
    common::temp_folder(&format!("idx-{name}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The shipped digits, and the same as an IDX images file and labels file.
fn shipped_as_idx() -> (Dataset, Vec<u8>, Vec<u8>) {
    let digits = read_mnist(data::mnist_path()).unwrap();
    let (images, labels) = mnist_as_idx(&digits);
    (digits, images, labels)
}

fn here() -> PathBuf {
    PathBuf::from("test-images-idx3-ubyte.gz")
}

#[test]
fn the_shipped_digits_as_idx_files_load_as_the_mnist_reader_reads_them() {
    let dir = folder("shipped");
    let (digits, images, labels) = shipped_as_idx();
    // MNIST's own names, compressed; the labels found beside the images.
    let train = write(&dir, "train-images-idx3-ubyte.gz", &gzip(&images));
    write(&dir, "train-labels-idx1-ubyte.gz", &gzip(&labels));
    let loaded = data::load(&train, &LoadOptions::default()).unwrap();
    assert_eq!(loaded, digits);
    assert_eq!((loaded.features(), loaded.classes()), (784, 10));
    // Kaggle's names, images unpacked and labels compressed; an upper-case name.
    let test = write(&dir, "t10k-images.idx3-ubyte", &images);
    write(&dir, "t10k-labels.idx1-ubyte.gz", &gzip(&labels));
    assert_eq!(data::load(&test, &LoadOptions::default()).unwrap(), digits);
    let upper = write(&dir, "EMNIST-DIGITS-TRAIN-IMAGES-IDX3-UBYTE", &images);
    write(&dir, "EMNIST-DIGITS-TRAIN-LABELS-IDX1-UBYTE", &labels);
    assert_eq!(data::load(&upper, &LoadOptions::default()).unwrap(), digits);
    // Any two files paired by hand.
    let a = write(&dir, "pixels.idx", &images);
    let b = write(&dir, "classes.idx", &gzip(&labels));
    assert_eq!(read_idx_pair(&a, &b).unwrap(), digits);
}

#[test]
fn the_labels_file_follows_from_the_images_files_name() {
    let dir = folder("names");
    let cases = [
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        ("train-images.idx3-ubyte", "train-labels.idx1-ubyte"),
        (
            "emnist-balanced-test-images-idx3-ubyte.gz",
            "emnist-balanced-test-labels-idx1-ubyte.gz",
        ),
        ("Train-Images-IDX3-ubyte", "Train-Labels-IDX1-ubyte"),
        ("images-idx12-ubyte", "labels-idx1-ubyte"),
    ];
    for (images, labels) in cases {
        assert_eq!(
            idx_labels_path(&dir.join(images)),
            Some(dir.join(labels)),
            "{images}"
        );
    }
    // Where only the other compression exists, that one.
    write(&dir, "a-labels-idx1-ubyte", b"");
    assert_eq!(
        idx_labels_path(&dir.join("a-images-idx3-ubyte.gz")),
        Some(dir.join("a-labels-idx1-ubyte"))
    );
    write(&dir, "b-labels-idx1-ubyte.gz", b"");
    assert_eq!(
        idx_labels_path(&dir.join("b-images-idx3-ubyte")),
        Some(dir.join("b-labels-idx1-ubyte.gz"))
    );
    for no_pair in ["train-idx3-ubyte", "train-images-idx-ubyte", "images"] {
        assert_eq!(idx_labels_path(&dir.join(no_pair)), None, "{no_pair}");
    }
}

/// Writes one value big-endian in an IDX type.
type Encoder = fn(f64) -> Vec<u8>;

#[test]
fn every_number_type_reads_big_endian_as_written() {
    let u8s: Vec<f64> = vec![0.0, 1.0, 128.0, 255.0, 7.0, 9.0];
    let i8s: Vec<f64> = vec![-128.0, -1.0, 0.0, 1.0, 100.0, 127.0];
    let i16s: Vec<f64> = vec![-32768.0, -300.0, 0.0, 258.0, 1000.0, 32767.0];
    let i32s: Vec<f64> = vec![-2147483648.0, -70000.0, 0.0, 16777217.0, 5.0, 2147483647.0];
    let f32s: Vec<f64> = vec![-1.5, 0.0, 0.1f32 as f64, 3.25, -0.0, 1e30f32 as f64];
    let f64s: Vec<f64> = vec![-1.5, 0.0, 0.1, 3.25e-300, 1e300, std::f64::consts::PI];
    let cases: [(u8, IdxType, &[f64], Encoder); 6] = [
        (0x08, IdxType::U8, &u8s, |v| vec![v as u8]),
        (0x09, IdxType::I8, &i8s, |v| {
            (v as i8).to_be_bytes().to_vec()
        }),
        (0x0B, IdxType::I16, &i16s, |v| {
            (v as i16).to_be_bytes().to_vec()
        }),
        (0x0C, IdxType::I32, &i32s, |v| {
            (v as i32).to_be_bytes().to_vec()
        }),
        (0x0D, IdxType::F32, &f32s, |v| {
            (v as f32).to_be_bytes().to_vec()
        }),
        (0x0E, IdxType::F64, &f64s, |v| v.to_be_bytes().to_vec()),
    ];
    for (code, dtype, values, encode) in cases {
        let body: Vec<u8> = values.iter().flat_map(|&v| encode(v)).collect();
        for dims in [&[6][..], &[3, 2], &[2, 1, 3]] {
            let bytes = idx(code, dims, &body);
            for bytes in [bytes.clone(), gzip(&bytes)] {
                let array = parse_idx(&bytes, &here()).unwrap();
                assert_eq!(array.dtype(), dtype);
                assert_eq!(
                    array.dims(),
                    dims.iter().map(|&d| d as usize).collect::<Vec<_>>()
                );
                assert_eq!((array.items(), array.len()), (dims[0] as usize, 6));
                assert_eq!(array.item_len(), 6 / dims[0] as usize);
                let read: Vec<f64> = array.values().collect();
                assert_eq!(read, values, "{dtype:?} {dims:?}");
                // As a data set's inputs, each value is the f32 nearest it, in each
                // type's own path (bytes convert in one pass, the rest decode); a value
                // beyond f32's range (f64's 1e300) is refused.
                let zeros = vec![0; dims[0] as usize];
                let labels = parse_idx(&idx(0x08, &dims[..1], &zeros), &here()).unwrap();
                let rows = idx_dataset(&array, &here(), &labels, &here());
                let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                match as_f32.iter().all(|v| v.is_finite()) {
                    true => assert_eq!(rows.unwrap().inputs().data(), &as_f32[..]),
                    false => assert!(rows.is_err(), "{dtype:?}"),
                }
            }
        }
        assert_eq!(dtype.size(), body.len() / 6);
        assert_eq!(dtype.is_integer(), code < 0x0D);
    }
}

/// The fixtures idx2numpy wrote (`tests/data/idx/make.py`): each IDX file reads as the
/// values NumPy wrote beside it, with the dimensions and type it was given, and the
/// images with their labels as the data set of those values.
#[test]
fn files_written_by_idx2numpy_read_as_numpy_wrote_them() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/idx");
    let cases: [(&str, IdxType, &[usize]); 7] = [
        ("images_u8.idx.gz", IdxType::U8, &[4, 3, 5]),
        ("labels_u8.idx", IdxType::U8, &[4]),
        ("values_i8.idx", IdxType::I8, &[3, 4]),
        ("values_i16.idx", IdxType::I16, &[2, 3, 2]),
        ("values_i32.idx.gz", IdxType::I32, &[5]),
        ("values_f32.idx", IdxType::F32, &[3, 2]),
        ("values_f64.idx", IdxType::F64, &[2, 2, 2]),
    ];
    for (name, dtype, dims) in cases {
        let array = read_idx(dir.join(name)).unwrap();
        let stem = name.split('.').next().unwrap();
        let numpy = read_npy(dir.join(format!("{stem}.npy"))).unwrap();
        assert_eq!((array.dtype(), array.dims()), (dtype, dims), "{name}");
        assert_eq!((numpy.rows, numpy.cols), (array.items(), array.item_len()));
        assert_eq!(array.values().collect::<Vec<_>>(), numpy.values, "{name}");
    }
    let pair = read_idx_pair(dir.join("images_u8.idx.gz"), dir.join("labels_u8.idx")).unwrap();
    let pixels = read_npy(dir.join("images_u8.npy")).unwrap();
    let labels = read_npy(dir.join("labels_u8.npy")).unwrap();
    let expected: Vec<f32> = pixels.values.iter().map(|&v| v as f32).collect();
    assert_eq!(pair.inputs().data(), &expected[..]);
    let classes: Vec<usize> = labels.values.iter().map(|&v| v as usize).collect();
    assert_eq!(pair.labels(), &classes[..]);
}

#[test]
fn items_of_any_rank_become_rows_and_integer_labels_of_any_type_become_classes() {
    let dir = folder("ranks");
    // Three items of 2×2 i16 values, labelled by i32 class indices 4, 0, 2.
    let values: [i16; 12] = [1, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -300];
    let body: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let inputs = write(&dir, "x.idx", &idx(0x0B, &[3, 2, 2], &body));
    let classes: Vec<u8> = [4i32, 0, 2].iter().flat_map(|v| v.to_be_bytes()).collect();
    let labels = write(&dir, "y.idx", &idx(0x0C, &[3, 1], &classes));
    let d = read_idx_pair(&inputs, &labels).unwrap();
    assert_eq!((d.len(), d.features(), d.classes()), (3, 4, 5));
    assert_eq!(d.labels(), &[4, 0, 2]);
    let expected: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();
    assert_eq!(d.inputs().data(), &expected[..]);
    // A one-dimensional inputs file is one value per row; float labels that are whole.
    let one = write(&dir, "one.idx", &idx(0x08, &[3], &[9, 8, 7]));
    let floats: Vec<u8> = [1.0f32, 0.0, 1.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let float_labels = write(&dir, "f.idx", &idx(0x0D, &[3], &floats));
    let d = read_idx_pair(&one, &float_labels).unwrap();
    assert_eq!((d.features(), d.labels()), (1, &[1, 0, 1][..]));
}

#[test]
fn a_file_truncated_anywhere_is_an_error_that_says_so() {
    let good = idx(0x0B, &[3, 2], &[0; 12]);
    for len in 0..good.len() {
        let text = common::data_error(parse_idx(&good[..len], &here()), &here());
        assert!(text.contains("truncated"), "length {len}: {text}");
        if len < 4 {
            assert!(text.contains("shorter than the 4-byte IDX magic"), "{text}");
        }
        if len >= 12 {
            assert!(
                text.contains("the dimensions [3, 2] of 2-byte values need 12 bytes"),
                "length {len}: {text}"
            );
        }
    }
    let packed = gzip(&good);
    for len in 0..packed.len() {
        common::data_error(parse_idx(&packed[..len], &here()), &here());
    }
}

#[test]
fn malformed_files_are_errors_that_say_what_is_wrong() {
    let mut longer = idx(0x08, &[2, 2], &[1, 2, 3, 4]);
    longer.push(5);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (idx(0x08, &[2], &[1, 2])[1..].to_vec(), "not an IDX file"),
        (b"MNISTu8\x01".to_vec(), "not an IDX file"),
        (
            b"P".to_vec(),
            "content starts [50], expected two zero bytes",
        ),
        (vec![0, 1, 8, 1, 0, 0, 0, 1, 0], "not an IDX file"),
        (idx(0x0A, &[1], &[0]), "IDX type byte 0x0a is none of"),
        (idx(0x0F, &[1], &[0]), "IDX type byte 0x0f"),
        (idx(0x08, &[], &[0]), "no dimensions (rank 0)"),
        (idx(0x08, &[2, 0], &[]), "dimension 1 of [2, 0] is 0"),
        (
            longer,
            "too long: the dimensions [2, 2] of 1-byte values need 4 bytes",
        ),
        (
            idx(0x0E, &[u32::MAX, u32::MAX, u32::MAX], &[]),
            "are too large to hold",
        ),
        (idx(0x0C, &[u32::MAX], &[0; 8]), "truncated"),
    ];
    for (bytes, expected) in cases {
        for (form, bytes) in [("raw", bytes.clone()), ("gzip", gzip(&bytes))] {
            let text = common::data_error(parse_idx(&bytes, &here()), &here());
            assert!(text.contains(expected), "{form}: {text}");
        }
    }
    let packed = gzip(&idx(0x08, &[2, 2], &[1, 2, 3, 4]));
    for at in [12, packed.len() / 2, packed.len() - 6] {
        let mut bad = packed.clone();
        bad[at] ^= 0x10;
        common::data_error(parse_idx(&bad, &here()), &here());
    }
}

#[test]
fn pairs_that_do_not_match_are_errors_naming_the_file_at_fault() {
    let dir = folder("pairs");
    let images = write(
        &dir,
        "x-images-idx3-ubyte",
        &idx(0x08, &[2, 1, 2], &[1, 2, 3, 4]),
    );
    let nan: Vec<u8> = [1.0f32, f32::NAN]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let nan_images = write(&dir, "nan.idx", &idx(0x0D, &[1, 2], &nan));
    let label_file = |name: &str, bytes: Vec<u8>| write(&dir, name, &bytes);
    let three = label_file("three.idx", idx(0x08, &[3], &[0, 1, 2]));
    let wide = label_file("wide.idx", idx(0x08, &[2, 2], &[0, 1, 2, 3]));
    let negative = label_file("negative.idx", idx(0x09, &[2], &[0, 0xff]));
    let half: Vec<u8> = [0.0f32, 1.5].iter().flat_map(|v| v.to_be_bytes()).collect();
    let fraction = label_file("fraction.idx", idx(0x0D, &[2], &half));
    let huge: Vec<u8> = [0i32, 1 << 24]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let too_large = label_file("huge.idx", idx(0x0C, &[2], &huge));
    let one = label_file("one.idx", idx(0x08, &[1], &[0]));
    // 100 labels, one of them 2²⁴ - 1: 1.7·10⁹ one-hot values from a 400-byte file.
    let hundred = write(&dir, "hundred.idx", &idx(0x08, &[100], &[0; 100]));
    let mut far: Vec<u8> = vec![0; 400];
    far[396..].copy_from_slice(&((1i32 << 24) - 1).to_be_bytes());
    let far_class = label_file("far.idx", idx(0x0C, &[100], &far));
    let cases = [
        (&images, &three, &three, "3 labels for the 2 items of"),
        (
            &images,
            &wide,
            &wide,
            "one value per item, but its dimensions are [2, 2]",
        ),
        (
            &images,
            &negative,
            &negative,
            "item 1: the label -1 is not a class index",
        ),
        (
            &images,
            &fraction,
            &fraction,
            "item 1: the label 1.5 is not a class index",
        ),
        (
            &images,
            &too_large,
            &too_large,
            "item 1: the label 16777216",
        ),
        (
            &nan_images,
            &one,
            &nan_images,
            "item 0, value 1: NaN is not a finite number",
        ),
        (
            &hundred,
            &far_class,
            &far_class,
            "100 labels of 16777216 classes make one-hot",
        ),
    ];
    for (inputs, labels, at_fault, expected) in cases {
        let text = common::data_error(read_idx_pair(inputs, labels), at_fault);
        assert!(text.contains(expected), "{text}");
    }
    // Through `load`: no labels beside the images, a labels file given as the data, a
    // name from which no labels file follows.
    let text = common::data_error(data::load(&images, &LoadOptions::default()), &images);
    assert!(
        text.contains("x-labels-idx1-ubyte does not exist"),
        "{text}"
    );
    let labels = write(&dir, "x-labels-idx1-ubyte", &idx(0x08, &[2], &[3, 1]));
    let text = common::data_error(data::load(&labels, &LoadOptions::default()), &labels);
    assert!(text.contains("this is a labels file (idx1)"), "{text}");
    assert_eq!(
        data::load(&images, &LoadOptions::default())
            .unwrap()
            .labels(),
        &[3, 1]
    );
    let nameless = write(
        &dir,
        "data-idx3-ubyte",
        &idx(0x08, &[2, 1, 2], &[1, 2, 3, 4]),
    );
    let text = common::data_error(data::load(&nameless, &LoadOptions::default()), &nameless);
    assert!(
        text.contains("no labels file follows from this name"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(common::proptest_config(512, 0x0069_6478))]

    /// Arbitrary bytes, raw or compressed, are an array or an error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_idx(&bytes, &here());
        let _ = parse_idx(&gzip(&bytes), &here());
    }

    /// A valid file with one byte changed, or cut short, is an array or an error naming
    /// the file; a valid file reads back its dimensions and values.
    #[test]
    fn valid_files_read_back_and_damaged_ones_never_panic(
        code in prop::sample::select(vec![0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
        dims in proptest::collection::vec(1u32..4, 1..4),
        seed in any::<u64>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let dtype = IdxType::from_code(code).unwrap();
        let count: u32 = dims.iter().product();
        let len = count as usize * dtype.size();
        // Any bytes are values of any type (a float's NaN included).
        let body: Vec<u8> = (0..len)
            .map(|i| (seed.rotate_left(8 * i as u32) as u8) ^ i as u8)
            .collect();
        let good = idx(code, &dims, &body);
        let array = parse_idx(&good, &here()).unwrap();
        prop_assert_eq!(array.dims(), dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
        prop_assert_eq!(array.len(), count as usize);
        let mut bad = good.clone();
        let i = at.index(bad.len());
        bad[i] = byte;
        if let Err(e) = parse_idx(&bad, &here()) {
            prop_assert!(matches!(e, Error::Data { .. }), "{e}");
        }
        let short = &good[..cut.index(good.len())];
        prop_assert!(parse_idx(short, &here()).is_err());
    }
}
