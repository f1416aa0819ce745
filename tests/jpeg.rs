//! JPEG images: the grey and colour JPEGs that Pillow wrote (baseline and progressive,
//! three chroma subsamplings, sizes a multiple of no block) read as the levels that
//! Pillow's own decoder, libjpeg-turbo, gives them, within the few levels by which two
//! JPEG decoders may differ; an image folder mixes PNG and JPEG images, told apart by
//! their bytes; CMYK images, oversized headers and damaged bytes are an `Error::Data`
//! naming the file, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{encode_png, put};
use minidl::data::{self, parse_image, parse_jpeg, read_image_folder, LoadOptions};
use minidl::Error;
use proptest::prelude::*;

/// The fixtures Pillow wrote (`tests/data/jpeg/make.py`).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jpeg")
}

/// The bytes of fixture `name`.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// The levels libjpeg-turbo decoded from fixture `name` (`name.f32`, (C, H, W)).
fn libjpeg_levels(name: &str) -> Vec<f32> {
    common::read_f32_le(&fixtures().join(format!("{name}.f32")))
}

/// A fresh folder for this test's files.
fn folder(name: &str) -> common::TempFolder {
    common::temp_folder(&format!("jpeg-{name}"))
}

/// An 8-bit PNG of `width × height` pixels of `colour`, all at `level`.
fn flat_png((width, height): (u32, u32), colour: png::ColorType, level: u8) -> Vec<u8> {
    let samples = (width * height) as usize * colour.samples();
    encode_png(
        (width, height),
        colour,
        png::BitDepth::Eight,
        &vec![level; samples],
        None,
    )
}

/// Every fixture reads in (C, H, W) order within the levels two conforming decoders
/// may differ by: the standard lets each inverse DCT be off by one level (so two by
/// two decoders), and in colour the YCbCr conversion rounds once more (three). A
/// systematic offset (a channel or the conversion off by one everywhere) would move
/// the mean difference to about one level, so that is held under half a level.
#[test]
fn pillow_jpegs_read_within_a_few_levels_of_libjpeg() {
    let kinds = [
        ("grey", 1, 2.0),
        ("rgb444", 3, 3.0),
        ("rgb422", 3, 3.0),
        ("rgb420", 3, 3.0),
        ("rgb420_progressive", 3, 3.0),
    ];
    for (name, channels, bound) in kinds {
        let path = fixtures().join(format!("{name}.jpg"));
        let bytes = std::fs::read(&path).unwrap();
        let (got, shape) = parse_jpeg(&bytes, &path).unwrap();
        let want = libjpeg_levels(name);
        assert_eq!(shape, (channels, 11, 13), "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        let mut total = 0.0;
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= bound, "{name}[{i}]: {a} vs libjpeg's {b}");
            total += (a - b).abs();
        }
        let mean = total / got.len() as f32;
        assert!(mean < 0.5, "{name}: mean difference {mean}");
        assert_eq!(parse_image(&bytes, &path).unwrap(), (got, shape), "{name}");
    }
}

/// A CMYK image is refused by name; so are a header claiming 65 535 × 65 535 pixels
/// (12 GiB decoded, over the limit: refused before decoding, which would allocate
/// planes of that size first), one claiming more pixels than the file can code, and
/// bytes that are neither PNG nor JPEG.
#[test]
fn unread_kinds_and_oversized_headers_are_errors_naming_the_file() {
    let path = fixtures().join("cmyk.jpg");
    let text = common::data_error(parse_jpeg(&fixture("cmyk.jpg"), &path), &path);
    assert!(text.contains("CMYK"), "{text}");

    let mut huge = fixture("rgb444.jpg");
    let sof = huge
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline frame header");
    // After the marker: length (2 bytes), precision (1), height (2), width (2).
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    let path = Path::new("huge.jpg");
    let text = common::data_error(parse_jpeg(&huge, path), path);
    assert!(text.contains("limit"), "{text}");
    // 4000 × 4000 pixels (48 MB decoded, under the limit) in 810 bytes, which hold at
    // most one bit for each of the image's 8×8 blocks, 250 000 of them.
    huge[sof + 5..sof + 9].copy_from_slice(&[0x0F, 0xA0, 0x0F, 0xA0]);
    let text = common::data_error(parse_jpeg(&huge, path), path);
    assert!(text.contains("4000×4000 pixels, more than its"), "{text}");

    let path = Path::new("text.jpg");
    let text = common::data_error(parse_image(b"GIF89a not an image", path), path);
    assert!(text.contains("neither a PNG nor a JPEG"), "{text}");
}

