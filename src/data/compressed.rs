//! A binary data file: its bytes, and its content, gzip-compressed or not (the first
//! bytes decide, not the name), read as a stream by the MNIST and IDX readers.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of the file at `path`, or an [`Error::Data`] saying it cannot be opened.
pub(super) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::data(path, format!("cannot open: {e}")))
}

/// Whether `bytes` start as a gzip stream does.
pub(super) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// `parse` on the content of `bytes`: decompressed when they are a gzip stream, else as
/// they are. Its second argument describes the content in messages: `"gzip-compressed "`
/// or `""`.
pub(super) fn parse_content<T>(
    bytes: &[u8],
    parse: impl FnOnce(&mut dyn Read, &str) -> Result<T>,
) -> Result<T> {
    if is_gzip(bytes) {
        parse(&mut MultiGzDecoder::new(bytes), "gzip-compressed ")
    } else {
        parse(&mut { bytes }, "")
    }
}

/// The error for a stream that failed to read: only a gzip stream can, when corrupt.
pub(super) fn corrupt(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::data(path, format!("the gzip stream is corrupt: {e}"))
}

/// Reads into `buf` until it is full or the stream ends; the number of bytes read.
pub(super) fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The rest of the content, which must be `len` bytes: else an error, `"truncated: "`
/// or `"too long: "`, then `needs`, `len`, `what` and what the content (`form`, as in
/// [`parse_content`]) has. Reading one byte past `len` tells a file with extra bytes;
/// `take` keeps the buffer to what the stream really holds, however large `len` is
/// claimed to be.
pub(super) fn read_body(
    reader: &mut dyn Read,
    len: usize,
    path: &Path,
    form: &str,
    (needs, what): (&str, &str),
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    reader
        .take(len as u64 + 1)
        .read_to_end(&mut body)
        .map_err(corrupt(path))?;
    if body.len() == len {
        return Ok(body);
    }
    let (short, at_least) = match body.len() < len {
        true => ("truncated", ""),
        false => ("too long", "at least "),
    };
    Err(Error::data(
        path,
        format!(
            "{short}: {needs} {len} {what}, but the {form}content has {at_least}{}",
            body.len()
        ),
    ))
}
