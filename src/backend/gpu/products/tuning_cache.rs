//! The tuning cache file: the choices measured per adapter and key, kept across
//! processes: the products' kernels per shape class, and the convolution's lowering per
//! geometry. A missing, unreadable, damaged or foreign file means measuring again,
//! never a wrong result: an entry names a label its reader parses and checks against
//! what can run (an unknown one is measured again), and every kernel of a product, as
//! every lowering of a convolution, computes the same thing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::backend::gpu::runtime::context::{lock, Gpu};

/// The environment variable that names the tuning cache file.
pub const TUNE_CACHE_ENV: &str = "MINIDL_TUNE_CACHE";

/// Where the tuning cache lives: `MINIDL_TUNE_CACHE`, else `minidl/tuning.txt` under
/// `XDG_CACHE_HOME` or `~/.cache`; `None` where none of them is set.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TUNE_CACHE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("minidl").join("tuning.txt"))
}

/// The first line of the cache file: its format, then the crate version (another
/// version's generated kernels may differ).
pub(crate) fn file_header() -> String {
    format!("minidl tuning cache 4 {}", env!("CARGO_PKG_VERSION"))
}

/// The entry lines of the cache file at `path`, after its header; `None` where it is
/// missing, unreadable, or of another format or version.
fn cache_lines(path: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    (lines.next()? == file_header()).then(|| lines.map(str::to_string).collect())
}

/// One entry line: the adapter, the key and the choice's label, none of them empty;
/// `None` where damaged.
fn parse_entry(line: &str) -> Option<(&str, &str, &str)> {
    let mut fields = line.split('\t');
    let (adapter, key, label) = (fields.next()?, fields.next()?, fields.next()?);
    let sound = fields.next().is_none() && [adapter, key, label].iter().all(|f| !f.is_empty());
    sound.then_some((adapter, key, label))
}

/// The entries of `adapter` in the cache file, key to label; empty where it is missing,
/// unreadable, of another format or version, or damaged (then it will be rewritten).
pub(crate) fn read(adapter: &str) -> HashMap<String, String> {
    let Some(lines) = cache_path().and_then(|path| cache_lines(&path)) else {
        return HashMap::new();
    };
    let mut entries = HashMap::new();
    for line in &lines {
        let Some((a, key, label)) = parse_entry(line) else {
            return HashMap::new();
        };
        if a == adapter {
            entries.insert(key.to_string(), label.to_string());
        }
    }
    entries
}

/// Adds `key → label` for `adapter` to the cache file (written to a temporary file
/// and renamed over it, so that a reader never sees half a file). Failing to write is
/// not an error: the next run measures again.
pub(crate) fn remember(adapter: &str, key: &str, label: &str) {
    let Some(path) = cache_path() else { return };
    // The sound entries of the other adapters and shape classes.
    let mut kept: Vec<String> = cache_lines(&path)
        .unwrap_or_default()
        .into_iter()
        .filter(|line| parse_entry(line).is_some_and(|(a, k, _)| !(a == adapter && k == key)))
        .collect();
    kept.push(format!("{adapter}\t{key}\t{label}"));
    let text = format!("{}\n{}\n", file_header(), kept.join("\n"));
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        log::warn!("cannot write the tuning cache {}: {e}", path.display());
    }
}

/// The cache file's entries for one device's adapter, read on first use (a
/// [`Gpu::state`]), with the entries measured since.
#[derive(Default)]
struct CachedEntries {
    entries: Mutex<Option<HashMap<String, String>>>,
}

impl Gpu {
    /// The identity of this adapter in the cache file.
    pub(crate) fn tuning_adapter(&self) -> String {
        let a = &self.ctx.adapter;
        format!("{}|{}|{}", a.name, a.backend, a.driver).replace(['\t', '\n'], " ")
    }

    /// The label the cache file holds under `key` for this adapter, if any.
    pub(crate) fn cached_label(&self, key: &str) -> Option<String> {
        let state = self.state::<CachedEntries>();
        let mut entries = lock(&state.entries);
        entries
            .get_or_insert_with(|| read(&self.tuning_adapter()))
            .get(key)
            .cloned()
    }

    /// Records `key → label` for this adapter, in memory and in the cache file.
    pub(crate) fn remember_label(&self, key: &str, label: &str) {
        let adapter = self.tuning_adapter();
        remember(&adapter, key, label);
        let state = self.state::<CachedEntries>();
        let mut entries = lock(&state.entries);
        if let Some(entries) = entries.as_mut() {
            entries.insert(key.to_string(), label.to_string());
        }
    }
}
