//! IDX files, the format of LeCun's original MNIST files and of the data sets made in
//! its image (Fashion-MNIST, KMNIST, EMNIST): an array of any rank in one of six
//! big-endian number types ([`IdxArray`]), usually gzip-compressed, and an images file
//! paired with its labels file into a [`Dataset`].

use std::io::Read;
use std::path::{Path, PathBuf};

use super::compressed::{corrupt, parse_content, read_body, read_up_to};
use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The number type of an IDX file's values: the third byte of its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned bytes (MNIST's pixels and labels).
    U8,
    /// `0x09`: signed bytes.
    I8,
    /// `0x0B`: 16-bit signed integers.
    I16,
    /// `0x0C`: 32-bit signed integers.
    I32,
    /// `0x0D`: 32-bit floats.
    F32,
    /// `0x0E`: 64-bit floats.
    F64,
}

impl IdxType {
    /// The type the magic's third byte names, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// The bytes of one value.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Whether the type holds whole numbers only.
    pub fn is_integer(self) -> bool {
        !matches!(self, IdxType::F32 | IdxType::F64)
    }

    /// The big-endian value in `b` (exactly [`size`](Self::size) bytes).
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            IdxType::U8 => f64::from(b[0]),
            IdxType::I8 => f64::from(b[0] as i8),
            IdxType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
            IdxType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            IdxType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            IdxType::F64 => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }
}

/// An IDX file's array: its number type, its dimensions (the first one counts the
/// items: images, labels) and its values as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dtype: IdxType,
    dims: Vec<usize>,
    /// The values, big-endian, `dims`' product × the type's size bytes.
    body: Vec<u8>,
}

impl IdxArray {
    /// The number type.
    pub fn dtype(&self) -> IdxType {
        self.dtype
    }

    /// The dimensions, outermost first; each at least 1.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The number of items: the first dimension.
    pub fn items(&self) -> usize {
        self.dims[0]
    }

    /// The values of one item: the product of the dimensions after the first (1 for a
    /// one-dimensional array).
    pub fn item_len(&self) -> usize {
        self.dims[1..].iter().product()
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.body.len() / self.dtype.size()
    }

    /// Whether the array holds no values (never, for an array that was read).
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The values in the file's order (the last dimension varies fastest), as `f64`:
    /// exact for every type.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.body
            .chunks_exact(self.dtype.size())
            .map(|b| self.dtype.decode(b))
    }
}

/// Reads an IDX file (gzip-compressed or not; the content decides, not the name).
/// Fails with [`Error::Data`] when the file cannot be read or is not a valid IDX array
/// (see [`parse_idx`]).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes = super::compressed::read_bytes(path)?;
    parse_idx(&bytes, path)
}

/// [`read_idx`] on the file's bytes (`path` names it in errors). Fails on a corrupt
/// gzip stream, a magic that does not start with two zero bytes, an unknown type byte,
/// no dimensions, a dimension of 0, and content shorter or longer than the dimensions
/// say. Never panics; it allocates no more than the decompressed data (up to the size
/// the header claims).
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    parse_content(bytes, |reader, form| parse_from(reader, path, form))
}

