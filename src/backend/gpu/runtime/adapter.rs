//! Adapter choice: the most capable adapter by default (discrete, then integrated,
//! virtual, software), or the first whose name contains a requested substring, given
//! as an argument or in the `MINIDL_ADAPTER` environment variable.

use crate::error::{Error, Result};

/// The environment variable that picks an adapter by (case-insensitive) substring.
pub const ADAPTER_ENV: &str = "MINIDL_ADAPTER";

/// What minidl reports about an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// The graphics API behind it: `Vulkan`, `Metal`, `Dx12`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// The driver's name, where the platform reports one.
    pub driver: String,
}

impl AdapterSummary {
    pub(crate) fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
        }
    }

    /// Whether the adapter is a CPU (llvmpipe): the one test for it, which decides the
    /// loop budget and the fused trainer's workgroup shape.
    pub fn is_cpu(&self) -> bool {
        self.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// A wgpu instance over the mission's APIs (Vulkan, Metal, DX12), or those named in
/// `WGPU_BACKEND`.
pub(crate) fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    wgpu::Instance::new(desc)
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Every adapter of `instance`, most capable first.
pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

/// The adapter to use: the first whose name contains `wanted` (case-insensitive), or
/// the `MINIDL_ADAPTER` variable when `wanted` is `None`, or else the most capable.
pub(crate) fn choose(instance: &wgpu::Instance, wanted: Option<&str>) -> Result<wgpu::Adapter> {
    let from_env = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
    let wanted = wanted.map(str::to_string).or(from_env);
    let adapters = enumerate(instance);
    if adapters.is_empty() {
        let asked = wanted
            .as_ref()
            .map(|w| format!("no adapter name contains {w:?}: "))
            .unwrap_or_default();
        return Err(Error::NoAdapter(format!(
            "{asked}no Vulkan, Metal or DX12 adapter found; on a machine without a GPU, \
             install Mesa's software Vulkan driver (Debian/Ubuntu: mesa-vulkan-drivers)"
        )));
    }
    let Some(wanted) = wanted else {
        return Ok(adapters.into_iter().next().expect("checked non-empty"));
    };
    let needle = wanted.to_lowercase();
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    match adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&needle))
    {
        Some(adapter) => Ok(adapter),
        None => Err(Error::NoAdapter(format!(
            "no adapter name contains {wanted:?}; available: {}",
            names.join(", ")
        ))),
    }
}
