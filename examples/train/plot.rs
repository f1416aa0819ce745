//! The pictures of a train run: the training curve (loss and validation error per
//! epoch), the test rows' confusion matrix, and a convolutional first layer's filters.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::args::Args;
use crate::curve::{self, draw_error, ensure_font, CurvePoint, FONT};
use crate::report::{Part, Summary};

/// The training curve's file name under `--plot DIR`.
const CURVE_PNG: &str = "training_curve.png";
/// The confusion matrix's file name under `--plot DIR`.
const CONFUSION_PNG: &str = "confusion_matrix.png";

/// Writes the pictures into `dir` (created if needed): the curve when there are epochs,
/// the confusion matrix when the test part has class labels.
pub fn draw(
    dir: &Path,
    args: &Args,
    points: &[CurvePoint],
    summary: &Summary,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let name = args
        .data
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    if !points.is_empty() {
        let title = format!(
            "{name}: {} loss, {}, lr {}, seed {}",
            args.loss.flag(),
            args.optimizer.choice.flag(),
            args.optimizer.lr,
            args.seed
        );
        curve::training_curve(&dir.join(CURVE_PNG), &title, "validation error (%)", points)?;
    }
    if let Some(Part::Classes(c)) = &summary.test {
        let title = format!(
            "{name}: test confusion matrix, accuracy {:.2} %",
            100.0 * c.accuracy()
        );
        confusion_matrix(&dir.join(CONFUSION_PNG), &title, &c.rows())?;
    }
    Ok(())
}

/// The first layer's filters' file name under `--plot DIR`.
const FILTERS_PNG: &str = "filters.png";

/// Writes `DIR/filters.png`: the `[out, in, kh, kw]` weights of a convolutional first
/// layer, one row per input channel (at most 3), one `kh × kw` picture per filter,
/// each filter's weights shaded from its smallest (black) to its largest (white).
pub fn filters(dir: &Path, shape: &[usize], weights: &[f32]) -> Result<(), String> {
    let [out, inputs, kh, kw] = shape[..] else {
        return Err(format!(
            "filters of shape {shape:?}: expected [out, in, kh, kw]"
        ));
    };
    let taps = kh * kw;
    let rows: Vec<crate::images::ImageRow> = (0..inputs.min(3))
        .map(|c| crate::images::ImageRow {
            label: format!("channel {c}"),
            images: (0..out)
                .map(|o| &weights[(o * inputs + c) * taps..(o * inputs + c + 1) * taps])
                .collect(),
            range: None,
        })
        .collect();
    let title = format!("first layer: {out} filters of {kh}×{kw}");
    crate::images::draw_image_rows(&dir.join(FILTERS_PNG), &title, (1, kh, kw), &rows)
}

/// Writes the confusion matrix `rows` (row = true class, column = predicted class) as
/// a grid of cells shaded by the share of their row, each with its count, the axes
/// labelled with the classes. About 100 + 60 pixels per class a side, at most 1600.
pub fn confusion_matrix(path: &Path, title: &str, rows: &[Vec<usize>]) -> Result<(), String> {
    let n = rows.len();
    if n == 0 || rows.iter().any(|r| r.len() != n) {
        return Err(format!(
            "cannot draw {}: the confusion matrix is not square",
            path.display()
        ));
    }
    ensure_font()?;
    let err = |e| draw_error(path, e);
    let cell = (1400 / n as u32).clamp(12, 60);
    let side = cell * n as u32;
    let root = BitMapBackend::new(path, (side + 160, side + 170)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0..n, 0..n)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted class")
        .y_desc("true class")
        // The class labels are written at the cells' centres below.
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new())
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let label = TextStyle::from((FONT, 14).into_font());
    for k in 0..n {
        // Below the cell of predicted class k, and left of the row of true class k (the
        // first true class at the top, as a matrix is read).
        let (x, bottom) = chart.backend_coord(&(k, 0));
        let (left, y) = chart.backend_coord(&(0, n - 1 - k));
        root.draw_text(
            &k.to_string(),
            &label.pos(Pos::new(HPos::Center, VPos::Top)),
            (x + cell as i32 / 2, bottom + 6),
        )
        .map_err(err)?;
        root.draw_text(
            &k.to_string(),
            &label.pos(Pos::new(HPos::Right, VPos::Center)),
            (left - 6, y - cell as i32 / 2),
        )
        .map_err(err)?;
    }
    for (t, row) in rows.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (p, &count) in row.iter().enumerate() {
            let share = count as f64 / total;
            // White to dark blue with the share of the true class.
            let shade = |full: f64, dark: f64| (full - share * (full - dark)) as u8;
            let colour = RGBColor(shade(255.0, 8.0), shade(255.0, 48.0), shade(255.0, 107.0));
            let y = n - 1 - t;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(p, y), (p + 1, y + 1)],
                    colour.filled(),
                )))
                .map_err(err)?;
            if count > 0 && cell >= 20 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FONT, (cell / 3).max(10)).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let (x0, y0) = chart.backend_coord(&(p, y + 1));
                root.draw_text(
                    &count.to_string(),
                    &style,
                    (x0 + cell as i32 / 2, y0 + cell as i32 / 2),
                )
                .map_err(err)?;
            }
        }
    }
    root.present().map_err(err)?;
    Ok(())
}