/// Parses the uncompressed form read from `reader`; `form` describes it in messages.
fn parse_from(reader: &mut dyn Read, path: &Path, form: &str) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    let got = read_up_to(reader, &mut magic).map_err(corrupt(path))?;
    if magic[..got.min(2)].iter().any(|&b| b != 0) {
        return Err(Error::data(
            path,
            format!(
                "not an IDX file: its {form}content starts {:02x?}, expected two zero bytes, a type and a rank",
                &magic[..got]
            ),
        ));
    }
    if got < 4 {
        return Err(Error::data(
            path,
            format!("truncated: {got} bytes of {form}content, shorter than the 4-byte IDX magic"),
        ));
    }
    let dtype = IdxType::from_code(magic[2]).ok_or_else(|| {
        Error::data(
            path,
            format!(
                "IDX type byte 0x{:02x} is none of 0x08 (u8), 0x09 (i8), 0x0b (i16), 0x0c (i32), 0x0d (f32), 0x0e (f64)",
                magic[2]
            ),
        )
    })?;
    let rank = usize::from(magic[3]);
    if rank == 0 {
        return Err(Error::data(
            path,
            "the IDX array has no dimensions (rank 0)",
        ));
    }
    let mut header = vec![0u8; 4 * rank];
    let got = read_up_to(reader, &mut header).map_err(corrupt(path))?;
    if got < header.len() {
        return Err(Error::data(
            path,
            format!(
                "truncated: the header of a rank-{rank} array needs {} bytes, but the {form}content has {}",
                4 + header.len(),
                4 + got
            ),
        ));
    }
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    if let Some(k) = dims.iter().position(|&d| d == 0) {
        return Err(Error::data(
            path,
            format!("dimension {k} of {dims:?} is 0: the file holds no values"),
        ));
    }
    let body = dims
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .filter(|&n| n < isize::MAX as usize / 2)
        .ok_or_else(|| {
            Error::data(
                path,
                format!("the dimensions {dims:?} are too large to hold"),
            )
        })?;
    let needs = format!(
        "the dimensions {dims:?} of {}-byte values need",
        dtype.size()
    );
    let body = read_body(reader, body, path, form, (&needs, "bytes after the header"))?;
    Ok(IdxArray { dtype, dims, body })
}

/// The data set of an IDX inputs file and its labels file: one row per item of
/// `inputs` (an item of any rank flattened in the file's order, e.g. an MNIST image's
/// 28×28 pixels row by row, as `f32`, not rescaled), labelled by the values of `labels`
/// (one per item: a one-dimensional array, or items of one value), which must be whole
/// numbers from 0 below 2²⁴; the class count is the largest label + 1. Items of rank 2
/// (an inputs file of rank 3) are one-channel images: the data set's
/// [`image_shape`](Dataset::image_shape) is (1, H, W). Fails with
/// [`Error::Data`] naming the file at fault when either is not a valid IDX file, when the
/// counts differ, on an input that is not finite, on a label that is not a class
/// index, and when the one-hot targets would hold over 2³⁰ values.
pub fn read_idx_pair(inputs: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    let (inputs_path, labels_path) = (inputs.as_ref(), labels.as_ref());
    let images = read_idx(inputs_path)?;
    let labels = read_idx(labels_path)?;
    idx_dataset(&images, inputs_path, &labels, labels_path)
}

/// [`read_idx_pair`] on arrays already read (the paths name them in errors).
pub fn idx_dataset(
    inputs: &IdxArray,
    inputs_path: &Path,
    labels: &IdxArray,
    labels_path: &Path,
) -> Result<Dataset> {
    if labels.item_len() != 1 {
        return Err(Error::data(
            labels_path,
            format!(
                "a labels file holds one value per item, but its dimensions are {:?}",
                labels.dims()
            ),
        ));
    }
    if labels.items() != inputs.items() {
        return Err(Error::data(
            labels_path,
            format!(
                "{} labels for the {} items of {}",
                labels.items(),
                inputs.items(),
                inputs_path.display()
            ),
        ));
    }
    let width = inputs.item_len();
    let x = match inputs.dtype {
        // Bytes are always finite, and this is what image files hold: one pass the
        // compiler vectorizes rather than a decode per value.
        IdxType::U8 => inputs.body.iter().map(|&b| f32::from(b)).collect(),
        IdxType::I8 => inputs.body.iter().map(|&b| f32::from(b as i8)).collect(),
        _ => finite_values(inputs, inputs_path, width)?,
    };
    let mut classes = Vec::with_capacity(labels.items());
    for (i, v) in labels.values().enumerate() {
        let Some(label) = super::dataset::class_index(v) else {
            return Err(Error::data(
                labels_path,
                format!("item {i}: the label {v} is not a class index (a whole number from 0)"),
            ));
        };
        classes.push(label);
    }
    let count = classes.iter().max().map_or(0, |&m| m + 1);
    let x = Tensor::new(&[inputs.items(), width], x)?;
    // The labels are in range and the inputs finite: what is left to fail is the size
    // of the one-hot targets, which the labels file decides.
    let data =
        Dataset::new(x, classes, count).map_err(|e| Error::data(labels_path, e.to_string()))?;
    // Items of rank 2 are one-channel images; other ranks say nothing of channels.
    match inputs.dims()[1..] {
        [height, width] => data.with_image_shape((1, height, width)),
        _ => Ok(data),
    }
}

