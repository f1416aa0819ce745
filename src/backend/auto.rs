//! The `auto` backend choice: the fastest backend the machine has. A hardware GPU
//! (discrete, integrated or virtual) where one exists; else the [`Cpu`] backend, which
//! is faster than a software Vulkan driver (Mesa's lavapipe, the adapter `llvmpipe`)
//! on every workload the benchmark measures (`docs/performance.md`). An adapter asked
//! for by name, as an argument or in `MINIDL_ADAPTER`, is used whatever its kind.

use crate::backend::gpu::runtime::adapter::ADAPTER_ENV;
use crate::backend::{Cpu, Gpu};
use crate::error::{Error, Result};

/// The backend [`choose`] picked.
#[derive(Debug, Clone)]
pub enum Chosen {
    /// A GPU: a hardware adapter, or the one asked for by name.
    Gpu(Gpu),
    /// The CPU backend, and why no GPU was taken (for a one-line notice).
    Cpu {
        /// The backend, on the default thread count ([`Cpu::new`]).
        cpu: Cpu,
        /// Why: no adapter at all, or only a software one.
        why: String,
    },
}

/// Picks the backend for `--backend auto`: the adapter whose name contains `adapter`
/// (or `MINIDL_ADAPTER`) when one is named, else the most capable hardware adapter,
/// else the CPU. Fails only where a device cannot be created on a chosen adapter.
pub fn choose(adapter: Option<&str>) -> Result<Chosen> {
    let from_env = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
    let named = adapter.map(str::to_string).or(from_env);
    let cpu = |why: String| Chosen::Cpu {
        cpu: Cpu::new(),
        why,
    };
    if let Some(name) = named {
        return match Gpu::with_adapter(Some(&name)) {
            Ok(gpu) => Ok(Chosen::Gpu(gpu)),
            Err(e @ Error::NoAdapter(_)) => Ok(cpu(e.to_string())),
            Err(e) => Err(e),
        };
    }
    let adapters = Gpu::adapters();
    let hardware = |t: &str| matches!(t, "DiscreteGpu" | "IntegratedGpu" | "VirtualGpu");
    if adapters.iter().any(|a| hardware(&a.device_type)) {
        // The default choice ranks hardware adapters first.
        return Gpu::new().map(Chosen::Gpu);
    }
    Ok(cpu(match adapters.first() {
        None => "no GPU adapter found".to_string(),
        Some(a) => format!(
            "the only GPU adapter is {a}, which the CPU backend outruns (--backend gpu uses it)"
        ),
    }))
}
