//! MNIST digits in minidl's compact file (a header, one label byte and 28×28 pixel
//! bytes per digit, usually gzip-compressed) read into a [`Dataset`]; the repository
//! ships 10 000 of them in `datasets/mnist/` (see its README for the source, the
//! conversion and the licences).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::compressed::{corrupt, parse_content, read_body, read_up_to};
use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The first 8 bytes of the (uncompressed) file: `MNISTu8` and the format version, 1.
pub const MNIST_MAGIC: [u8; 8] = *b"MNISTu8\x01";

/// The side of an MNIST image in pixels: every digit is 28×28, 784 inputs.
pub const MNIST_SIDE: usize = 28;

/// The header's length: the magic, then the digit count, the rows and the columns, each
/// a little-endian `u32`.
const HEADER: usize = 20;

/// The digits the repository ships, `datasets/mnist/mnist10k.bin.gz` under the crate's
/// source folder (`CARGO_MANIFEST_DIR` at build time). The file lives in the
/// repository, not in the published crate: from a crates.io copy this path does not
/// exist and [`read_mnist`] says so.
pub fn mnist_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist/mnist10k.bin.gz")
}

/// Reads a file of MNIST digits (gzip-compressed, as shipped, or not): one row of 784
/// pixels per digit, row by row, as `f32` grey levels from 0 (background) to 255 (ink),
/// not rescaled, with labels 0–9 (always 10 classes). The digits keep the file's order,
/// which for the shipped file is grouped by class: shuffle or [`split`](super::split)
/// before taking a part. Fails with [`Error::Data`] when the file cannot be read, is
/// not a valid gzip stream, has another magic or image size, holds no digits, holds
/// fewer or more bytes than its count says, or has a label over 9.
pub fn read_mnist(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = super::compressed::read_bytes(path)?;
    parse_mnist(&bytes, path)
}

/// [`read_mnist`] on the file's bytes (`path` names it in errors). Never panics; it
/// allocates no more than the decompressed data (up to the size the header claims).
pub fn parse_mnist(bytes: &[u8], path: &Path) -> Result<Dataset> {
    parse_content(bytes, |reader, form| parse_from(reader, path, form))
}

/// Parses the uncompressed form read from `reader`; `form` describes it in messages.
fn parse_from(reader: &mut dyn Read, path: &Path, form: &str) -> Result<Dataset> {
    let mut header = [0u8; HEADER];
    let got = read_up_to(reader, &mut header).map_err(corrupt(path))?;
    let magic_len = got.min(MNIST_MAGIC.len());
    if header[..magic_len] != MNIST_MAGIC[..magic_len] {
        return Err(Error::data(
            path,
            format!(
                "not a minidl MNIST file: its {form}content starts {:02x?}, expected {:02x?} (\"MNISTu8\" and version 1)",
                &header[..magic_len],
                MNIST_MAGIC
            ),
        ));
    }
    if got < HEADER {
        return Err(Error::data(
            path,
            format!(
                "truncated: {got} bytes of {form}content, shorter than the {HEADER}-byte header"
            ),
        ));
    }
    let field =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (count, rows, cols) = (field(8), field(12), field(16));
    if rows as usize != MNIST_SIDE || cols as usize != MNIST_SIDE {
        return Err(Error::data(
            path,
            format!("the images are {rows}×{cols} pixels; expected {MNIST_SIDE}×{MNIST_SIDE}"),
        ));
    }
    if count == 0 {
        return Err(Error::data(path, "the file holds no digits (count 0)"));
    }
    let count = count as usize;
    let pixels = MNIST_SIDE * MNIST_SIDE;
    let body = count
        .checked_mul(pixels + 1)
        .filter(|b| b.checked_mul(4).is_some())
        .ok_or_else(|| Error::data(path, format!("{count} digits are too many to hold")))?;
    let needs = format!("the header's count of {count} digits needs");
    let what = format!("bytes after the header (a label and {pixels} pixels each)");
    let rest = read_body(reader, body, path, form, (&needs, &what))?;
    let (labels, pixels) = rest.split_at(count);
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(Error::data(
            path,
            format!("digit {i}: label {} is not a digit 0–9", labels[i]),
        ));
    }
    let inputs = Tensor::new(
        &[count, MNIST_SIDE * MNIST_SIDE],
        pixels.iter().map(|&p| f32::from(p)).collect(),
    )?;
    Dataset::new(inputs, labels.iter().map(|&l| usize::from(l)).collect(), 10)?
        .with_image_shape((1, MNIST_SIDE, MNIST_SIDE))
}