/// The values of a multi-byte array as `f32`, refusing one that is not finite (`width`
/// values to an item, to name the item in the error).
fn finite_values(array: &IdxArray, path: &Path, width: usize) -> Result<Vec<f32>> {
    let mut x = Vec::with_capacity(array.len());
    for (i, v) in array.values().enumerate() {
        if !v.is_finite() {
            return Err(Error::data(
                path,
                format!(
                    "item {}, value {}: {v} is not a finite number",
                    i / width,
                    i % width
                ),
            ));
        }
        x.push(v as f32);
    }
    Ok(x)
}

/// Whether `path` names an IDX file by the usual convention: the file name (less a
/// `.gz`) ends in `idxN-ubyte`, as `train-images-idx3-ubyte.gz` or
/// `t10k-labels.idx1-ubyte`.
pub fn is_idx_name(path: &Path) -> bool {
    idx_rank_in_name(path).is_some()
}

/// The rank `N` in a file name ending in `idxN-ubyte` (less a `.gz`).
fn idx_rank_in_name(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    let rest = stem.strip_suffix("-ubyte")?;
    let at = rest.rfind("idx")?;
    rest[at + 3..].parse().ok()
}

/// The labels file that goes with the IDX inputs file `inputs`, by the naming of
/// MNIST's files: in its file name the last `images` becomes `labels` (in the same
/// letter case) and the number after the last `idx` becomes 1
/// (`train-images-idx3-ubyte.gz` → `train-labels-idx1-ubyte.gz`). Where that file does
/// not exist but the same name with or without `.gz` does, that one. `None` when the
/// name holds no `images` or no `idx` followed by a number.
pub fn idx_labels_path(inputs: &Path) -> Option<PathBuf> {
    let name = inputs.file_name()?.to_str()?;
    // ASCII lower-casing keeps every byte where it was, so positions carry over.
    let lower = name.to_ascii_lowercase();
    let images = lower.rfind("images")?;
    let digits_at = lower.rfind("idx")? + 3;
    let digits = lower[digits_at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let word: String = name[images..images + 6]
        .chars()
        .zip("labels".chars())
        .map(|(was, new)| match was.is_ascii_uppercase() {
            true => new.to_ascii_uppercase(),
            false => new,
        })
        .collect();
    // "images" holds no "idx": the two ranges never overlap; edit the later one first.
    let mut labels = name.to_string();
    let mut edits = [
        (images..images + 6, word.as_str()),
        (digits_at..digits_at + digits, "1"),
    ];
    edits.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    for (range, text) in edits {
        labels.replace_range(range, text);
    }
    let exact = inputs.with_file_name(&labels);
    let other = match labels.strip_suffix(".gz") {
        Some(plain) => inputs.with_file_name(plain),
        None => inputs.with_file_name(format!("{labels}.gz")),
    };
    Some(if !exact.exists() && other.exists() {
        other
    } else {
        exact
    })
}

/// Reads the IDX inputs file `inputs` with the labels file beside it
/// ([`idx_labels_path`]) as a data set ([`read_idx_pair`]). Fails on a labels file
/// given in place of the inputs, and on a name from which no labels file follows or
/// whose labels file does not exist.
pub fn read_idx_beside(inputs: &Path) -> Result<Dataset> {
    if idx_rank_in_name(inputs) == Some(1) {
        return Err(Error::data(
            inputs,
            "this is a labels file (idx1): give the inputs file (as train-images-idx3-ubyte.gz); its labels are read from beside it",
        ));
    }
    let labels = idx_labels_path(inputs).ok_or_else(|| {
        Error::data(
            inputs,
            "no labels file follows from this name: an IDX inputs file is named like train-images-idx3-ubyte.gz, its labels train-labels-idx1-ubyte.gz beside it",
        )
    })?;
    if !labels.exists() {
        return Err(Error::data(
            inputs,
            format!(
                "its labels file {} does not exist (an IDX inputs file is paired with the labels named like it)",
                labels.display()
            ),
        ));
    }
    read_idx_pair(inputs, &labels)
}
