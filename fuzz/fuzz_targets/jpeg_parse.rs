//! Fuzzes the JPEG reader of image folders: any bytes, parsed as an image file (told
//! apart by its first bytes, as an image folder reads it; the seeds are the Pillow
//! fixtures of `tests/data/jpeg`: grey, RGB at three chroma subsamplings, progressive,
//! CMYK), must give levels from 0 to 255 of a whole (C, H, W) image or an error naming
//! the file, never a panic, a hang, an out-of-bounds access (the fuzzer builds with
//! AddressSanitizer) or an allocation past the decoded-size limit. Run it with
//! `mkdir -p fuzz/corpus/jpeg_parse && cargo +nightly fuzz run jpeg_parse fuzz/corpus/jpeg_parse fuzz/seeds/jpeg_parse`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::data::parse_image;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz_image.jpg");
    match parse_image(data, path) {
        Ok((levels, (c, h, w))) => {
            assert!((1..=4).contains(&c));
            assert_eq!(levels.len(), c * h * w);
            assert!(levels.iter().all(|v| (0.0..=255.0).contains(v)));
        }
        Err(e) => assert!(e.to_string().contains("fuzz_image.jpg"), "{e}"),
    }
});
