//! Fuzzes the IDX reader: any bytes, parsed as an IDX file (raw or gzip-compressed: the
//! seeds hold one of each), must give an array or an error, never a panic, a hang or an
//! out-of-bounds access (the fuzzer builds with AddressSanitizer); an array's values
//! are all read, and the array is paired with itself as inputs and labels (a
//! one-dimensional array of class indices is a valid data set). Run it with
//! `mkdir -p fuzz/corpus/idx_parse && cargo +nightly fuzz run idx_parse fuzz/corpus/idx_parse fuzz/seeds/idx_parse`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::data::{idx_dataset, parse_idx};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-images-idx3-ubyte.gz");
    if let Ok(array) = parse_idx(data, path) {
        assert_eq!(array.values().count(), array.len());
        // One-hot targets up to the library's 2^30 values would exceed AddressSanitizer's
        // memory limit: pair only arrays whose classes keep them small.
        let classes = array.values().fold(0.0f64, f64::max) + 1.0;
        if classes * array.len() as f64 <= (1 << 20) as f64 {
            let _ = idx_dataset(&array, path, &array, path);
        }
    }
});
