//! The shipped MNIST digits (`datasets/mnist/`) and their reader: the file is the one
//! the README describes (its SHA-256, compressed and not), it reads as 10 000 digits of
//! 784 grey levels with the class counts and pixel sums the package's JSON gave (counted
//! once from the JSON, independently of the converter), and every malformed file —
//! truncated anywhere, another magic, size or count, a bad label, a corrupt gzip
//! stream, arbitrary bytes — is an `Error::Data` naming the file, never a panic.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use minidl::data::{self, mnist_path, parse_mnist, read_mnist, MNIST_MAGIC};
use minidl::Error;
use proptest::prelude::*;

/// SHA-256 of `datasets/mnist/mnist10k.bin.gz`, as the README gives it.
const FILE_SHA256: &str = "a6d962240fa8c8619f3a6c283b9f2a2ff151726291ef1429cdef1f8ac1949a31";
/// SHA-256 of its uncompressed content, as the README gives it.
const CONTENT_SHA256: &str = "7ff28e4be913f614493ede9449401b9b45fee1c7d203bb9f40c7dfdeffc07dca";
/// Images per class in the package's `src/digits/<d>.json` (values / 784).
const PER_CLASS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
/// Σ round(255·v) over each class's JSON values.
const SUM_PER_CLASS: [u64; 10] = [
    35384557, 17658546, 29302421, 29451611, 23872061, 21470939, 27693032, 24828004, 28106735,
    24378694,
];
/// Σ round(255·v) over the first image of each class's JSON file.
const FIRST_IMAGE_SUM: [u64; 10] = [
    31095, 17135, 29601, 35867, 19443, 27525, 28443, 25296, 27106, 23214,
];
/// Pixels that are not 0, over all 10 000 images of the JSON.
const NONZERO: usize = 1502215;

const PIXELS: usize = 784;

