//! Helpers shared by the integration tests: the GPU (or a skip), random tensors, and
//! comparisons within a per-element error bound.
#![allow(dead_code)]

use std::sync::OnceLock;

use minidl::{Backend, Gpu, Tensor};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The unit roundoff of f32.
pub const U: f64 = f32::EPSILON as f64 / 2.0;

/// γ_n = n·u / (1 − n·u): the classic bound on the relative error of a sum or dot
/// product of n terms in f32, in any order, with or without fused multiply-adds
/// (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Writes a line past the test harness's output capture, so that it shows in a plain
/// `cargo test` run.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One GPU backend per test binary, shared by its tests. `None` (after saying so once)
/// when no adapter exists, unless `MINIDL_REQUIRE_GPU=1`, which turns that into a
/// failure.
pub fn gpu() -> Option<Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new() {
        Ok(gpu) => {
            announce(&format!("GPU tests run on {}", gpu.adapter()));
            Some(gpu)
        }
        Err(e) => {
            if std::env::var("MINIDL_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("MINIDL_REQUIRE_GPU=1 but the GPU backend is unavailable: {e}");
            }
            announce(&format!(
                "skipping the GPU tests of this file: {e} (MINIDL_REQUIRE_GPU=1 makes this a failure)"
            ));
            None
        }
    })
    .clone()
}

/// A seeded generator for test data.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `rows × cols` tensor uniform in [lo, hi).
pub fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, lo: f32, hi: f32) -> Tensor {
    let data = (0..rows * cols).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::new(&[rows, cols], data).unwrap()
}

/// The same host tensor uploaded to two backends.
pub fn upload_both<A: Backend, B: Backend>(
    a: &A,
    b: &B,
    t: &Tensor,
) -> (minidl::DeviceTensor<A>, minidl::DeviceTensor<B>) {
    (a.upload(t).unwrap(), b.upload(t).unwrap())
}

/// Asserts `|got[i] − want[i]| ≤ bound[i]` for every i (and NaN where the reference
/// is NaN), reporting the element that exceeds its bound the most.
pub fn assert_within(what: &str, got: &[f32], want: &[f32], bound: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    assert_eq!(got.len(), bound.len(), "{what}: bound length");
    let excess = |i: usize| {
        if got[i].is_nan() || want[i].is_nan() {
            if got[i].is_nan() == want[i].is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (got[i] as f64 - want[i] as f64).abs() - bound[i]
        }
    };
    let worst = (0..got.len()).max_by(|&a, &b| excess(a).total_cmp(&excess(b)));
    if let Some(i) = worst.filter(|&i| excess(i) > 0.0) {
        panic!(
            "{what}: element {i} is {} but the reference is {} (bound {:e})",
            got[i], want[i], bound[i]
        );
    }
}

/// Absolute values, as f64.
pub fn abs64(t: &Tensor) -> Vec<f64> {
    t.data().iter().map(|v| v.abs() as f64).collect()
}
