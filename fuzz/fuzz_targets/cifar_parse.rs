//! Fuzzes the CIFAR reader: any bytes, parsed as a CIFAR-10 or CIFAR-100 binary file
//! (the seeds hold two records of each kind), must give a data set of whole 3×32×32
//! records or an error, never a panic, a hang or an out-of-bounds access (the fuzzer
//! builds with AddressSanitizer). Run it with
//! `mkdir -p fuzz/corpus/cifar_parse && cargo +nightly fuzz run cifar_parse fuzz/corpus/cifar_parse fuzz/seeds/cifar_parse`.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::data::{cifar_kind, parse_cifar};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz_batch.bin");
    let kind = cifar_kind(data, path);
    match parse_cifar(data, path) {
        Ok(set) => {
            // A data set only where the kind was told, of whole records.
            assert!(kind.is_ok());
            assert_eq!(set.features(), 3 * 32 * 32);
            assert_eq!(set.image_shape(), Some((3, 32, 32)));
            assert!(set.labels().iter().all(|&l| l < set.classes()));
        }
        Err(e) => assert!(e.to_string().contains("fuzz_batch.bin"), "{e}"),
    }
});
