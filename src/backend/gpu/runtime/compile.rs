//! Compiling one generated kernel into a pipeline, under an error scope so that a
//! shader the driver refuses is an error, not a lost device; through the device's
//! pipeline cache where it has one, which is saved after the build.

use super::context::Gpu;
use super::recorder::next_pipeline_id;
use crate::error::{Error, Result};

impl Gpu {
    /// The pipeline of entry point `entry` of the WGSL `source`, and its number for the
    /// bind-group cache. `what` names the kernel in the error where the driver refuses
    /// it.
    pub(crate) fn compile_pipeline(
        &self,
        what: &str,
        source: String,
        entry: &str,
    ) -> Result<(u64, wgpu::ComputePipeline)> {
        let ctx = &self.ctx;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: ctx.cache(),
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("compiling {what}: {e}")));
        }
        ctx.built();
        Ok((next_pipeline_id(), pipeline))
    }
}
