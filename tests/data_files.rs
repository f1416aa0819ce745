//! Data from files: CSV (plain and gzip), NPY and safetensors read into data sets, and
//! every bad file an error that names the file, the line or row, the column and what
//! was expected, never a panic. Also the split, the scaler and the metrics against
//! their definitions.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use minidl::data::{
    self, read_csv, Column, CsvOptions, Header, LoadOptions, SplitFractions, Standardizer, Target,
};
use minidl::metrics::{mean_squared_error, r2_score, Confusion};
use minidl::{Error, Tensor};
use safetensors::tensor::{Dtype, TensorView};

/// A fresh folder for this test's files.
fn folder(name: &str) -> common::TempFolder {
    common::temp_folder(&format!("data-{name}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn labels() -> LoadOptions {
    LoadOptions::default()
}

#[test]
fn csv_with_a_header_reads_labels_by_name_and_regression_targets() {
    let dir = folder("csv-good");
    let path = write(
        &dir,
        "points.csv",
        b"x, y, class, size\n0.5, 1, 2, 10\n-1.5, 2e-1, 0, 20\n3, 4, 1, 30\n",
    );
    let by_name = LoadOptions {
        header: Header::Auto,
        target: Target::Label(Column::Name("class".into())),
    };
    let d = data::load(&path, &by_name).unwrap();
    assert_eq!(d.labels(), &[2, 0, 1]);
    assert_eq!(d.classes(), 3);
    assert_eq!(d.inputs().shape(), &[3, 3]);
    assert_eq!(
        d.inputs().data(),
        &[0.5, 1.0, 10.0, -1.5, 0.2, 20.0, 3.0, 4.0, 30.0]
    );
    let by_index = LoadOptions {
        header: Header::Yes,
        target: Target::Label(Column::Index(2)),
    };
    assert_eq!(data::load(&path, &by_index).unwrap(), d);
    let regression = LoadOptions {
        header: Header::Auto,
        target: Target::Values(vec![Column::Name("size".into()), Column::Index(0)]),
    };
    let r = data::load(&path, &regression).unwrap();
    assert!(r.is_regression());
    assert_eq!(r.targets().data(), &[10.0, 0.5, 20.0, -1.5, 30.0, 3.0]);
    assert_eq!(r.inputs().data(), &[1.0, 2.0, 0.2, 0.0, 4.0, 1.0]);
}

#[test]
fn gzip_csv_without_a_header_reads_as_the_plain_file() {
    let dir = folder("csv-gz");
    let text = b"1,2,0\n3,4,1\n5,6,1\n";
    let plain = write(&dir, "d.csv", text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    let packed = write(&dir, "d.csv.gz", &gz.finish().unwrap());
    let a = data::load(&plain, &labels()).unwrap();
    assert_eq!(a, data::load(&packed, &labels()).unwrap());
    assert_eq!(
        a.len(),
        3,
        "an all-number first line is data under Header::Auto"
    );
}

#[test]
fn the_shipped_digits_load_with_ten_classes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/digits/digits.csv.gz");
    let d = data::load(&path, &labels()).unwrap();
    assert_eq!((d.len(), d.features(), d.classes()), (1797, 64, 10));
    assert!(d.inputs().data().iter().all(|&v| (0.0..=16.0).contains(&v)));
}

#[test]
fn bad_csv_files_name_the_line_column_and_what_was_expected() {
    let dir = folder("csv-bad");
    let cases: [(&str, &[u8], LoadOptions, &str); 13] = [
        ("empty.csv", b"", labels(), "the file is empty"),
        (
            "header_only.csv",
            b"a,b,label\n",
            labels(),
            "the file has a header but no data rows",
        ),
        (
            "ragged.csv",
            b"1,2,0\n3,4\n",
            labels(),
            "line 2 has 2 fields, expected 3 as on the first line",
        ),
        (
            "word.csv",
            b"a,b,label\n1,2,0\n3,four,1\n",
            labels(),
            "line 3, column 1 (\"b\"): \"four\" is not a number",
        ),
        (
            "nan.csv",
            b"1,2,0\n3,NaN,1\n",
            labels(),
            "line 2, column 1: NaN is not a finite number",
        ),
        (
            "inf.csv",
            b"1,2,0\n-inf,4,1\n",
            labels(),
            "line 2, column 0: -inf is not a finite number",
        ),
        (
            "blank.csv",
            b"1,,0\n",
            labels(),
            "line 1, column 1: the field is empty, expected a number",
        ),
        (
            "fraction.csv",
            b"1,2,0\n3,4,1.5\n",
            labels(),
            "line 2, column 2: the label 1.5 is not a class index",
        ),
        (
            "gaps.csv",
            b"x,y,label\n\n1,2,0\r\n\r\n\n3,4,1.5\n",
            labels(),
            "line 6, column 2 (\"label\"): the label 1.5 is not a class index",
        ),
        (
            "negative.csv",
            b"x,label\n1,0\n3,-1\n",
            labels(),
            "line 3, column 1 (\"label\"): the label -1 is not a class index",
        ),
        (
            "no_such_name.csv",
            b"x,label\n1,0\n",
            LoadOptions {
                header: Header::Auto,
                target: Target::Label(Column::Name("class".into())),
            },
            "no column named \"class\"; the columns are x, label",
        ),
        (
            "index.csv",
            b"1,0\n",
            LoadOptions {
                header: Header::No,
                target: Target::Label(Column::Index(5)),
            },
            "column index 5 is out of range: the file has 2 columns",
        ),
        (
            "one_column.csv",
            b"0\n1\n",
            labels(),
            "every column is a target: no input column is left",
        ),
    ];
    for (name, bytes, options, expected) in cases {
        let path = write(&dir, name, bytes);
        let text = common::data_error(data::load(&path, &options), &path);
        assert!(text.contains(expected), "{name}: {text}");
    }
    let missing = dir.join("missing.csv");
    assert!(
        common::data_error(read_csv(&missing, &CsvOptions::default()), &missing)
            .contains("cannot open")
    );
    let corrupt = write(&dir, "corrupt.csv.gz", b"this is not gzip");
    assert!(
        common::data_error(data::load(&corrupt, &labels()), &corrupt).contains("reading failed")
    );
    let unknown = write(&dir, "data.txt", b"1,0\n");
    assert!(
        common::data_error(data::load(&unknown, &labels()), &unknown).contains("unknown format")
    );
}

/// The bytes of a version 1.0 `.npy` file of `descr` and `shape` holding `data`.
fn npy(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn le<T: Copy, const N: usize>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

#[test]
fn npy_arrays_of_floats_and_integers_in_either_order_read_alike() {
    let dir = folder("npy");
    // Rows (1, 2, 0), (3, 4, 1).
    let c_f64 = write(
        &dir,
        "c.npy",
        &npy(
            "<f8",
            false,
            &[2, 3],
            &le(&[1.0f64, 2.0, 0.0, 3.0, 4.0, 1.0], f64::to_le_bytes),
        ),
    );
    let f_i64 = write(
        &dir,
        "f.npy",
        &npy(
            "<i8",
            true,
            &[2, 3],
            &le(&[1i64, 3, 2, 4, 0, 1], i64::to_le_bytes),
        ),
    );
    let big_f32 = write(
        &dir,
        "b.npy",
        &npy(
            ">f4",
            false,
            &[2, 3],
            &le(&[1.0f32, 2.0, 0.0, 3.0, 4.0, 1.0], f32::to_be_bytes),
        ),
    );
    let want = data::load(&c_f64, &labels()).unwrap();
    assert_eq!(want.inputs().data(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(want.labels(), &[0, 1]);
    assert_eq!(data::load(&f_i64, &labels()).unwrap(), want);
    assert_eq!(data::load(&big_f32, &labels()).unwrap(), want);
}

#[test]
fn bad_npy_files_say_what_is_wrong() {
    let dir = folder("npy-bad");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "garbage.npy",
            b"not numpy at all".to_vec(),
            "not a valid .npy file",
        ),
        (
            "cube.npy",
            npy(
                "<f8",
                false,
                &[1, 1, 2],
                &le(&[1.0f64, 2.0], f64::to_le_bytes),
            ),
            "expected [rows, columns] or [rows]",
        ),
        (
            "strings.npy",
            npy("<U1", false, &[2], &le(&[65u32, 66], u32::to_le_bytes)),
            "is not a real or integer number type",
        ),
        (
            "nan.npy",
            npy(
                "<f4",
                false,
                &[2, 2],
                &le(&[1.0f32, 0.0, f32::NAN, 1.0], f32::to_le_bytes),
            ),
            "row 1, column 0: NaN is not a finite number",
        ),
        (
            "empty.npy",
            npy("<f8", false, &[0, 3], &[]),
            "the array is empty",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = write(&dir, name, &bytes);
        let text = common::data_error(data::load(&path, &labels()), &path);
        assert!(text.contains(expected), "{name}: {text}");
    }
}

/// A tensor of a test file: name, dtype, shape, little-endian bytes.
type Stored<'a> = (&'a str, Dtype, Vec<usize>, Vec<u8>);

fn safetensors_file(dir: &Path, name: &str, tensors: &[Stored]) -> PathBuf {
    let views: HashMap<String, TensorView> = tensors
        .iter()
        .map(|(n, dtype, shape, bytes)| {
            (
                n.to_string(),
                TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(&views, None).unwrap();
    write(dir, name, &bytes)
}

#[test]
fn safetensors_tensors_become_named_columns() {
    let dir = folder("st");
    let path = safetensors_file(
        &dir,
        "d.safetensors",
        &[
            (
                "inputs",
                Dtype::F32,
                vec![3, 2],
                le(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], f32::to_le_bytes),
            ),
            (
                "labels",
                Dtype::I64,
                vec![3],
                le(&[2i64, 0, 1], i64::to_le_bytes),
            ),
        ],
    );
    let options = LoadOptions {
        header: Header::Auto,
        target: Target::Label(Column::Name("labels".into())),
    };
    let d = data::load(&path, &options).unwrap();
    assert_eq!(d.inputs().data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(d.labels(), &[2, 0, 1]);
    let regression = LoadOptions {
        header: Header::Auto,
        target: Target::Values(vec![Column::Name("inputs.1".into())]),
    };
    let r = data::load(&path, &regression).unwrap();
    assert_eq!(r.targets().data(), &[2.0, 4.0, 6.0]);
}

#[test]
fn bad_safetensors_files_say_what_is_wrong() {
    let dir = folder("st-bad");
    let f32s = |v: &[f32]| le(v, f32::to_le_bytes);
    let cases: [(&str, Vec<Stored>, &str); 3] = [
        (
            "rows.safetensors",
            vec![
                ("a", Dtype::F32, vec![2, 1], f32s(&[1.0, 2.0])),
                ("b", Dtype::F32, vec![3], f32s(&[1.0, 2.0, 3.0])),
            ],
            "tensor \"b\" has 3 rows, the tensors before it 2",
        ),
        (
            "half.safetensors",
            vec![("a", Dtype::F16, vec![2], vec![0, 60, 0, 60])],
            "tensor \"a\" has dtype F16",
        ),
        (
            "inf.safetensors",
            vec![(
                "a",
                Dtype::F32,
                vec![2, 2],
                f32s(&[1.0, 2.0, 3.0, f32::INFINITY]),
            )],
            "tensor \"a\", row 1, column 1: inf is not a finite number",
        ),
    ];
    for (name, tensors, expected) in cases {
        let path = safetensors_file(&dir, name, &tensors);
        let text = common::data_error(data::load(&path, &labels()), &path);
        assert!(text.contains(expected), "{name}: {text}");
    }
    let garbage = write(&dir, "garbage.safetensors", b"\x01\x00");
    assert!(
        common::data_error(data::load(&garbage, &labels()), &garbage)
            .contains("not a valid safetensors file")
    );
}

fn dataset(n: usize) -> data::Dataset {
    let inputs = Tensor::new(&[n, 2], (0..2 * n).map(|i| i as f32).collect()).unwrap();
    data::Dataset::new(inputs, (0..n).map(|i| i % 3).collect(), 3).unwrap()
}

#[test]
fn a_split_deals_every_row_once_in_the_stated_sizes_the_same_for_a_seed() {
    let d = dataset(101);
    let fractions = SplitFractions {
        train: 0.6,
        validation: 0.2,
    };
    let s = data::split(&d, fractions, 7).unwrap();
    assert_eq!(s.rows[0].len(), 61); // round(60.6)
    assert_eq!(s.rows[1].len(), 20); // round(20.2)
    assert_eq!(s.rows[2].len(), 20);
    let mut all: Vec<usize> = s.rows.concat();
    all.sort_unstable();
    assert_eq!(all, (0..101).collect::<Vec<_>>());
    for (part, rows) in [Some(&s.train), s.validation.as_ref(), s.test.as_ref()]
        .into_iter()
        .zip(&s.rows)
    {
        let part = part.unwrap();
        for (i, &r) in rows.iter().enumerate() {
            assert_eq!(part.inputs().row(i).unwrap(), d.inputs().row(r).unwrap());
            assert_eq!(part.labels()[i], d.labels()[r]);
        }
    }
    assert_eq!(data::split(&d, fractions, 7).unwrap(), s);
    assert_ne!(data::split(&d, fractions, 8).unwrap().rows, s.rows);
    for bad in [(0.0, 0.2), (0.9, 0.2), (f64::NAN, 0.1), (0.5, -0.1)] {
        let f = SplitFractions {
            train: bad.0,
            validation: bad.1,
        };
        assert!(
            matches!(data::split(&d, f, 0), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn the_scaler_centres_and_scales_by_the_population_deviation() {
    // Column 0 varies, column 1 is constant (scale 1), column 2 is large.
    let rows: [[f64; 3]; 4] = [
        [1.0, 5.0, 1e4],
        [2.0, 5.0, 3e4],
        [4.0, 5.0, 2e4],
        [9.0, 5.0, 6e4],
    ];
    let t = Tensor::new(&[4, 3], rows.iter().flatten().map(|&v| v as f32).collect()).unwrap();
    let s = Standardizer::fit(&t).unwrap();
    for c in 0..3 {
        let mean = rows.iter().map(|r| r[c]).sum::<f64>() / 4.0;
        let var = rows.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / 4.0;
        let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        assert_eq!(s.mean()[c], mean as f32, "column {c}");
        assert!(
            (s.scale()[c] as f64 - scale).abs() <= 1e-6 * scale,
            "column {c}"
        );
    }
    let out = s.transform(&t).unwrap();
    for (i, v) in out.data().iter().enumerate() {
        let c = i % 3;
        assert_eq!(*v, (t.data()[i] - s.mean()[c]) / s.scale()[c]);
    }
    let round_trip = Standardizer::from_tensors(&s.tensors().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(round_trip, s);
    let wrong = Tensor::new(&[1, 2], vec![0.0, 0.0]).unwrap();
    assert!(matches!(s.transform(&wrong), Err(Error::Shape { .. })));
}

#[test]
fn metrics_follow_their_definitions() {
    let labels = [0, 0, 1, 1, 1, 2];
    let predicted = [0, 1, 1, 1, 0, 0];
    let c = Confusion::new(&labels, &predicted, 4).unwrap();
    assert_eq!(c.rows()[0], vec![1, 1, 0, 0]);
    assert_eq!(c.rows()[1], vec![1, 2, 0, 0]);
    assert_eq!(c.rows()[2], vec![1, 0, 0, 0]);
    let right = labels
        .iter()
        .zip(&predicted)
        .filter(|(l, p)| l == p)
        .count();
    assert_eq!(c.accuracy(), right as f64 / labels.len() as f64);
    assert_eq!(
        c.per_class_accuracy(),
        vec![Some(0.5), Some(2.0 / 3.0), Some(0.0), None]
    );
    assert!(Confusion::new(&[0, 4], &[0, 1], 4).is_err());

    let targets = Tensor::new(&[4, 2], vec![1.0, 0.0, 2.0, 1.0, 3.0, 0.0, 4.0, 1.0]).unwrap();
    assert_eq!(r2_score(&targets, &targets).unwrap(), 1.0);
    // Predicting each column's mean scores 0.
    let means = Tensor::new(&[4, 2], vec![2.5, 0.5, 2.5, 0.5, 2.5, 0.5, 2.5, 0.5]).unwrap();
    assert!(r2_score(&means, &targets).unwrap().abs() < 1e-12);
    let off = Tensor::new(&[4, 2], vec![1.5, 0.0, 2.0, 1.0, 3.0, 0.0, 4.0, 0.5]).unwrap();
    let d: Vec<f64> = off
        .data()
        .iter()
        .zip(targets.data())
        .map(|(&p, &t)| (p - t) as f64)
        .collect();
    let mse = d.iter().map(|x| x * x).sum::<f64>() / 8.0;
    assert_eq!(mean_squared_error(&off, &targets).unwrap(), mse);
    // Column 0: residual 0.25 over spread 5; column 1: residual 0.25 over spread 1.
    let want = ((1.0 - 0.25 / 5.0) + (1.0 - 0.25 / 1.0)) / 2.0;
    assert!((r2_score(&off, &targets).unwrap() - want).abs() < 1e-12);
}
