//! The convolution as matrix products over its unfolded input (im2col), each product on
//! the kernel the products module's tuner chooses, as a linear layer's. For a group of
//! images, the input is unfolded into one row of `C·kh·kw` taps per output pixel
//! (`cols`), and then
//!
//! - the forward is the linear layer's: `pixel rows = cols · wᵀ + b`, moved back to
//!   (N, O, OH, OW);
//! - the backward moves `dy` to one row of `O` channels per pixel and runs the linear
//!   layer's backward on it: `dcols = dy · w`, folded back onto the input pixels that
//!   each tap read, and `dw (+)= dyᵀ · cols`, `db (+)= Σ dy`.
//!
//! The scratch rows live in the device's [`Workspace`]; the batch runs in groups of
//! images whose unfolded rows stay under [`SCRATCH_ELEMENTS`].

use super::image::conv_params;
use super::linear;
use crate::backend::gpu::kernels::table::Kernel;
use crate::backend::gpu::runtime::context::Gpu;
use crate::backend::gpu::runtime::launch::Grid;
use crate::backend::gpu::runtime::workspace::Workspace;
use crate::backend::{Act, Conv2dGeometry, DeviceTensor, GradMode};
use crate::error::Result;

type T = DeviceTensor<Gpu>;

/// The most elements one scratch buffer holds (32 MiB): a batch whose unfolded rows
/// are larger runs in groups of images.
pub const SCRATCH_ELEMENTS: usize = 1 << 23;

/// The workspace slots: the unfolded rows, the pixel rows, the unfolded rows' gradient.
const COLS: usize = 0;
const PIXELS: usize = 1;
const COLS_GRAD: usize = 2;

/// Images per group for `g`: as many as keep every scratch buffer within
/// [`SCRATCH_ELEMENTS`] and the device's largest binding, at least one.
fn images_per_group(gpu: &Gpu, g: &Conv2dGeometry) -> usize {
    let binding = (gpu.limits().max_storage_buffer_binding_size / 4) as usize;
    let cap = SCRATCH_ELEMENTS.min(binding);
    let per_image = per_image_elements(g);
    (cap / per_image.max(1)).clamp(1, g.batch().max(1))
}

/// The largest scratch buffer one image needs: its unfolded rows or its pixel rows.
fn per_image_elements(g: &Conv2dGeometry) -> usize {
    let (oh, ow) = g.output_size();
    (oh * ow).saturating_mul(g.im2col_depth().max(g.out_channels()))
}

/// Whether one image's scratch rows fit a scratch buffer, so that this path can take `g`.
pub(crate) fn fits(gpu: &Gpu, g: &Conv2dGeometry) -> bool {
    let binding = (gpu.limits().max_storage_buffer_binding_size / 4) as usize;
    per_image_elements(g) <= SCRATCH_ELEMENTS.min(binding)
}

/// The groups of images of `g`'s batch: (first image, geometry of the group).
fn groups(gpu: &Gpu, g: &Conv2dGeometry) -> Result<Vec<(usize, Conv2dGeometry)>> {
    let n = g.batch();
    let per = images_per_group(gpu, g);
    (0..n)
        .step_by(per)
        .map(|first| Ok((first, g.with_batch("conv2d", per.min(n - first))?)))
        .collect()
}

/// The rows of output pixels of `g`'s batch.
fn pixel_rows(g: &Conv2dGeometry) -> usize {
    let (oh, ow) = g.output_size();
    g.batch() * oh * ow
}

/// Records the unfolding of `x` (the images of `g`) into `cols`.
fn unfold(gpu: &Gpu, g: &Conv2dGeometry, x: &T, cols: &T) -> Result<()> {
    let count = cols.len();
    let params = conv_params(g, count, false)?;
    gpu.launch(Kernel::Conv2dUnfold, &[x], cols, params, Grid::Flat(count))
}

/// `y = conv(x, w) + b` as a product over the unfolded input.
pub(crate) fn forward(gpu: &Gpu, g: &Conv2dGeometry, x: &T, w: &T, b: &T, y: &T) -> Result<()> {
    let state = gpu.state::<Workspace>();
    let mut scratch = gpu.workspace(&state);
    for (first, part) in groups(gpu, g)? {
        let rows = pixel_rows(&part);
        let x = x.slice_rows(first, part.batch())?;
        let y = y.slice_rows(first, part.batch())?;
        let cols = scratch.view(COLS, rows, part.im2col_depth())?;
        let pixels = scratch.view(PIXELS, rows, part.out_channels())?;
        unfold(gpu, &part, &x, &cols)?;
        linear::forward(gpu, &cols, w, b, Act::Identity, &pixels)?;
        let count = y.len();
        let params = conv_params(&part, count, false)?;
        gpu.launch(
            Kernel::FromPixelRows,
            &[&pixels],
            &y,
            params,
            Grid::Flat(count),
        )?;
    }
    Ok(())
}

/// The convolution's input gradient (when `dx` is given), weight and bias gradients as
/// products over the unfolded input, the groups after the first adding to `dw`, `db`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    gpu: &Gpu,
    g: &Conv2dGeometry,
    x: &T,
    w: &T,
    dy: &T,
    dx: Option<&T>,
    dw: &T,
    db: &T,
    mode: GradMode,
) -> Result<()> {
    let state = gpu.state::<Workspace>();
    let mut scratch = gpu.workspace(&state);
    let mut mode = mode;
    for (first, part) in groups(gpu, g)? {
        let (rows, depth) = (pixel_rows(&part), part.im2col_depth());
        let x = x.slice_rows(first, part.batch())?;
        let dy = dy.slice_rows(first, part.batch())?;
        let cols = scratch.view(COLS, rows, depth)?;
        let pixels = scratch.view(PIXELS, rows, part.out_channels())?;
        let count = pixels.len();
        let params = conv_params(&part, count, false)?;
        gpu.launch(
            Kernel::ToPixelRows,
            &[&dy],
            &pixels,
            params,
            Grid::Flat(count),
        )?;
        unfold(gpu, &part, &x, &cols)?;
        let cols_grad = match dx {
            Some(_) => Some(scratch.view(COLS_GRAD, rows, depth)?),
            None => None,
        };
        linear::backward(
            gpu,
            &cols,
            w,
            None,
            &pixels,
            Act::Identity,
            cols_grad.as_ref(),
            dw,
            db,
            mode,
        )?;
        mode = GradMode::Accumulate;
        if let (Some(dx), Some(cols_grad)) = (dx, &cols_grad) {
            let dx = dx.slice_rows(first, part.batch())?;
            let count = dx.len();
            let params = conv_params(&part, count, false)?;
            gpu.launch(
                Kernel::Conv2dFold,
                &[cols_grad],
                &dx,
                params,
                Grid::Flat(count),
            )?;
        }
    }
    Ok(())
}
