//! Recording one kernel launch: its workgroup grid within the adapter's limits, its
//! uniform block (sizes, view offsets, scalars) and its buffers, handed to the
//! recorder without any host allocation. A kernel writes one output (binding 4), or
//! two: the second at binding 5, its offset in the third scalar's place.

use super::kernels::Kernel;
use super::recorder::Launch;
use super::{lock, to_u32, Gpu, BLOCK, FLAT, TILE};
use crate::backend::{BufferHandle, DeviceTensor};
use crate::error::{Error, Result};

/// The workgroup grid of a launch.
pub(super) enum Grid {
    /// One invocation per element of a flat range.
    Flat(usize),
    /// One invocation per element of a `rows × cols` matrix, in 16×16 tiles.
    Tiles { rows: usize, cols: usize },
    /// One workgroup per 64×64 block of a `rows × cols` matrix.
    Blocks { rows: usize, cols: usize },
    /// A single workgroup.
    Single,
    /// `x × y` workgroups.
    Groups { x: usize, y: usize },
}

/// The most inputs a built-in kernel binds (bindings 1 to 3 of `common.wgsl`).
pub(super) const MAX_INPUTS: usize = 3;

/// The tensors a launch writes: `main` at binding 4 and, for a kernel with two outputs,
/// `second` at binding 5, whose element offset takes the place of the third scalar
/// (`params.scalars.z`, raw bits: read it with `bitcast<u32>`).
#[derive(Clone, Copy)]
pub(super) struct Outputs<'a> {
    pub main: &'a DeviceTensor<Gpu>,
    pub second: Option<&'a DeviceTensor<Gpu>>,
}

impl<'a> From<&'a DeviceTensor<Gpu>> for Outputs<'a> {
    fn from(main: &'a DeviceTensor<Gpu>) -> Self {
        Outputs { main, second: None }
    }
}

impl Gpu {
    /// Records one launch of a built-in kernel over already-checked tensors.
    pub(super) fn launch<'a>(
        &self,
        kernel: Kernel,
        inputs: &[&DeviceTensor<Gpu>],
        outputs: impl Into<Outputs<'a>>,
        dims: [usize; 4],
        scalars: [f32; 4],
        grid: Grid,
    ) -> Result<()> {
        let pipeline = self.ctx.pipelines.get(kernel);
        let id = kernel.index() as u64;
        self.launch_pipeline(
            kernel.name(),
            pipeline,
            id,
            inputs,
            outputs.into(),
            dims,
            scalars,
            grid,
        )
    }

    /// Records one launch of `pipeline` (known to the bind-group cache as `id`, and to
    /// messages as `name`) over already-checked tensors, with `dims` and `scalars` in
    /// its uniform block.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_pipeline(
        &self,
        name: &str,
        pipeline: &wgpu::ComputePipeline,
        id: u64,
        inputs: &[&DeviceTensor<Gpu>],
        outputs: Outputs<'_>,
        dims: [usize; 4],
        scalars: [f32; 4],
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
            Grid::Tiles { rows, cols } | Grid::Blocks { rows, cols } if rows == 0 || cols == 0 => {
                return Ok(())
            }
            Grid::Flat(count) => {
                let total = count.div_ceil(FLAT);
                let x = total.min(max);
                (x, total.div_ceil(x))
            }
            Grid::Tiles { rows, cols } => (cols.div_ceil(TILE), rows.div_ceil(TILE)),
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
        let mut params = [0u32; 12];
        for (slot, d) in params[0..4].iter_mut().zip(dims) {
            *slot = to_u32("dimension", d)?;
        }
        for (i, t) in inputs.iter().enumerate() {
            params[4 + i] = to_u32("offset", t.offset())?;
        }
        params[7] = to_u32("offset", outputs.main.offset())?;
        for (slot, s) in params[8..12].iter_mut().zip(scalars) {
            *slot = s.to_bits();
        }
        if let Some(second) = outputs.second {
            params[10] = to_u32("offset", second.offset())?;
        }
        let mut raw: [Option<&wgpu::Buffer>; MAX_INPUTS] = [None; MAX_INPUTS];
        let mut input_ids = [0u64; MAX_INPUTS];
        for ((slot, id), t) in raw.iter_mut().zip(input_ids.iter_mut()).zip(inputs) {
            *slot = Some(t.buffer().raw());
            *id = t.buffer().id();
        }
        let launch = Launch {
            pipeline,
            pipeline_id: id,
            params,
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
