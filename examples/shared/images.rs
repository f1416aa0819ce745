//! Pictures of images: rows of images side by side, each row labelled, as a PNG (noisy
//! / denoised / clean digits, a convolution's filters); three channels in colour, one
//! in grey.

use std::path::Path;

use plotters::prelude::*;

use crate::curve::{draw_error, ensure_font, FONT};

/// The least side of a drawn image, in picture pixels: small images (a 5×5 filter)
/// are enlarged more than large ones, at least 4 times.
const MIN_SIDE: usize = 100;
/// The gap between images and the label column, in picture pixels.
const GAP: u32 = 6;
/// The width of the label column.
const LABEL: u32 = 150;
/// The caption's height.
const CAPTION: u32 = 30;

/// The level 0–255 of `v` from `lo` (0) to `hi` (255), clamped.
fn level(v: f32, lo: f32, hi: f32) -> u8 {
    let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    (t.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One labelled row of images, each `channels × height × width` values in (C, H, W)
/// order, and the values shown as black and full intensity (`None`: each image's own
/// minimum and maximum).
pub struct ImageRow<'a> {
    /// The label left of the row.
    pub label: String,
    /// The images, row-major.
    pub images: Vec<&'a [f32]>,
    /// The grey scale's black and white values, or per image.
    pub range: Option<(f32, f32)>,
}

/// Draws `rows` of `channels × height × width` images under `title` into the PNG at
/// `path`: three channels as red, green and blue, any other count as the grey levels
/// of the first channel.
pub fn draw_image_rows(
    path: &Path,
    title: &str,
    (channels, height, width): (usize, usize, usize),
    rows: &[ImageRow<'_>],
) -> Result<(), String> {
    let plane = height * width;
    ensure_font()?;
    let columns = rows.iter().map(|r| r.images.len()).max().unwrap_or(0) as u32;
    let zoom = (MIN_SIDE / height.max(width).max(1)).max(4) as u32;
    let cell = (width as u32 * zoom + GAP, height as u32 * zoom + GAP);
    let size = (
        (LABEL + columns * cell.0 + GAP).max(400),
        CAPTION + rows.len() as u32 * cell.1 + GAP,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| draw_error(path, e);
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    root.draw(&Text::new(title.to_string(), (GAP as i32, 6), (FONT, 18)))
        .map_err(|e| fail(&e))?;
    for (r, row) in rows.iter().enumerate() {
        let top = (CAPTION + r as u32 * cell.1) as i32;
        root.draw(&Text::new(
            row.label.clone(),
            (GAP as i32, top + (cell.1 / 2) as i32 - 8),
            (FONT, 15),
        ))
        .map_err(|e| fail(&e))?;
        for (c, image) in row.images.iter().enumerate() {
            let (lo, hi) = row.range.unwrap_or_else(|| {
                let lo = image.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = image.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                (lo, hi)
            });
            let left = (LABEL + c as u32 * cell.0) as i32;
            for i in 0..plane.min(image.len()) {
                let at = |c: usize| level(image.get(c * plane + i).copied().unwrap_or(lo), lo, hi);
                let colour = match channels {
                    3 => RGBColor(at(0), at(1), at(2)),
                    _ => RGBColor(at(0), at(0), at(0)),
                };
                let (y, x) = ((i / width) as i32, (i % width) as i32);
                let z = zoom as i32;
                let corner = (left + x * z, top + y * z);
                let rect = Rectangle::new([corner, (corner.0 + z, corner.1 + z)], colour.filled());
                root.draw(&rect).map_err(|e| fail(&e))?;
            }
        }
    }
    root.present().map_err(|e| fail(&e))
}
