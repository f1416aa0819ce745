//! Folders of PNG and JPEG images, one subfolder per class, as torchvision's
//! `ImageFolder` lays them out (`root/cat/001.png`, `root/dog/abc.jpg`): the subfolders
//! sorted by name are the classes, each image a row of its pixels in PyTorch's
//! (C, H, W) order.

use std::path::{Path, PathBuf};

use super::file_png::{parse_png, ImageShape};
use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The first bytes of every PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The first bytes of every JPEG file: a start-of-image marker, then another marker.
const JPEG_START: &[u8] = &[0xFF, 0xD8, 0xFF];

/// The file extensions (any letter case) of the images an image folder holds.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Whether `folder` is read as an image folder: it holds at least one subfolder whose
/// name does not start with a dot.
pub fn is_image_folder(folder: &Path) -> bool {
    class_folders(folder).is_ok_and(|classes| !classes.is_empty())
}

/// Decodes the PNG or JPEG image in `bytes` (read from `path`, which errors name), told
/// apart by their first bytes whatever the file's name: [`parse_png`] or
/// [`parse_jpeg`](super::parse_jpeg). Fails with [`Error::Data`] for bytes that are
/// neither, and as those do.
pub fn parse_image(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, ImageShape)> {
    if bytes.starts_with(PNG_SIGNATURE) {
        parse_png(bytes, path)
    } else if bytes.starts_with(JPEG_START) {
        super::file_jpeg::parse_jpeg(bytes, path)
    } else {
        Err(Error::data(
            path,
            "neither a PNG nor a JPEG image (its first bytes are neither's)",
        ))
    }
}

/// Reads the image folder `root` as a data set: its subfolders (not those whose name
/// starts with a dot), sorted by name, are the classes, numbered from 0 in that order
/// and kept as the data set's [class names](Dataset::class_names); the `.png`, `.jpg`
/// and `.jpeg` files in each (in its subfolders too, in the order of their paths) are
/// its images, each a row of its levels 0–255 in (C, H, W) order, not rescaled (see
/// [`parse_image`]). Other files are skipped. Fails with [`Error::Data`] naming the
/// folder or the file: a folder that cannot be listed or holds no class subfolder, a
/// class without an image file, an image that does not decode, and an image whose
/// shape (channels, height, width) differs from the first one's.
pub fn read_image_folder(root: impl AsRef<Path>) -> Result<Dataset> {
    let root = root.as_ref();
    let classes = class_folders(root)?;
    if classes.is_empty() {
        return Err(Error::data(
            root,
            "the folder holds no class subfolders of PNG or JPEG images",
        ));
    }
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    let mut first: Option<(PathBuf, ImageShape)> = None;
    for (label, (_, folder)) in classes.iter().enumerate() {
        let files = image_files(folder)?;
        if files.is_empty() {
            return Err(Error::data(
                folder,
                "the class folder holds no .png, .jpg or .jpeg image (other formats are not read)",
            ));
        }
        for file in files {
            let bytes = super::compressed::read_bytes(&file)?;
            let (pixels, shape) = parse_image(&bytes, &file)?;
            match &first {
                Some((path, want)) if *want != shape => {
                    return Err(Error::data(
                        &file,
                        format!(
                            "an image of {} but {} is of {}: every image must have the same channels and size",
                            shape_words(shape),
                            path.display(),
                            shape_words(*want)
                        ),
                    ))
                }
                Some(_) => {}
                None => first = Some((file.clone(), shape)),
            }
            inputs.extend_from_slice(&pixels);
            labels.push(label);
        }
    }
    let (_, shape) = first.expect("every class holds an image");
    let (c, h, w) = shape;
    let inputs = Tensor::new(&[labels.len(), c * h * w], inputs)?;
    let count = classes.len();
    let names = classes.into_iter().map(|(name, _)| name).collect();
    Dataset::new(inputs, labels, count)
        .and_then(|d| d.with_class_names(names))
        .and_then(|d| d.with_image_shape(shape))
}

/// "C×H×W" for an image shape.
fn shape_words((c, h, w): ImageShape) -> String {
    format!("{c}×{h}×{w}")
}

/// The visible subfolders of `root` (name and path), sorted by name.
fn class_folders(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut classes = Vec::new();
    for entry in list(root)? {
        let name = entry.to_string_lossy().into_owned();
        let path = root.join(&entry);
        if !name.starts_with('.') && path.is_dir() {
            classes.push((name, path));
        }
    }
    classes.sort();
    Ok(classes)
}

/// The image files ([`IMAGE_EXTENSIONS`], any letter case) under `folder`, in its
/// subfolders too, sorted by path; a subfolder that links back to one already walked
/// is walked once.
fn image_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut walked = std::collections::HashSet::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if !walked.insert(std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())) {
            continue;
        }
        for entry in list(&dir)? {
            let path = dir.join(&entry);
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| {
                IMAGE_EXTENSIONS
                    .iter()
                    .any(|known| e.eq_ignore_ascii_case(known))
            }) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The names of the entries of `dir`.
fn list(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let cannot = |e: std::io::Error| Error::data(dir, format!("cannot list: {e}"));
    std::fs::read_dir(dir)
        .map_err(cannot)?
        .map(|entry| entry.map(|e| e.file_name()).map_err(cannot))
        .collect()
}
