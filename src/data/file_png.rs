//! PNG images: every colour type and bit depth the format defines, decoded by the
//! `png` crate into levels 0–255 in PyTorch's (C, H, W) order, as image folders hold
//! them.

use std::path::Path;

use crate::error::{Error, Result};

/// The shape of one image: (channels, height, width).
pub type ImageShape = (usize, usize, usize);

/// The most bytes one image, PNG or JPEG, may decode to (the `png` crate's own default
/// limit on what it allocates): a header cannot make minidl allocate more.
pub(super) const MAX_DECODED_BYTES: usize = 64 << 20;

/// Fails, naming `path`, where an image would decode to `size` bytes, over
/// [`MAX_DECODED_BYTES`]: checked from the header, before anything of that size is
/// allocated.
pub(super) fn check_decoded_size(size: usize, path: &Path) -> Result<()> {
    if size > MAX_DECODED_BYTES {
        return Err(Error::data(
            path,
            format!(
                "the image would decode to {size} bytes, over minidl's limit of {MAX_DECODED_BYTES}"
            ),
        ));
    }
    Ok(())
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
    check_decoded_size(size, path)?;
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
