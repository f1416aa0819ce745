//! Folders of PNG images, one subfolder per class, as torchvision's `ImageFolder` lays
//! them out (`root/cat/001.png`, `root/dog/abc.png`): the subfolders sorted by name are
//! the classes, each image a row of its pixels in PyTorch's (C, H, W) order.

use std::path::{Path, PathBuf};

use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The shape of one image: (channels, height, width).
pub type ImageShape = (usize, usize, usize);

/// The most bytes one image may decode to (the `png` crate's own default limit on
/// what it allocates): a header cannot make minidl allocate more.
const MAX_DECODED_BYTES: usize = 64 << 20;

/// Whether `folder` is read as an image folder: it holds at least one subfolder whose
/// name does not start with a dot.
pub fn is_image_folder(folder: &Path) -> bool {
    class_folders(folder).is_ok_and(|classes| !classes.is_empty())
}

/// Decodes the PNG image in `bytes` (read from `path`, which errors name) into its
/// pixel values in (C, H, W) order and its shape. The channels are the image's own:
/// 1 for grey, 2 for grey and alpha, 3 for RGB, 4 for RGBA; a palette image becomes
/// RGB (RGBA where it has transparency), grey levels of 1, 2 or 4 bits are widened to
/// 8 bits (0 to 255, as the PNG specification scales them), and 16-bit samples are
/// divided by 257, so that every image gives levels from 0 to 255. Fails with
/// [`Error::Data`] for bytes that are not a whole PNG image.
pub fn parse_png(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, ImageShape)> {
    let bad = |e: png::DecodingError| Error::data(path, format!("not a PNG image: {e}"));
    check_palettes(bytes, path)?;
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader.output_buffer_size();
    if size > MAX_DECODED_BYTES {
        return Err(Error::data(
            path,
            format!(
                "the image would decode to {size} bytes, over minidl's limit of {MAX_DECODED_BYTES}"
            ),
        ));
    }
    let mut buffer = vec![0u8; size];
    let info = reader.next_frame(&mut buffer).map_err(bad)?;
    let channels = info.color_type.samples();
    let (height, width) = (info.height as usize, info.width as usize);
    let pixels = height * width;
    // The `i`-th sample of the decoded (H, W, C) buffer as a level from 0 to 255.
    let sample: fn(&[u8], usize) -> f32 = match info.bit_depth {
        png::BitDepth::Eight => |buffer, i| f32::from(buffer[i]),
        png::BitDepth::Sixteen => {
            |buffer, i| f32::from(u16::from_be_bytes([buffer[2 * i], buffer[2 * i + 1]])) / 257.0
        }
        depth => {
            return Err(Error::data(
                path,
                format!("samples of {depth:?} bits after expansion, which minidl does not read"),
            ))
        }
    };
    let mut planes = vec![0.0f32; pixels * channels];
    for (c, plane) in planes.chunks_exact_mut(pixels.max(1)).enumerate() {
        for (p, v) in plane.iter_mut().enumerate() {
            *v = sample(&buffer, p * channels + c);
        }
    }
    Ok((planes, (channels, height, width)))
}

/// Fails, naming `path`, where a `PLTE` chunk of `bytes` does not hold whole colours
/// of 3 bytes, which the PNG specification makes an error and on which the `png` crate
/// (0.17.16) panics while it expands a palette (found by fuzzing, 2026-12-07). The
/// chunks are walked as the decoder walks them (a length, a type, the data, a CRC),
/// up to `IEND` or the end of the bytes.
fn check_palettes(bytes: &[u8], path: &Path) -> Result<()> {
    let mut at: usize = 8;
    while let Some(head) = bytes.get(at..at.saturating_add(8)) {
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..] {
            b"PLTE" if !length.is_multiple_of(3) => {
                return Err(Error::data(
                    path,
                    format!("not a PNG image: a palette of {length} bytes, not whole colours of 3"),
                ))
            }
            b"IEND" => break,
            _ => at = at.saturating_add(12).saturating_add(length),
        }
    }
    Ok(())
}

/// Reads the image folder `root` as a data set: its subfolders (not those whose name
/// starts with a dot), sorted by name, are the classes, numbered from 0 in that order
/// and kept as the data set's [class names](Dataset::class_names); the `.png` files
/// in each (in its subfolders too, in the order of their paths) are its images, each
/// a row of its levels 0–255 in (C, H, W) order, not rescaled (see [`parse_png`]).
/// Other files are skipped. Fails with [`Error::Data`] naming the folder or the file:
/// a folder that cannot be listed or holds no class subfolder, a class without a
/// `.png` file, an image that does not decode, and an image whose shape (channels,
/// height, width) differs from the first one's.
pub fn read_image_folder(root: impl AsRef<Path>) -> Result<Dataset> {
    let root = root.as_ref();
    let classes = class_folders(root)?;
    if classes.is_empty() {
        return Err(Error::data(
            root,
            "the folder holds no class subfolders of PNG images",
        ));
    }
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    let mut first: Option<(PathBuf, ImageShape)> = None;
    for (label, (_, folder)) in classes.iter().enumerate() {
        let files = png_files(folder)?;
        if files.is_empty() {
            return Err(Error::data(
                folder,
                "the class folder holds no .png image (other formats, JPEG among them, are not read)",
            ));
        }
        for file in files {
            let bytes = super::compressed::read_bytes(&file)?;
            let (pixels, shape) = parse_png(&bytes, &file)?;
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

/// The `.png` files (any letter case) under `folder`, in its subfolders too, sorted
/// by path; a subfolder that links back to one already walked is walked once.
fn png_files(folder: &Path) -> Result<Vec<PathBuf>> {
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
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
            {
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
