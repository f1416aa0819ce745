//! Checkpoints: a model's parameters in a [safetensors](https://huggingface.co/docs/safetensors)
//! file, named and shaped as PyTorch's `state_dict` of the same `nn.Sequential`
//! (`"0.weight"` `[out, in]`, `"0.bias"` `[out]`, `"2.weight"`, ...; activations hold no
//! tensors but keep their index), all `F32`. In PyTorch,
//! `model.load_state_dict(safetensors.torch.load_file(path))` reads one, and
//! `safetensors.torch.save_file(model.state_dict(), path)` writes one [`load`] reads.
//!
//! [`save`] writes a temporary file beside the target and renames it over the target, so
//! that a failed save never destroys the previous checkpoint. [`load`] checks every
//! name, shape and dtype before it changes anything, and names each mismatch.
//!
//! A training checkpoint ([`save_training`], [`load_training`]) holds, besides the
//! parameters, what a run needs to continue where it stopped: the optimizer's state,
//! the epoch, and the input scaler.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::{Backend, Ops};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;

mod training;

pub use training::{load_training, save_training, TrainingState};

fn error(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// The tensors of a safetensors file, by name (sorted), each as an `f32` tensor of its
/// shape. Fails, naming the tensor, on a file that is not valid safetensors or holds a
/// tensor whose dtype is not `F32`; `path` only names the source in messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| error(path, format!("not a valid safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(error(
                path,
                format!("tensor {name:?} has dtype {}, expected F32", view.dtype()),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let tensor = Tensor::new(view.shape(), data).map_err(|e| error(path, e.to_string()))?;
        tensors.insert(name.to_string(), tensor);
    }
    Ok(tensors)
}

/// The metadata of a safetensors file (its `__metadata__` strings; empty when it has
/// none); `path` only names the source in messages.
pub fn parse_metadata(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| error(path, format!("not a valid safetensors file: {e}")))?;
    Ok(metadata
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// The safetensors bytes of named `f32` tensors, with PyTorch's `{"format": "pt"}`
/// metadata.
pub fn serialize(tensors: &BTreeMap<String, Tensor>) -> Result<Vec<u8>> {
    serialize_with(tensors, &BTreeMap::new())
}

/// [`serialize`] with more metadata strings beside `"format": "pt"`.
pub fn serialize_with(
    tensors: &BTreeMap<String, Tensor>,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let raw = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), raw)
                .map(|v| (name.as_str(), v))
                .map_err(|e| Error::InvalidArgument(format!("tensor {name:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut metadata: HashMap<String, String> = extra.clone().into_iter().collect();
    metadata.insert("format".to_string(), "pt".to_string());
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::InvalidArgument(format!("serializing tensors: {e}")))
}

/// The model's parameters as a PyTorch-style state dict: names and shapes as in
/// `state_dict()`, values downloaded from the backend.
pub fn state_dict<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
) -> Result<BTreeMap<String, Tensor>> {
    let mut tensors = BTreeMap::new();
    for p in model.parameters() {
        let values = backend.download(p.value)?.into_data();
        tensors.insert(p.name.clone(), Tensor::new(&p.shape, values)?);
    }
    Ok(tensors)
}

/// Writes the model's parameters to `path` (see the [module](self) doc): into a
/// temporary file in the same directory, flushed to disk, then renamed over `path`.
pub fn save<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = serialize(&state_dict(backend, model)?)?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a fresh temporary file beside `path`, syncs it, and renames it
/// over `path`; on any failure the temporary file is removed and `path` is untouched.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// [`write_atomically`] with the file's contents written by `fill`.
fn write_atomically_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| error(path, "the path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(path, format!("writing failed: {e}")));
    }
    // Make the rename itself durable where the platform allows it.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Loads the parameters in `path` into `model`, which must have exactly the
/// checkpoint's tensors: the same names, shapes and dtype (`F32`), and finite values.
/// Every mismatch is
/// listed in the error (missing, unexpected and misshapen tensors), and on any error
/// the model is unchanged.
pub fn load<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| error(path, format!("reading failed: {e}")))?;
    load_bytes(backend, model, &bytes, path)
}

/// [`load`] from the bytes of a checkpoint; `path` only names the source in messages.
pub fn load_bytes<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    bytes: &[u8],
    path: &Path,
) -> Result<()> {
    let mut tensors = parse(bytes, path)?;
    let mut problems = Vec::new();
    let values = take_parameters(model, &mut tensors, &mut problems);
    refuse_mismatch(path, model, problems, &tensors)?;
    write_parameters(backend, model, &values)
}

/// `Ok` when there are no `problems` and no `left` tensors, else one error listing
/// the problems and each left tensor as unexpected.
fn refuse_mismatch<B: Backend, M: Module<B> + ?Sized>(
    path: &Path,
    model: &M,
    mut problems: Vec<String>,
    left: &BTreeMap<String, Tensor>,
) -> Result<()> {
    for name in left.keys() {
        problems.push(format!(
            "unexpected tensor {name:?} (not a parameter of the model)"
        ));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(error(
            path,
            format!("does not match {}: {}", model.name(), problems.join("; ")),
        )),
    }
}

/// Takes the model's parameters out of `tensors`, each checked for its shape and for
/// finite values; each mismatch (a missing, misshapen or non-finite tensor) is added
/// to `problems`. The values are in the order of [`Module::parameters`] when
/// `problems` stays empty.
fn take_parameters<B: Backend, M: Module<B> + ?Sized>(
    model: &M,
    tensors: &mut BTreeMap<String, Tensor>,
    problems: &mut Vec<String>,
) -> Vec<Tensor> {
    let params = model.parameters();
    let mut values = Vec::with_capacity(params.len());
    for p in &params {
        match tensors.remove(&p.name) {
            None => problems.push(format!("missing tensor {:?} (shape {:?})", p.name, p.shape)),
            Some(t) if t.shape() != p.shape.as_slice() => problems.push(format!(
                "tensor {:?} has shape {:?}, the model expects {:?}",
                p.name,
                t.shape(),
                p.shape
            )),
            Some(t) => match t.data().iter().position(|v| !v.is_finite()) {
                Some(i) => problems.push(format!(
                    "tensor {:?} holds {} at element {i}",
                    p.name,
                    t.data()[i]
                )),
                None => values.push(t),
            },
        }
    }
    values
}

/// Writes `values` (from [`take_parameters`]) into the model's parameters.
fn write_parameters<B: Backend, M: Module<B> + ?Sized>(
    backend: &B,
    model: &M,
    values: &[Tensor],
) -> Result<()> {
    for (p, t) in model.parameters().iter().zip(values) {
        backend.write(p.value, t.data())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("minidl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_that_fails_midway_leaves_the_previous_file_and_no_temporary() {
        let dir = scratch_dir("atomic");
        let path = dir.join("model.safetensors");
        write_atomically(&path, b"previous").unwrap();
        let e = write_atomically_with(&path, |file| {
            file.write_all(b"half of the new")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind: {left:?}");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
