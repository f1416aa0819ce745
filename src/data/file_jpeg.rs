//! JPEG images (baseline and progressive, grey or colour), decoded by the
//! `jpeg-decoder` crate into levels 0–255 in PyTorch's (C, H, W) order, as image
//! folders hold them beside PNG images.

use std::path::Path;

use super::file_png::{check_decoded_size, ImageShape, MAX_DECODED_BYTES};
use crate::error::{Error, Result};

/// Decodes the JPEG image in `bytes` (read from `path`, which errors name) into its
/// levels 0–255 in (C, H, W) order and its shape: 1 channel for a grey image, 3 (RGB)
/// for a colour one, converted from YCbCr as JFIF defines and its chroma upsampled by
/// the decoder. JPEG decoding is not exact (the standard bounds the error of the
/// inverse DCT, and leaves chroma upsampling to the decoder), so the levels may
/// differ by a few from another decoder's, such as libjpeg's that Pillow and
/// torchvision use. As in those, an EXIF orientation tag is not applied: the pixels
/// are read as stored. Fails with [`Error::Data`] for bytes that are not a whole JPEG
/// image, for a header whose image would decode to more than 64 MiB or claims more
/// pixels than the file's bytes can hold (both refused before anything of that size is
/// allocated), and for the kinds minidl does not read: CMYK images and lossless ones of
/// more than 8 bits.
pub fn parse_jpeg(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, ImageShape)> {
    let bad = |e: jpeg_decoder::Error| Error::data(path, format!("not a JPEG image: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    decoder.read_info().map_err(bad)?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::data(path, "not a JPEG image: no frame header"))?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::CMYK32 => {
            return Err(Error::data(
                path,
                "a CMYK JPEG image, which minidl does not read (convert it to RGB)",
            ))
        }
        jpeg_decoder::PixelFormat::L16 => {
            return Err(Error::data(
                path,
                "a lossless JPEG image of more than 8 bits, which minidl does not read",
            ))
        }
    };
    let (height, width) = (usize::from(info.height), usize::from(info.width));
    let pixels = height * width;
    // The decoder checks its own limit only once it has decoded the scans into planes
    // of the image's size: refuse a large header before that.
    check_decoded_size(pixels * channels, path)?;
    // Every 8×8 block takes at least one bit of the file (the Huffman code of its DC
    // coefficient; arithmetic coding, which could take less, is not read), so `n`
    // bytes hold at most 512·n pixels: a header claiming more is of a cut or forged
    // file, whose planes would be allocated and decoded from almost nothing.
    if pixels > bytes.len().saturating_mul(512) {
        return Err(Error::data(
            path,
            format!(
                "not a JPEG image: its header claims {width}×{height} pixels, more than its {} bytes can hold (a cut file?)",
                bytes.len()
            ),
        ));
    }
    let decoded = decoder.decode().map_err(bad)?;
    if decoded.len() != pixels * channels {
        return Err(Error::data(
            path,
            format!(
                "not a JPEG image: {} decoded bytes for {height}×{width} pixels of {channels} channel(s)",
                decoded.len()
            ),
        ));
    }
    let mut planes = vec![0.0f32; pixels * channels];
    for (c, plane) in planes.chunks_exact_mut(pixels.max(1)).enumerate() {
        for (v, &level) in plane.iter_mut().zip(decoded[c..].iter().step_by(channels)) {
            *v = f32::from(level);
        }
    }
    Ok((planes, (channels, height, width)))
}
