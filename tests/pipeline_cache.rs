//! `Gpu::with_pipeline_cache`: the compiled pipelines kept in a file are loaded by a
//! later device, which trains exactly as a device without the cache; a damaged file is
//! ignored; a folder that cannot be made is an error.

mod common;

use std::path::{Path, PathBuf};

use common::{announce, gpu, gpu_required, rng};
use minidl::data::disc_train_test;
use minidl::nn::{Module, MseLoss};
use minidl::optim::Sgd;
use minidl::train::{fit, FitConfig, Fusion};
use minidl::{seed, Error, Gpu, Ops};

/// An empty folder of this test's own.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "minidl-pipeline-cache-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The seed network's parameters after two fused epochs on `gpu`.
fn trained(gpu: &Gpu) -> Vec<Vec<f32>> {
    let (train, _) = disc_train_test(4).unwrap();
    let mut model = seed::network(gpu, &mut rng(5)).unwrap();
    let config = FitConfig {
        epochs: 2,
        fused: Fusion::Always,
        ..FitConfig::default()
    };
    let reports = fit(
        gpu,
        &mut model,
        &mut MseLoss::new(seed::REDUCTION),
        &mut Sgd::new(seed::LR).unwrap(),
        &train,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(reports.iter().all(|r| r.fused));
    model
        .parameters()
        .iter()
        .map(|p| gpu.download(p.value).unwrap().into_data())
        .collect()
}

/// The cache file of a device opened on `dir`, which must exist once it is open.
fn cache_file(gpu: &Gpu, dir: &Path) -> Option<PathBuf> {
    assert!(dir.is_dir(), "the folder was not made");
    let file = gpu.pipeline_cache_file()?.to_path_buf();
    assert!(
        file.starts_with(dir),
        "{} is not in {}",
        file.display(),
        dir.display()
    );
    assert!(file.is_file(), "{} was not written", file.display());
    Some(file)
}

/// Where `gpu` keeps no pipeline cache, says past the output capture that `test` skips
/// its checks of the cache file, and why. wgpu 30 offers the pipeline cache on every
/// Vulkan adapter (lavapipe included) and on no other backend: on Vulkan its absence is
/// a fault, which `MINIDL_REQUIRE_GPU=1` (as in CI) turns into a failure; elsewhere
/// (Metal, DX12) there is nothing to check, and the test says so.
fn no_cache(test: &str, gpu: &Gpu) {
    let adapter = gpu.adapter();
    let why = if adapter.backend == "Vulkan" {
        assert!(
            !gpu_required(),
            "{test}: MINIDL_REQUIRE_GPU=1 but {adapter} keeps no pipeline cache, which wgpu offers on every Vulkan adapter"
        );
        "wgpu offers one on every Vulkan adapter, so this is a fault; MINIDL_REQUIRE_GPU=1 makes it a failure"
    } else {
        "wgpu has pipeline caches on Vulkan only"
    };
    announce(&format!(
        "{test}: skipping the cache file's checks: {adapter} keeps no pipeline cache ({why})"
    ));
}

#[test]
fn kept_pipelines_are_loaded_again_and_train_alike() {
    if gpu().is_none() {
        return;
    }
    let dir = folder("reload");
    let plain = trained(&Gpu::new().unwrap());
    let first = Gpu::with_pipeline_cache(None, &dir).unwrap();
    let Some(file) = cache_file(&first, &dir) else {
        no_cache("kept_pipelines_are_loaded_again_and_train_alike", &first);
        assert_eq!(trained(&first), plain);
        return;
    };
    let before = std::fs::read(&file).unwrap();
    assert_eq!(trained(&first), plain);
    let after = std::fs::read(&file).unwrap();
    println!(
        "{}: cache file {} bytes after opening, {} after the fused build",
        first.adapter(),
        before.len(),
        after.len()
    );
    drop(first);
    let second = Gpu::with_pipeline_cache(None, &dir).unwrap();
    assert_eq!(second.pipeline_cache_file(), Some(file.as_path()));
    assert_eq!(trained(&second), plain);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_cache_file_is_ignored() {
    if gpu().is_none() {
        return;
    }
    let dir = folder("damaged");
    let first = Gpu::with_pipeline_cache(None, &dir).unwrap();
    let Some(file) = cache_file(&first, &dir) else {
        no_cache("a_damaged_cache_file_is_ignored", &first);
        return;
    };
    drop(first);
    let plain = trained(&Gpu::new().unwrap());
    let mut contents = std::fs::read(&file).unwrap();
    let last = contents.len() - 1;
    contents[last] ^= 0xff;
    for damaged in [
        contents.clone(),
        contents[..contents.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        std::fs::write(&file, &damaged).unwrap();
        let gpu = Gpu::with_pipeline_cache(None, &dir).unwrap();
        assert_eq!(trained(&gpu), plain);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cache_folder_that_cannot_be_made_is_an_error() {
    if gpu().is_none() {
        return;
    }
    let blocker = folder("blocker");
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let err = Gpu::with_pipeline_cache(None, blocker.join("cache")).unwrap_err();
    assert!(
        matches!(&err, Error::Gpu(m) if m.starts_with("pipeline cache: cannot create the folder")),
        "{err:?}"
    );
    let _ = std::fs::remove_file(&blocker);
}
