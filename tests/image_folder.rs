//! Folders of PNG images by class: each PNG kind that Pillow (an encoder independent
//! of the `png` crate minidl decodes with) writes reads as the levels it was given, in
//! (C, H, W) order; images the `png` crate writes at every bit depth and colour type
//! read as the format defines them; a folder reads as its classes by sorted name and
//! its images by sorted path, through `data::load` and `train`; a test folder of some
//! of the classes is numbered by the training folder's names; every malformed image
//! or folder is an `Error::Data` naming it, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{encode_png, put};
use minidl::data::{self, parse_png, read_image_folder, LoadOptions};
use minidl::Error;
use proptest::prelude::*;

/// The fixtures Pillow wrote (`tests/data/png/make.py`).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/png")
}

/// A fresh folder for this test's files.
fn folder(name: &str) -> common::TempFolder {
    common::temp_folder(&format!("png-{name}"))
}

/// Samples of `bits` bits (each below 2^bits) packed into rows of `width`, the first
/// sample in the high bits, each row padded to a whole byte (PNG's packing).
fn pack(samples: &[u16], width: usize, bits: usize) -> Vec<u8> {
    let mut rows = Vec::new();
    for row in samples.chunks(width) {
        let mut byte = 0u16;
        let mut used = 0;
        for &s in row {
            byte = (byte << bits) | s;
            used += bits;
            if used == 8 {
                rows.push(byte as u8);
                (byte, used) = (0, 0);
            }
        }
        if used > 0 {
            rows.push((byte << (8 - used)) as u8);
        }
    }
    rows
}

/// `hwc` (pixels of `channels` samples each, row-major) in (C, H, W) order.
fn planes(hwc: &[f32], channels: usize) -> Vec<f32> {
    (0..channels)
        .flat_map(|c| hwc.iter().skip(c).step_by(channels).copied())
        .collect()
}

/// Every kind of PNG that Pillow wrote gives the levels `make.py` stored beside it.
#[test]
fn pillow_images_read_as_their_levels() {
    let kinds = [
        ("grey8", 1),
        ("grey16", 1),
        ("grey1", 1),
        ("greyalpha8", 2),
        ("rgb8", 3),
        ("rgba8", 4),
        ("palette_alpha", 4),
    ];
    for (name, channels) in kinds {
        let path = fixtures().join(format!("{name}.png"));
        let (got, shape) = parse_png(&std::fs::read(&path).unwrap(), &path).unwrap();
        let want = common::read_f32_le(&fixtures().join(format!("{name}.f32")));
        assert_eq!(shape, (channels, 5, 7), "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            // 16-bit levels / 257 are rounded once to f32 on each side.
            assert!(
                (a - b).abs() <= b.abs() * f32::EPSILON,
                "{name}[{i}]: {a} vs {b}"
            );
        }
    }
}

