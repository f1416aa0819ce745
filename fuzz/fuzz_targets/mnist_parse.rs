//! Fuzzes the MNIST reader: any bytes, parsed as minidl's MNIST file (raw or
//! gzip-compressed: the seeds hold one of each, so that both the header checks and the
//! gzip path are reached), must give `Ok` or an error, never a panic, a hang or an
//! out-of-bounds access (the fuzzer builds with AddressSanitizer). Run it with
//! `mkdir -p fuzz/corpus/mnist_parse && cargo +nightly fuzz run mnist_parse fuzz/corpus/mnist_parse fuzz/seeds/mnist_parse`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::data::parse_mnist;

fuzz_target!(|data: &[u8]| {
    let _ = parse_mnist(data, Path::new("fuzz-input.bin.gz"));
});
