//! Compiled pipelines kept on disk across processes, where the adapter's driver hands
//! them back (wgpu's `PipelineCache`, on Vulkan): see [`Gpu::with_pipeline_cache`].
//! The file holds the cache's data after a small header of minidl's own (a magic
//! number, the length and a checksum), so that a file damaged on disk is never given
//! to the driver: it is ignored and the cache starts empty.
//!
//! [`Gpu::with_pipeline_cache`]: super::context::Gpu::with_pipeline_cache

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The first bytes of a cache file.
const MAGIC: &[u8; 8] = b"minidlPC";

/// Bytes before the data: the magic number, the data's length and its checksum.
const HEADER: usize = 8 + 8 + 8;

/// A pipeline cache and the file it is loaded from and saved to.
pub(crate) struct DiskCache {
    pub cache: wgpu::PipelineCache,
    file: PathBuf,
}

/// The 64-bit FNV-1a hash of `bytes`, the file's checksum (it detects damage, not
/// tampering).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The data inside a cache file's contents, if they are whole and undamaged.
fn unwrap_file(contents: &[u8]) -> Option<&[u8]> {
    let (head, data) = contents.split_at_checked(HEADER)?;
    let len = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let sum = u64::from_le_bytes(head[16..24].try_into().ok()?);
    (head[..8] == MAGIC[..] && len == data.len() as u64 && sum == checksum(data)).then_some(data)
}

impl DiskCache {
    /// The cache of `device` kept in `dir` (created where missing), loaded from its
    /// file where there is a whole one; `None` where the device has no pipeline cache
    /// (the feature is missing, or wgpu keys no cache for the adapter's backend).
    pub fn open(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
        dir: &Path,
    ) -> Result<Option<Self>> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Gpu(format!(
                "pipeline cache: cannot create the folder {}: {e}",
                dir.display()
            ))
        })?;
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return Ok(None);
        }
        let Some(name) = wgpu::util::pipeline_cache_key(info) else {
            return Ok(None);
        };
        let file = dir.join(name);
        let contents = match std::fs::read(&file) {
            Ok(contents) => Some(contents),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::Gpu(format!(
                    "pipeline cache: cannot read {}: {e}",
                    file.display()
                )))
            }
        };
        let data = contents.as_deref().and_then(unwrap_file);
        if contents.is_some() && data.is_none() {
            log::warn!(
                "pipeline cache {} is damaged; starting empty",
                file.display()
            );
        }
        // SAFETY: `data` is what `save` wrote from `PipelineCache::get_data` of a cache
        // of this key (the checksum rules out damage on disk); wgpu checks its own
        // header (its version, the adapter and the driver) and, with `fallback`, starts
        // empty where they do not match.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("minidl"),
                data,
                fallback: true,
            })
        };
        Ok(Some(DiskCache { cache, file }))
    }

    /// The file the cache is kept in.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Writes the cache's data to its file (a temporary file beside it, renamed over
    /// it), after each build. A failure is logged, not returned: a cache that cannot be
    /// saved costs the next process a build, nothing more.
    pub fn save(&self) {
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let mut contents = Vec::with_capacity(HEADER + data.len());
        contents.extend_from_slice(MAGIC);
        contents.extend_from_slice(&(data.len() as u64).to_le_bytes());
        contents.extend_from_slice(&checksum(&data).to_le_bytes());
        contents.extend_from_slice(&data);
        // A name of this save's own: devices of one process may save at once.
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let save = SAVES.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .file
            .with_extension(format!("{}-{save}.tmp", std::process::id()));
        let written =
            std::fs::write(&temp, &contents).and_then(|()| std::fs::rename(&temp, &self.file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            log::warn!("pipeline cache: cannot save {}: {e}", self.file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_undamaged_files_are_read() {
        let data = b"pipeline bytes";
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&(data.len() as u64).to_le_bytes());
        file.extend_from_slice(&checksum(data).to_le_bytes());
        file.extend_from_slice(data);
        assert_eq!(unwrap_file(&file), Some(&data[..]));
        assert_eq!(unwrap_file(&file[..file.len() - 1]), None, "truncated");
        assert_eq!(unwrap_file(&file[..10]), None, "shorter than the header");
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(unwrap_file(&flipped), None, "a damaged byte");
        let mut other = file.clone();
        other[0] = b'x';
        assert_eq!(unwrap_file(&other), None, "another magic number");
        assert_eq!(unwrap_file(&[]), None);
    }
}