/// Grey at 1, 2, 4, 8 and 16 bits, grey and alpha, RGB and RGBA at 8 and 16, and a
/// palette with and without transparency, on a 3×5 image (rows not a whole number of
/// bytes at the low depths): the levels the PNG specification gives each sample.
#[test]
fn every_bit_depth_and_colour_type_reads_as_the_format_defines() {
    use png::{BitDepth as D, ColorType as T};
    let (w, h) = (5usize, 3usize);
    let n = w * h;
    for (bits, depth) in [(1, D::One), (2, D::Two), (4, D::Four), (8, D::Eight)] {
        let top = (1u16 << bits) - 1;
        let samples: Vec<u16> = (0..n as u16).map(|i| (i * 7 + 3) % (top + 1)).collect();
        let bytes = encode_png((5, 3), T::Grayscale, depth, &pack(&samples, w, bits), None);
        let (got, shape) = parse_png(&bytes, Path::new("grey.png")).unwrap();
        assert_eq!(shape, (1, h, w));
        // Scaled to 8 bits by 255 / (2^bits − 1): 255, 85, 17, 1.
        let want: Vec<f32> = samples
            .iter()
            .map(|&s| f32::from(s * (255 / top)))
            .collect();
        assert_eq!(got, want, "grey at {bits} bits");
    }
    for (colour, channels) in [
        (T::Grayscale, 1),
        (T::GrayscaleAlpha, 2),
        (T::Rgb, 3),
        (T::Rgba, 4),
    ] {
        let eight: Vec<u8> = (0..n * channels).map(|i| (i * 37 % 256) as u8).collect();
        let bytes = encode_png((5, 3), colour, D::Eight, &eight, None);
        let (got, shape) = parse_png(&bytes, Path::new("eight.png")).unwrap();
        assert_eq!(shape, (channels, h, w));
        let hwc: Vec<f32> = eight.iter().map(|&v| f32::from(v)).collect();
        assert_eq!(got, planes(&hwc, channels), "{colour:?} at 8 bits");

        let sixteen: Vec<u16> = (0..n * channels)
            .map(|i| (i * 4099 % 65536) as u16)
            .collect();
        let be: Vec<u8> = sixteen.iter().flat_map(|v| v.to_be_bytes()).collect();
        let bytes = encode_png((5, 3), colour, D::Sixteen, &be, None);
        let (got, _) = parse_png(&bytes, Path::new("sixteen.png")).unwrap();
        let hwc: Vec<f32> = sixteen.iter().map(|&v| f32::from(v) / 257.0).collect();
        assert_eq!(got, planes(&hwc, channels), "{colour:?} at 16 bits");
    }
    let plte: Vec<u8> = (0..4 * 3).map(|i| (i * 21 + 5) as u8).collect();
    let index: Vec<u16> = (0..n as u16).map(|i| i % 4).collect();
    let rows = pack(&index, w, 2);
    for trns in [&[][..], &[0, 128][..]] {
        let bytes = encode_png((5, 3), T::Indexed, D::Two, &rows, Some((&plte, trns)));
        let (got, shape) = parse_png(&bytes, Path::new("palette.png")).unwrap();
        let channels = if trns.is_empty() { 3 } else { 4 };
        assert_eq!(shape, (channels, h, w));
        // Each index's colour; with a tRNS chunk its alpha, 255 past the chunk's end.
        let hwc: Vec<f32> = index
            .iter()
            .flat_map(|&i| {
                let i = usize::from(i);
                let alpha = trns.get(i).copied().unwrap_or(255);
                let rgba = [plte[3 * i], plte[3 * i + 1], plte[3 * i + 2], alpha];
                rgba.into_iter().take(channels).map(f32::from)
            })
            .collect();
        assert_eq!(got, planes(&hwc, channels), "palette, tRNS {trns:?}");
    }
}

/// A grey 2×3 PNG whose every pixel is `level`.
fn flat_png(level: u8) -> Vec<u8> {
    encode_png(
        (3, 2),
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[level; 6],
        None,
    )
}

/// Classes by sorted subfolder name, hidden folders and other files skipped, images
/// by sorted path (nested folders too, `.PNG` too), each a (C, H, W) row; `load`
/// reads the folder the same way.
#[test]
fn a_folder_reads_as_its_classes_by_name_and_images_by_path() {
    let root = folder("classes");
    put(&root, "zebra/b.png", &flat_png(4));
    put(&root, "zebra/a.PNG", &flat_png(3));
    put(&root, "ant/deep/x.png", &flat_png(2));
    put(&root, "ant/1.png", &flat_png(1));
    put(&root, "ant/notes.txt", b"not an image");
    put(&root, ".cache/ignored.png", &flat_png(9));
    put(&root, "loose.png", &flat_png(9));
    // A link back up the tree is walked once, not forever.
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("ant"), root.join("ant/deep/loop")).unwrap();
    let data = read_image_folder(&root).unwrap();
    let names: Vec<&str> = data
        .class_names()
        .unwrap()
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(names, ["ant", "zebra"]);
    assert_eq!(data.classes(), 2);
    assert_eq!(data.labels(), &[0, 0, 1, 1]);
    assert_eq!(data.image_shape(), Some((1, 2, 3)));
    let firsts: Vec<f32> = data.inputs().data().chunks(6).map(|row| row[0]).collect();
    // ant/1.png, ant/deep/x.png, zebra/a.PNG, zebra/b.png.
    assert_eq!(firsts, [1.0, 2.0, 3.0, 4.0]);
    let loaded = data::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.inputs().data(), data.inputs().data());
    assert_eq!(loaded.labels(), data.labels());
    assert_eq!(loaded.class_names(), data.class_names());
}

