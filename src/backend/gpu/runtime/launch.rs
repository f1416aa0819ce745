//! Recording one kernel launch: its workgroup grid within the adapter's limits, its
//! parameter block (the family's struct, with the views' offsets filled in) and its
//! buffers at the bindings of the calling convention, handed to the recorder. A kernel
//! writes one output, or two.

use super::context::{lock, to_u32, Gpu};
use super::recorder::Launch;
use crate::backend::gpu::kernels::convention::{KernelParams, MAX_INPUTS};
use crate::backend::gpu::kernels::table::{Kernel, BLOCK, FLAT, TILE};
use crate::backend::{BufferHandle, DeviceTensor};
use crate::error::{Error, Result};

/// The workgroup grid of a launch.
pub(crate) enum Grid {
    /// One invocation per element of a flat range.
    Flat(usize),
    /// One invocation per output of a `rows × cols` matrix, on 16×16 workgroups.
    PerOutput { rows: usize, cols: usize },
    /// One workgroup per 64×64 block of a `rows × cols` matrix.
    Blocks { rows: usize, cols: usize },
    /// A single workgroup.
    Single,
    /// `x × y` workgroups.
    Groups { x: usize, y: usize },
}

/// The tensors a launch writes: `main` at the output binding and, for a kernel with
/// two outputs, `second` at the second output's.
#[derive(Clone, Copy)]
pub(crate) struct Outputs<'a> {
    pub main: &'a DeviceTensor<Gpu>,
    pub second: Option<&'a DeviceTensor<Gpu>>,
}

impl<'a> From<&'a DeviceTensor<Gpu>> for Outputs<'a> {
    fn from(main: &'a DeviceTensor<Gpu>) -> Self {
        Outputs { main, second: None }
    }
}

impl Gpu {
    /// Records one launch of a built-in kernel over already-checked tensors, with
    /// `params` (its views' offsets are filled in here).
    pub(crate) fn launch<'a, P: KernelParams>(
        &self,
        kernel: Kernel,
        inputs: &[&DeviceTensor<Gpu>],
        outputs: impl Into<Outputs<'a>>,
        params: P,
        grid: Grid,
    ) -> Result<()> {
        let (id, pipeline) = self.ctx.pipelines.get(kernel);
        self.launch_pipeline(
            kernel.name(),
            pipeline,
            id,
            inputs,
            outputs.into(),
            params,
            grid,
        )
    }

    /// Records one launch of `pipeline` (known to the bind-group cache as `id`, and to
    /// messages as `name`) over already-checked tensors, with `params` as its
    /// parameter block (its views' offsets are filled in here).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch_pipeline<P: KernelParams>(
        &self,
        name: &str,
        pipeline: &wgpu::ComputePipeline,
        id: u64,
        inputs: &[&DeviceTensor<Gpu>],
        outputs: Outputs<'_>,
        mut params: P,
        grid: Grid,
    ) -> Result<()> {
        self.health()?;
        if inputs.len() > MAX_INPUTS {
            return Err(Error::InvalidArgument(format!(
                "{name} binds {} inputs, over the {MAX_INPUTS} of the binding convention",
                inputs.len()
            )));
        }
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let groups = match grid {
            Grid::Flat(0) => return Ok(()),
            Grid::PerOutput { rows, cols } | Grid::Blocks { rows, cols }
                if rows == 0 || cols == 0 =>
            {
                return Ok(())
            }
            Grid::Flat(count) => {
                let total = count.div_ceil(FLAT);
                let x = total.min(max);
                (x, total.div_ceil(x))
            }
            Grid::PerOutput { rows, cols } => (cols.div_ceil(TILE), rows.div_ceil(TILE)),
            Grid::Blocks { rows, cols } => (cols.div_ceil(BLOCK), rows.div_ceil(BLOCK)),
            Grid::Single => (1, 1),
            Grid::Groups { x, y } => {
                if x == 0 || y == 0 {
                    return Ok(());
                }
                (x, y)
            }
        };
        if groups.0 > max || groups.1 > max {
            return Err(Error::InvalidArgument(format!(
                "{name} needs {}×{} workgroups, over the adapter's limit of {max} per dimension",
                groups.0, groups.1
            )));
        }
        let mut at = [0u32; 5];
        for (slot, t) in at.iter_mut().zip(inputs) {
            *slot = to_u32("offset", t.offset())?;
        }
        at[3] = to_u32("offset", outputs.main.offset())?;
        if let Some(second) = outputs.second {
            at[4] = to_u32("offset", second.offset())?;
        }
        params.set_views(at);
        let mut raw: [Option<&wgpu::Buffer>; MAX_INPUTS] = [None; MAX_INPUTS];
        let mut input_ids = [0u64; MAX_INPUTS];
        for ((slot, id), t) in raw.iter_mut().zip(input_ids.iter_mut()).zip(inputs) {
            *slot = Some(t.buffer().raw());
            *id = t.buffer().id();
        }
        let launch = Launch {
            pipeline,
            pipeline_id: id,
            params: bytemuck::cast_slice(bytemuck::bytes_of(&params)),
            inputs: raw,
            input_ids,
            output: outputs.main.buffer().raw(),
            output_id: outputs.main.buffer().id(),
            second: outputs.second.map(|t| (t.buffer().raw(), t.buffer().id())),
            groups: (groups.0 as u32, groups.1 as u32),
        };
        let ctx = &self.ctx;
        lock(&ctx.recorder).dispatch(&ctx.device, &ctx.queue, &launch);
        Ok(())
    }
}