/// FIPS 180-4 SHA-256, small and slow: enough for a test to check a file's hash
/// without a new dependency (checked against the standard's vectors below).
fn sha256(bytes: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = bytes.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(bytes.len() as u64 * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[test]
fn the_test_sha256_matches_the_standard_vectors() {
    assert_eq!(
        sha256(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

/// The shipped file's bytes and its uncompressed content.
fn shipped() -> (Vec<u8>, Vec<u8>) {
    let packed = std::fs::read(mnist_path()).expect("datasets/mnist/mnist10k.bin.gz");
    let mut content = Vec::new();
    GzDecoder::new(&packed[..])
        .read_to_end(&mut content)
        .unwrap();
    (packed, content)
}

#[test]
fn the_shipped_file_is_the_one_the_readme_describes() {
    let (packed, content) = shipped();
    assert_eq!(sha256(&packed), FILE_SHA256);
    assert_eq!(sha256(&content), CONTENT_SHA256);
    assert_eq!((packed.len(), content.len()), (1_596_107, 7_850_020));
    let readme = std::fs::read_to_string(mnist_path().with_file_name("README.md")).unwrap();
    assert!(readme.contains(FILE_SHA256) && readme.contains(CONTENT_SHA256));
}

#[test]
fn the_shipped_file_reads_as_the_packages_10000_digits() {
    let d = read_mnist(mnist_path()).unwrap();
    assert_eq!((d.len(), d.features(), d.classes()), (10_000, PIXELS, 10));
    assert!(!d.is_regression());
    let mut per_class = [0usize; 10];
    for &l in d.labels() {
        per_class[l] += 1;
    }
    assert_eq!(per_class, PER_CLASS);
    // Grouped by class, in the package's order: each class's images are one run.
    assert!(d.labels().windows(2).all(|w| w[0] <= w[1]));

    let x = d.inputs().data();
    assert!(x
        .iter()
        .all(|&v| v.fract() == 0.0 && (0.0..=255.0).contains(&v)));
    assert_eq!(x.iter().filter(|&&v| v != 0.0).count(), NONZERO);
    assert!(x.contains(&255.0), "raw grey levels, not divided by 255");
    let mut start = 0;
    for class in 0..10 {
        let rows = &x[start * PIXELS..(start + PER_CLASS[class]) * PIXELS];
        let sum: u64 = rows.iter().map(|&v| v as u64).sum();
        let first: u64 = rows[..PIXELS].iter().map(|&v| v as u64).sum();
        assert_eq!((sum, first), (SUM_PER_CLASS[class], FIRST_IMAGE_SUM[class]));
        start += PER_CLASS[class];
    }
    // The uncompressed content reads the same.
    assert_eq!(parse_mnist(&shipped().1, &mnist_path()).unwrap(), d);
}

/// A file in the format: the header with `count`, `rows`, `cols`, then `body`.
fn file(count: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = MNIST_MAGIC.to_vec();
    for v in [count, rows, cols] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(body);
    bytes
}

/// Three small digits: labels 7, 0, 9; pixel i of digit j is (i + 50 j) mod 256.
fn three() -> Vec<u8> {
    let mut body = vec![7, 0, 9];
    body.extend((0..3 * PIXELS).map(|i| ((i % PIXELS + 50 * (i / PIXELS)) % 256) as u8));
    file(3, 28, 28, &body)
}

fn here() -> PathBuf {
    PathBuf::from("test-input.bin.gz")
}

/// The message of a data-file error about [`here`].
fn data_error(result: minidl::Result<data::Dataset>) -> String {
    common::data_error(result, &here())
}

#[test]
fn a_small_file_reads_exactly_compressed_or_not() {
    let raw = three();
    let d = parse_mnist(&raw, &here()).unwrap();
    assert_eq!(d.labels(), &[7, 0, 9]);
    assert_eq!((d.len(), d.features(), d.classes()), (3, PIXELS, 10));
    let expected: Vec<f32> = raw[23..].iter().map(|&p| p as f32).collect();
    assert_eq!(d.inputs().data(), &expected[..]);
    assert_eq!(
        d.targets().data()[..10],
        [0., 0., 0., 0., 0., 0., 0., 1., 0., 0.]
    );
    assert_eq!(parse_mnist(&common::gzip(&raw), &here()).unwrap(), d);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist/no-such-file.bin.gz");
    let text = read_mnist(&path).unwrap_err().to_string();
    assert!(
        text.contains("no-such-file.bin.gz") && text.contains("cannot open"),
        "{text}"
    );
}

#[test]
fn a_file_truncated_anywhere_is_an_error() {
    let raw = three();
    for len in 0..raw.len() {
        let text = data_error(parse_mnist(&raw[..len], &here()));
        let expected = if len < 20 {
            "truncated"
        } else {
            "truncated: the header's count of 3 digits needs 2355 bytes"
        };
        assert!(text.contains(expected), "length {len}: {text}");
    }
    let packed = common::gzip(&raw);
    for len in 0..packed.len() {
        data_error(parse_mnist(&packed[..len], &here()));
    }
    let (shipped, _) = shipped();
    for len in [
        1,
        10,
        100,
        10_000,
        shipped.len() / 2,
        shipped.len() - 9,
        shipped.len() - 1,
    ] {
        data_error(parse_mnist(&shipped[..len], &here()));
    }
}

#[test]
fn malformed_files_are_errors_that_say_what_is_wrong() {
    let good = three();
    let body = &good[20..];
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        bytes
    };
    let mut longer = good.clone();
    longer.push(0);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with(0, b'm'), "not a minidl MNIST file"),
        (with(7, 2), "not a minidl MNIST file"),
        (b"P5\n28 28\n255\n".to_vec(), "not a minidl MNIST file"),
        (with(20, 10), "digit 0: label 10 is not a digit 0–9"),
        (with(22, 255), "digit 2: label 255 is not a digit 0–9"),
        (file(0, 28, 28, b""), "holds no digits"),
        (
            file(2, 28, 28, body),
            "too long: the header's count of 2 digits",
        ),
        (
            file(4, 28, 28, body),
            "truncated: the header's count of 4 digits",
        ),
        (file(u32::MAX, 28, 28, body), "truncated"),
        (longer, "too long"),
        (
            file(3, 27, 28, body),
            "the images are 27×28 pixels; expected 28×28",
        ),
        (file(3, 28, 0, body), "the images are 28×0 pixels"),
    ];
    for (bytes, expected) in cases {
        for (form, bytes) in [("raw", bytes.clone()), ("gzip", common::gzip(&bytes))] {
            let text = data_error(parse_mnist(&bytes, &here()));
            assert!(text.contains(expected), "{form}: {text}");
        }
    }
}

#[test]
fn corrupt_gzip_streams_are_errors() {
    let packed = common::gzip(&three());
    // A flipped bit in the compressed data or in the CRC, junk after the stream.
    for at in [12, packed.len() / 2, packed.len() - 6] {
        let mut bad = packed.clone();
        bad[at] ^= 0x10;
        data_error(parse_mnist(&bad, &here()));
    }
    let mut junk = packed.clone();
    junk.extend_from_slice(b"junk");
    data_error(parse_mnist(&junk, &here()));
    // A second gzip member is read as a continuation: two files are too long.
    let mut two = packed.clone();
    two.extend_from_slice(&packed);
    assert!(data_error(parse_mnist(&two, &here())).contains("too long"));
}

fn cases(n: u32) -> ProptestConfig {
    common::proptest_config(n, 0x006d_6e69_7374)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_mnist(&bytes, &here());
        let _ = parse_mnist(&common::gzip(&bytes), &here());
    }

    #[test]
    fn arbitrary_bodies_after_a_valid_header_never_panic(
        count in prop_oneof![0u32..4, Just(u32::MAX)],
        body in prop::collection::vec(any::<u8>(), 0..3200),
        gzipped in any::<bool>(),
    ) {
        let mut bytes = file(count, 28, 28, &body);
        if gzipped {
            bytes = common::gzip(&bytes);
        }
        match parse_mnist(&bytes, &here()) {
            Ok(d) => {
                prop_assert_eq!(body.len(), count as usize * 785);
                prop_assert!(body[..count as usize].iter().all(|&l| l <= 9));
                prop_assert_eq!(d.len(), count as usize);
            }
            Err(e) => prop_assert!(matches!(e, Error::Data { .. }), "{}", e),
        }
    }

    #[test]
    fn random_edits_of_a_valid_file_never_panic(
        edits in prop::collection::vec((0usize..2375, any::<u8>()), 1..8),
        cut in 0usize..2400,
    ) {
        let mut bytes = three();
        for (at, byte) in edits {
            bytes[at] = byte;
        }
        bytes.truncate(cut);
        let _ = parse_mnist(&bytes, &here());
        let _ = parse_mnist(&common::gzip(&bytes), &here());
    }
}
