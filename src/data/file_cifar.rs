//! CIFAR-10 and CIFAR-100 in their binary version (Krizhevsky's `cifar-10-batches-bin`
//! and `cifar-100-binary`): records of a label byte (CIFAR-100: a coarse and a fine
//! one) and a 32×32 colour image, its red, green and blue planes one after another,
//! read into a [`Dataset`] whose rows are in PyTorch's (C, H, W) order.

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The side of a CIFAR image in pixels: every image is 3×32×32, 3072 inputs.
pub const CIFAR_SIDE: usize = 32;

/// The pixel bytes of one image: three planes of 32×32.
const PIXELS: usize = 3 * CIFAR_SIDE * CIFAR_SIDE;

/// The two binary CIFAR formats, told apart by their record size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    /// CIFAR-10: one label byte (0–9) and 3072 pixel bytes per record.
    Ten,
    /// CIFAR-100: a coarse label byte (0–19), a fine one (0–99), then 3072 pixel bytes;
    /// the fine label is the class.
    Hundred,
}

impl CifarKind {
    /// The bytes before the pixels of a record.
    fn label_bytes(self) -> usize {
        match self {
            CifarKind::Ten => 1,
            CifarKind::Hundred => 2,
        }
    }

    /// The bytes of one record.
    pub fn record(self) -> usize {
        self.label_bytes() + PIXELS
    }

    /// The number of classes.
    pub fn classes(self) -> usize {
        match self {
            CifarKind::Ten => 10,
            CifarKind::Hundred => 100,
        }
    }
}

/// Reads a binary CIFAR file (as `data_batch_1.bin` or `test_batch.bin` of CIFAR-10,
/// `train.bin` or `test.bin` of CIFAR-100), or a folder's CIFAR-10 training batches
/// (`data_batch_1.bin`, `data_batch_2.bin`, … in that order): one row of 3072 grey
/// levels 0–255 per image, not rescaled, in (C, H, W) order. Fails with
/// [`Error::Data`] when a file cannot be read or is not CIFAR (see [`parse_cifar`]),
/// and for a folder without `data_batch_N.bin` files or whose batches differ in kind.
pub fn read_cifar(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    if !path.is_dir() {
        let bytes = super::compressed::read_bytes(path)?;
        return parse_cifar(&bytes, path);
    }
    let batches = training_batches(path)?;
    let mut kind = None;
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    for batch in &batches {
        let bytes = super::compressed::read_bytes(batch)?;
        let this = cifar_kind(&bytes, batch)?;
        if kind.is_some_and(|k| k != this) {
            return Err(Error::data(
                batch,
                format!("a {this:?} batch among {:?} ones", kind.unwrap_or(this)),
            ));
        }
        kind = Some(this);
        decode(&bytes, batch, this, &mut inputs, &mut labels)?;
    }
    dataset(kind.unwrap_or(CifarKind::Ten), inputs, labels)
}

/// Whether `folder` holds CIFAR-10 training batches (`data_batch_N.bin` files).
pub(crate) fn has_training_batches(folder: &Path) -> bool {
    training_batches(folder).is_ok()
}

/// The `data_batch_N.bin` files of `folder`, by N.
fn training_batches(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| Error::data(folder, format!("cannot list: {e}")))?;
    let mut batches: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::data(folder, format!("cannot list: {e}")))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix("data_batch_"))
            .and_then(|n| n.strip_suffix(".bin"))
            .and_then(|n| n.parse().ok());
        if let Some(n) = number {
            batches.push((n, entry.path()));
        }
    }
    if batches.is_empty() {
        return Err(Error::data(
            folder,
            "the folder holds no CIFAR-10 training batches (data_batch_1.bin, …) and no class subfolders of PNG or JPEG images",
        ));
    }
    batches.sort();
    Ok(batches.into_iter().map(|(_, p)| p).collect())
}

/// The kind whose record size divides the file's length. Fails when none does, when
/// both do, and for an empty file.
pub fn cifar_kind(bytes: &[u8], path: &Path) -> Result<CifarKind> {
    let fits = |k: CifarKind| bytes.len().is_multiple_of(k.record());
    match (bytes.is_empty(), fits(CifarKind::Ten), fits(CifarKind::Hundred)) {
        (true, _, _) => Err(Error::data(path, "the file is empty")),
        (false, true, false) => Ok(CifarKind::Ten),
        (false, false, true) => Ok(CifarKind::Hundred),
        (false, true, true) => Err(Error::data(
            path,
            format!(
                "{} bytes are whole records of CIFAR-10 (3073 bytes) and of CIFAR-100 (3074): the kind cannot be told",
                bytes.len()
            ),
        )),
        (false, false, false) => Err(Error::data(
            path,
            format!(
                "not a CIFAR file: {} bytes are whole records neither of CIFAR-10 (a label and 3072 pixels, 3073 bytes) nor of CIFAR-100 (3074 bytes)",
                bytes.len()
            ),
        )),
    }
}

/// [`read_cifar`] on one file's bytes (`path` names it in errors): the kind from the
/// record size ([`cifar_kind`]), then every record. Fails on a label past the kind's
/// classes (a CIFAR-100 coarse label past 19 too), naming the record. Never panics.
pub fn parse_cifar(bytes: &[u8], path: &Path) -> Result<Dataset> {
    let kind = cifar_kind(bytes, path)?;
    let (mut inputs, mut labels) = (Vec::new(), Vec::new());
    decode(bytes, path, kind, &mut inputs, &mut labels)?;
    dataset(kind, inputs, labels)
}

/// The decoded images (3072 values each) with their labels, of `kind`'s classes.
fn dataset(kind: CifarKind, inputs: Vec<f32>, labels: Vec<usize>) -> Result<Dataset> {
    let rows = labels.len();
    Dataset::new(
        Tensor::new(&[rows, PIXELS], inputs)?,
        labels,
        kind.classes(),
    )?
    .with_image_shape((3, CIFAR_SIDE, CIFAR_SIDE))
}

/// Appends the records of `bytes` (whole records of `kind`) to `inputs` and `labels`.
fn decode(
    bytes: &[u8],
    path: &Path,
    kind: CifarKind,
    inputs: &mut Vec<f32>,
    labels: &mut Vec<usize>,
) -> Result<()> {
    inputs.reserve(bytes.len() / kind.record() * PIXELS);
    for (i, record) in bytes.chunks_exact(kind.record()).enumerate() {
        let (head, pixels) = record.split_at(kind.label_bytes());
        let label = usize::from(head[head.len() - 1]);
        let coarse_bad = kind == CifarKind::Hundred && head[0] > 19;
        if label >= kind.classes() || coarse_bad {
            return Err(Error::data(
                path,
                format!(
                    "record {i}: label bytes {head:?} are not a {} label",
                    match kind {
                        CifarKind::Ten => "CIFAR-10 (0–9)",
                        CifarKind::Hundred => "CIFAR-100 (coarse 0–19, fine 0–99)",
                    }
                ),
            ));
        }
        labels.push(label);
        inputs.extend(pixels.iter().map(|&p| f32::from(p)));
    }
    Ok(())
}