/// A folder of JPEG and PNG images by class: each file read by its bytes (a `.jpg`
/// name holding a PNG image too), the rows its images' levels, through
/// `read_image_folder` and `data::load` alike; a shape that differs between a PNG and
/// a JPEG image is an error naming both.
#[test]
fn a_folder_mixes_png_and_jpeg_images() {
    let root = folder("mixed");
    let jpeg = fixture("rgb444.jpg");
    let png = flat_png((13, 11), png::ColorType::Rgb, 40);
    put(&root, "a/photo.JPG", &jpeg);
    put(&root, "a/z.jpeg", &fixture("rgb420.jpg"));
    put(&root, "b/drawn.png", &png);
    put(&root, "b/renamed.jpg", &png);
    put(&root, "b/notes.txt", b"skipped");
    let set = read_image_folder(&root).unwrap();
    assert_eq!(set.labels(), &[0, 0, 1, 1]);
    assert_eq!(set.image_shape(), Some((3, 11, 13)));
    let row = |i: usize| set.inputs().data()[i * 429..(i + 1) * 429].to_vec();
    let (photo, _) = parse_jpeg(&jpeg, Path::new("photo.JPG")).unwrap();
    assert_eq!(row(0), photo);
    assert_eq!(row(1), parse_jpeg(&fixture("rgb420.jpg"), &root).unwrap().0);
    assert!(row(2).iter().chain(&row(3)).all(|&v| v == 40.0));
    let loaded = data::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.inputs().data(), set.inputs().data());

    put(&root, "c/grey.jpg", &fixture("grey.jpg"));
    let text = common::data_error(read_image_folder(&root), &root.join("c/grey.jpg"));
    assert!(
        text.contains("1×11×13") && text.contains("3×11×13"),
        "{text}"
    );
}

/// `train` on a folder of grey JPEG images with a convolution, the shape taken from
/// the files.
#[test]
fn train_takes_a_folder_of_jpeg_images() {
    let root = folder("train");
    let grey = fixture("grey.jpg");
    for i in 0..12 {
        put(&root, &format!("jpeg/{i}.jpg"), &grey);
        put(
            &root,
            &format!("png/{i}.png"),
            &flat_png((13, 11), png::ColorType::Grayscale, 20 * i),
        );
    }
    let data = root.display().to_string();
    let args = [
        "--data",
        &data,
        "--model",
        "conv(2,3),relu,flatten,linear(2)",
        "--epochs",
        "1",
    ];
    let line = common::train_json_on_cpu(&args);
    assert!(line.contains("\"image\":[1,11,13]"), "{line}");
    assert!(
        line.contains("\"class_names\":[\"jpeg\",\"png\"]"),
        "{line}"
    );
}

proptest! {
    #![proptest_config(common::proptest_config(256, 0x006a_7067))]

    /// A valid image with a byte changed or cut anywhere, and any bytes after a
    /// start-of-image marker: an image or an error naming the file, never a panic.
    #[test]
    fn damaged_jpegs_never_panic(
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        kind in 0usize..3,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let path = Path::new("fuzzed.jpg");
        let names = ["grey.jpg", "rgb420.jpg", "rgb420_progressive.jpg"];
        let mut bytes = fixture(names[kind]);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let noisy: Vec<u8> = [0xFF, 0xD8, 0xFF].iter().chain(&noise).copied().collect();
        for bytes in [&noisy[..], &bytes[..], &bytes[..cut.index(bytes.len())]] {
            match parse_image(bytes, path) {
                Ok((levels, (c, h, w))) => {
                    prop_assert!(c == 1 || c == 3);
                    prop_assert_eq!(levels.len(), c * h * w);
                }
                Err(e) => {
                    prop_assert!(matches!(e, Error::Data { .. }), "{}", e);
                    prop_assert!(e.to_string().contains("fuzzed.jpg"), "{}", e);
                }
            }
        }
    }
}
