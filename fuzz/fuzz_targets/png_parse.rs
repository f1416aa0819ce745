//! Fuzzes the PNG reader of image folders: any bytes, parsed as a PNG image (the seeds
//! are the Pillow fixtures of `tests/data/png`: grey at 1, 8 and 16 bits, grey and
//! alpha, RGB, RGBA, a 2-bit palette with transparency), must give levels from 0 to
//! 255 of a whole (C, H, W) image or an error naming the file, never a panic, a hang,
//! an out-of-bounds access (the fuzzer builds with AddressSanitizer) or an allocation
//! past the decoded-size limit. Run it with
//! `mkdir -p fuzz/corpus/png_parse && cargo +nightly fuzz run png_parse fuzz/corpus/png_parse fuzz/seeds/png_parse`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::data::parse_png;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz_image.png");
    match parse_png(data, path) {
        Ok((levels, (c, h, w))) => {
            assert!((1..=4).contains(&c));
            assert_eq!(levels.len(), c * h * w);
            assert!(levels.iter().all(|v| (0.0..=255.0).contains(v)));
        }
        Err(e) => assert!(e.to_string().contains("fuzz_image.png"), "{e}"),
    }
});
