//! The generated product kernels compiled on a device, each built on first use, and
//! which kernels a device can run for a shape.

use std::collections::HashMap;
use std::sync::Mutex;

use super::choice::{self, Choice};
use super::product::Product;
use super::{staged, subgroup};
use crate::backend::gpu::runtime::context::{lock, Gpu};
use crate::error::{Error, Result};

/// The compiled generated kernels of a device (a [`Gpu::state`]), by product, choice
/// and whether they read the forward output to gate the gradient.
type Key = (Product, Choice, bool);
#[derive(Default)]
struct Compiled(Mutex<HashMap<Key, (u64, wgpu::ComputePipeline)>>);

impl Gpu {
    /// The subgroup size of the generated subgroup kernels on this device: it has
    /// subgroups of one size, at most 64.
    pub(crate) fn gemm_lanes(&self) -> Option<u32> {
        self.ctx.subgroup_size.filter(|&s| s > 0 && s <= 64)
    }

    /// The kernels that can compute `product` for `x: n×k`, `w: m×k` on this device.
    pub fn product_candidates(
        &self,
        product: Product,
        n: usize,
        k: usize,
        m: usize,
    ) -> Vec<Choice> {
        choice::candidates(product, self.gemm_lanes(), n, k, m)
    }

    /// The compiled generated kernel of `choice` (gated or not, see
    /// [`subgroup::source`]) and its number, built on first use.
    pub(crate) fn gemm_pipeline(
        &self,
        product: Product,
        choice: Choice,
        gated: bool,
    ) -> Result<(u64, wgpu::ComputePipeline)> {
        let state = self.state::<Compiled>();
        let mut compiled = lock(&state.0);
        if let Some(found) = compiled.get(&(product, choice, gated)) {
            return Ok(found.clone());
        }
        let code = match choice {
            Choice::Subgroup(config) => subgroup::source(product, config, gated),
            Choice::Staged(config) => staged::source(product, config, gated),
            Choice::Naive | Choice::Tiled => None,
        }
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{choice:?} is not a generated {product:?} kernel"))
        })?;
        let what = format!("the {} kernel {}", product.name(), choice.label());
        let built = self.compile_pipeline(&what, code, "gemm")?;
        compiled.insert((product, choice, gated), built.clone());
        Ok(built)
    }
}