/// 300 of the shipped MNIST digits (every 33rd: the file is sorted by class) written as 28×28 grey PNGs into one folder per
/// digit (`3/00017.png`), as a user who exported them would: the folder reads as each
/// class's digits in their order, pixel for pixel, shape (1, 28, 28).
#[test]
fn mnist_digits_as_png_folders_read_as_the_digits() {
    let digits = data::read_mnist(data::mnist_path()).unwrap();
    let root = folder("mnist");
    let rows: Vec<usize> = (0..300).map(|i| i * 33).collect();
    for &i in &rows {
        let row = &digits.inputs().data()[i * 784..(i + 1) * 784];
        let pixels: Vec<u8> = row.iter().map(|&p| p as u8).collect();
        let bytes = encode_png(
            (28, 28),
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &pixels,
            None,
        );
        put(&root, &format!("{}/{i:05}.png", digits.labels()[i]), &bytes);
    }
    let data = data::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(data.image_shape(), Some((1, 28, 28)));
    let mut by_class = rows.clone();
    by_class.sort_by_key(|&i| digits.labels()[i]);
    let want = digits.select(&by_class).unwrap();
    assert_eq!(data.inputs().data(), want.inputs().data());
    assert_eq!(data.labels(), want.labels());
    let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    assert_eq!(data.class_names().unwrap(), names);
}

/// A test folder of some of the classes takes the training folder's numbers by name;
/// a class the training folder lacks is an error naming it.
#[test]
fn a_test_folder_is_numbered_by_the_training_folders_names() {
    let (train, test) = (folder("train-names"), folder("test-names"));
    for (i, class) in ["a", "b", "c"].iter().enumerate() {
        put(&train, &format!("{class}/0.png"), &flat_png(i as u8));
    }
    put(&test, "c/0.png", &flat_png(7));
    let names = read_image_folder(&train)
        .unwrap()
        .class_names()
        .unwrap()
        .to_vec();
    let numbered = read_image_folder(&test)
        .unwrap()
        .with_classes_named(&names)
        .unwrap();
    assert_eq!(numbered.labels(), &[2]);
    assert_eq!(numbered.classes(), 3);
    assert_eq!(numbered.targets().data(), &[0.0, 0.0, 1.0]);
    put(&test, "d/0.png", &flat_png(7));
    let text = read_image_folder(&test)
        .unwrap()
        .with_classes_named(&names)
        .unwrap_err()
        .to_string();
    assert!(text.contains("\"d\""), "{text}");
    // Names must be one per class, none twice.
    let two = read_image_folder(&train).unwrap().select(&[0, 1]).unwrap();
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(two
        .clone()
        .with_class_names(names(&["x", "x", "y"]))
        .is_err());
    assert!(two.clone().with_class_names(names(&["x", "y"])).is_err());
    let renamed = two.with_class_names(names(&["x", "y", "z"])).unwrap();
    assert_eq!(renamed.class_names().unwrap(), names(&["x", "y", "z"]));
}

/// Each malformed folder or image: an error naming the folder or file at fault.
#[test]
fn bad_folders_and_images_are_errors_naming_them() {
    let empty = folder("empty");
    let text = common::data_error(read_image_folder(&empty), &empty);
    assert!(text.contains("no class subfolders"), "{text}");

    let root = folder("no-png");
    put(&root, "cat/photo.gif", b"GIF89a");
    let text = common::data_error(read_image_folder(&root), &root.join("cat"));
    assert!(text.contains("no .png, .jpg or .jpeg image"), "{text}");
    // A JPEG image's first bytes and nothing more.
    put(&root, "cat/photo.jpg", b"\xff\xd8\xff");
    let text = common::data_error(read_image_folder(&root), &root.join("cat/photo.jpg"));
    assert!(text.contains("not a JPEG image"), "{text}");

    let root = folder("broken");
    let whole = flat_png(1);
    put(&root, "cat/broken.png", &whole[..whole.len() - 20]);
    let text = common::data_error(read_image_folder(&root), &root.join("cat/broken.png"));
    assert!(text.contains("not a PNG image"), "{text}");

    let root = folder("shapes");
    put(&root, "a/0.png", &flat_png(1));
    let rgb = encode_png(
        (3, 2),
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[0; 18],
        None,
    );
    put(&root, "b/0.png", &rgb);
    let text = common::data_error(read_image_folder(&root), &root.join("b/0.png"));
    assert!(text.contains("3×2×3") && text.contains("1×2×3"), "{text}");
    assert!(
        text.contains(&root.join("a/0.png").display().to_string()),
        "{text}"
    );

    // A header that claims 60 000 × 60 000 RGBA pixels: refused before any allocation.
    let mut huge = flat_png(0);
    huge[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    huge[25] = 6;
    let ihdr_crc = crc(&huge[12..29]);
    huge[29..33].copy_from_slice(&ihdr_crc.to_be_bytes());
    let path = Path::new("huge.png");
    let text = common::data_error(parse_png(&huge, path), path);
    assert!(text.contains("limit"), "{text}");

    // What the fuzzer found: a palette image whose PLTE chunk claims 28 bytes (not
    // whole colours), on which the `png` crate panics.
    let crash = std::fs::read(fixtures().join("palette_of_28_bytes.bin")).unwrap();
    let path = Path::new("crash.png");
    let text = common::data_error(parse_png(&crash, path), path);
    assert!(text.contains("palette of 28 bytes"), "{text}");
}

/// The CRC-32 of a PNG chunk's type and data (ISO 3309, as the PNG specification
/// gives it).
fn crc(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// `train` on an image folder with `--test-data` another one of some of its classes,
/// the image shape taken from the files.
#[test]
fn train_takes_image_folders() {
    let (train, test) = (folder("train-cli"), folder("test-cli"));
    for i in 0..24u8 {
        put(&train, &format!("dark/{i}.png"), &flat_png(i));
        put(&train, &format!("light/{i}.png"), &flat_png(200 + i));
    }
    for i in 0..5u8 {
        put(&test, &format!("light/{i}.png"), &flat_png(210 + i));
    }
    let (train_s, test_s) = (train.display().to_string(), test.display().to_string());
    let args = [
        "--data",
        &train_s,
        "--test-data",
        &test_s,
        "--model",
        "conv(2,2),relu,flatten,linear(8),relu,linear(2)",
        "--epochs",
        "2",
    ];
    let line = common::train_json_on_cpu(&args);
    assert!(line.contains("\"image\":[1,2,3]"), "{line}");
    assert!(
        line.contains("\"class_names\":[\"dark\",\"light\"]"),
        "{line}"
    );
    assert!(
        line.contains("\"rows\":{\"train\":38,\"validation\":10,\"test\":5}"),
        "{line}"
    );
    // The test folder's only class is the training folder's class 1, "light": no test
    // row may count as class 0.
    assert!(line.contains("\"test_confusion\":[[0,0],[0,"), "{line}");
}

proptest! {
    #![proptest_config(common::proptest_config(256, 0x0070_6e67))]

    /// Any bytes, and a valid image with a byte changed or cut anywhere: an image or
    /// an error naming the file, never a panic.
    #[test]
    fn damaged_images_never_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let path = Path::new("fuzzed.png");
        let mut bytes = flat_png(5);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        for bytes in [&noise[..], &bytes[..], &bytes[..cut.index(bytes.len())]] {
            if let Err(e) = parse_png(bytes, path) {
                prop_assert!(matches!(e, Error::Data { .. }), "{e}");
            }
        }
    }
}
