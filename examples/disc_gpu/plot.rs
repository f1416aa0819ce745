//! PNG pictures of a disc_gpu run, drawn with `plotters`: the training curve (loss and
//! test error per epoch) and the learned decision boundary over the unit square.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

/// One epoch of the training curve.
pub struct CurvePoint {
    /// The epoch number (the x coordinate).
    pub epoch: usize,
    /// The training loss of that epoch.
    pub loss: f64,
    /// The test error after that epoch, in percent.
    pub test_error_percent: f64,
}

/// One test point for the decision-boundary picture.
pub struct TestPoint {
    /// The x coordinate, in [0, 1].
    pub x: f32,
    /// The y coordinate, in [0, 1].
    pub y: f32,
    /// The true class, 0 or 1.
    pub label: usize,
    /// Whether the network predicted `label`.
    pub correct: bool,
}

/// The family every text uses; DejaVu Sans is registered under this name.
const FONT: &str = "sans-serif";

/// The training-loss line.
const LOSS_COLOUR: RGBColor = RGBColor(31, 119, 180);
/// The test-error line.
const ERROR_COLOUR: RGBColor = RGBColor(214, 39, 40);
/// The cells predicted as class 0 and class 1 (light blue, light orange).
const LIGHT: [RGBColor; 2] = [RGBColor(189, 215, 238), RGBColor(253, 212, 166)];
/// The correctly classified test points of label 0 and label 1 (dark blue, dark orange).
const DARK: [RGBColor; 2] = [RGBColor(8, 81, 156), RGBColor(230, 120, 0)];
/// The crosses on misclassified test points.
const WRONG_COLOUR: RGBColor = RGBColor(220, 0, 0);
/// The true boundary circle.
const BOUNDARY_COLOUR: RGBColor = RGBColor(40, 40, 40);
/// Curve values beyond this magnitude are left out like NaN, so that axis ranges stay finite.
const MAX_PLOTTED: f64 = 1e300;

/// Registers DejaVu Sans (regular and bold) as [`FONT`], once per process.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("cannot register the DejaVu Sans font with plotters".to_string())
    }
}

/// The message for a drawing error while writing `path`.
fn draw_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot draw {}: {e}", path.display())
}

/// A short tick label: up to five significant digits, plain decimals for moderate
/// magnitudes, else scientific notation (`2.5e-5`).
fn tick(v: f64) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        if a == 0.0 {
            "0".to_string()
        } else {
            v.to_string()
        }
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (4.0 - a.log10().floor()).max(0.0) as usize;
        trim(&format!("{v:.decimals$}")).to_string()
    } else {
        let s = format!("{v:.4e}");
        match s.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim(mantissa)),
            None => s,
        }
    }
}

/// Whether a curve value is drawn: finite and at most [`MAX_PLOTTED`] in magnitude.
fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_PLOTTED
}

/// The smallest and largest plottable values of `values`, if any.
fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|&v| plottable(v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// The runs of consecutive points whose value is plottable (a NaN or infinity breaks the line).
fn finite_runs(
    points: &[CurvePoint],
    value: impl Fn(&CurvePoint) -> f64,
) -> Vec<Vec<(usize, f64)>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    for p in points {
        let v = value(p);
        if plottable(v) {
            run.push((p.epoch, v));
        } else if !run.is_empty() {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Writes the training curve PNG: loss (left y axis, log scale if all losses > 0, else
/// linear) and test error in percent (right y axis, secondary coordinates) against epoch,
/// with axis labels ("epoch", "training loss", "test error (%)"), a caption `title`, and a
/// legend. 1000×600 pixels.
///
/// Values that are NaN or infinite (or beyond ±1e300) are left out: they break the line and
/// do not count for the axis ranges or for the log-scale test. Errors: an empty `points`, or
/// a failure to draw or write the file.
pub fn training_curve(path: &Path, title: &str, points: &[CurvePoint]) -> Result<(), String> {
    if points.is_empty() {
        return Err(format!(
            "cannot draw the training curve {}: no points",
            path.display()
        ));
    }
    ensure_font()?;

    let first = points.iter().map(|p| p.epoch).min().unwrap_or(0);
    let last = points.iter().map(|p| p.epoch).max().unwrap_or(0);
    // A single epoch sits in the middle of a two-epoch-wide axis.
    let epochs = if last > first {
        first..last
    } else {
        first.saturating_sub(1)..first.saturating_add(1)
    };

    let (err_lo, err_hi) =
        finite_range(points.iter().map(|p| p.test_error_percent)).unwrap_or((0.0, 1.0));
    let err_top = if err_hi > 0.0 { err_hi * 1.05 } else { 1.0 };
    let errors = err_lo.min(0.0)..err_top;

    let (loss_lo, loss_hi) = finite_range(points.iter().map(|p| p.loss)).unwrap_or((0.0, 1.0));
    // Whole decades, so that the log axis always has labelled ticks; more than 200 decades
    // (which plotters cannot lay out) falls back to the linear axis.
    let decades = (
        loss_lo.log10().floor(),
        loss_hi.log10().ceil().max(loss_lo.log10().floor() + 1.0),
    );
    if loss_lo > 0.0 && decades.1 - decades.0 <= 200.0 {
        // The lower end is nudged down so that rounding cannot drop its tick.
        let lo = 10f64.powf(decades.0) * (1.0 - 1e-9);
        let hi = 10f64.powf(decades.1);
        draw_curve(path, title, points, epochs, (lo..hi).log_scale(), errors)
    } else {
        let lo = loss_lo.min(0.0);
        let hi = if loss_hi > lo {
            loss_hi + 0.05 * (loss_hi - lo)
        } else {
            lo + 1.0
        };
        draw_curve(path, title, points, epochs, lo..hi, errors)
    }
}

/// Draws the training curve with the loss axis `loss` (linear or logarithmic).
fn draw_curve<Y>(
    path: &Path,
    title: &str,
    points: &[CurvePoint],
    epochs: Range<usize>,
    loss: Y,
    errors: Range<f64>,
) -> Result<(), String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let err = |e| draw_error(path, e);
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;

    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26, FontStyle::Bold))
        .margin(15)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(epochs.clone(), loss)
        .map_err(err)?
        .set_secondary_coord(epochs, errors);

    let label_font = (FONT, 15).into_font();
    let desc_font = (FONT, 19).into_font();
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("training loss")
        .x_labels(12)
        .y_labels(10)
        .x_label_style(label_font.clone())
        .y_label_style(label_font.color(&LOSS_COLOUR))
        .axis_desc_style(desc_font.clone())
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(0, 0, 0).mix(0.04))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("test error (%)")
        .y_labels(10)
        .y_label_formatter(&|v| tick(*v))
        .label_style(label_font.color(&ERROR_COLOUR))
        .axis_desc_style(desc_font)
        .draw()
        .map_err(err)?;

    let markers = points.len() <= 60;
    let loss_style = LOSS_COLOUR.stroke_width(2);
    chart
        .draw_series(
            finite_runs(points, |p| p.loss)
                .into_iter()
                .map(|run| PathElement::new(run, loss_style)),
        )
        .map_err(err)?
        .label("training loss (left axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], loss_style));
    let error_style = ERROR_COLOUR.stroke_width(2);
    chart
        .draw_secondary_series(
            finite_runs(points, |p| p.test_error_percent)
                .into_iter()
                .map(|run| PathElement::new(run, error_style)),
        )
        .map_err(err)?
        .label("test error % (right axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], error_style));
    if markers {
        chart
            .draw_series(
                finite_runs(points, |p| p.loss)
                    .into_iter()
                    .flatten()
                    .map(|p| Circle::new(p, 3, LOSS_COLOUR.filled())),
            )
            .map_err(err)?;
        chart
            .draw_secondary_series(
                finite_runs(points, |p| p.test_error_percent)
                    .into_iter()
                    .flatten()
                    .map(|p| Circle::new(p, 3, ERROR_COLOUR.filled())),
            )
            .map_err(err)?;
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0, 0, 0).mix(0.4))
        .margin(12)
        .draw()
        .map_err(err)?;

    root.present().map_err(err)?;
    Ok(())
}

/// Writes the decision-boundary PNG over [0,1]²: `grid` is `n × n` predicted classes
/// (class 0/1), row-major, row r is y = (r + 0.5)/n from bottom (y=0) to top, column c is
/// x = (c + 0.5)/n; each cell is filled with a light colour per class (light blue for 0,
/// light orange for 1). Overlays the true boundary, a circle of centre (0.5, 0.5) and
/// radius `radius`, as a thin dark line, and the test points: correct ones as small filled
/// dots coloured by label (darker blue / darker orange), wrong ones as larger red crosses so
/// they stand out. Axes x and y from 0 to 1 with labels, caption `title`, and a legend below
/// the square that says how many points are misclassified. About 800×800 pixels.
///
/// Points outside the unit square are counted but not drawn. Errors: `n` is 0,
/// `grid.len() != n * n`, a class or label other than 0 or 1, a radius that is not a
/// positive finite number, or a failure to draw or write the file.
pub fn decision_boundary(
    path: &Path,
    title: &str,
    n: usize,
    grid: &[usize],
    radius: f64,
    points: &[TestPoint],
) -> Result<(), String> {
    let name = path.display();
    if n == 0 {
        return Err(format!("cannot draw {name}: the grid size n is 0"));
    }
    if n.checked_mul(n) != Some(grid.len()) {
        return Err(format!(
            "cannot draw {name}: the grid has {} cells, expected n × n = {n} × {n}",
            grid.len()
        ));
    }
    if let Some(i) = grid.iter().position(|&c| c > 1) {
        return Err(format!(
            "cannot draw {name}: grid cell (row {}, column {}) has class {}, expected 0 or 1",
            i / n,
            i % n,
            grid[i]
        ));
    }
    if let Some(i) = points.iter().position(|p| p.label > 1) {
        return Err(format!(
            "cannot draw {name}: test point {i} has label {}, expected 0 or 1",
            points[i].label
        ));
    }
    if !(radius.is_finite() && radius > 0.0) {
        return Err(format!(
            "cannot draw {name}: the radius {radius} is not a positive number"
        ));
    }
    ensure_font()?;

    let err = |e| draw_error(path, e);
    let root = BitMapBackend::new(path, (800, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, legend) = root.split_vertically(738);

    // The margins make the plotting area a 648 px square.
    let mut chart = ChartBuilder::on(&top)
        .caption(title, (FONT, 26, FontStyle::Bold))
        .margin_top(10)
        .margin_left(20)
        .margin_right(67)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(err)?;

    // Predicted classes: one rectangle per run of equal cells in a row.
    let cell = 1.0 / n as f64;
    let mut rects = Vec::new();
    for (r, row) in grid.chunks(n).enumerate() {
        let mut start = 0;
        for c in 1..=n {
            if c == n || row[c] != row[start] {
                let (x0, x1) = (start as f64 * cell, c as f64 * cell);
                let (y0, y1) = (r as f64 * cell, (r + 1) as f64 * cell);
                rects.push(Rectangle::new(
                    [(x0, y1), (x1, y0)],
                    LIGHT[row[start]].filled(),
                ));
                start = c;
            }
        }
    }
    chart.draw_series(rects).map_err(err)?;

    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .x_labels(11)
        .y_labels(11)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 19))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(0, 0, 0).mix(0.1))
        .draw()
        .map_err(err)?;

    // The true boundary, split where it leaves the unit square.
    let inside = |x: f64, y: f64| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y);
    let mut arcs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for k in 0..=720 {
        let t = k as f64 / 720.0 * std::f64::consts::TAU;
        let (x, y) = (0.5 + radius * t.cos(), 0.5 + radius * t.sin());
        if inside(x, y) {
            if let Some(arc) = arcs.last_mut() {
                arc.push((x, y));
            }
        } else if arcs.last().is_some_and(|a| !a.is_empty()) {
            arcs.push(Vec::new());
        }
    }
    let boundary_style = BOUNDARY_COLOUR.stroke_width(2);
    chart
        .draw_series(
            arcs.into_iter()
                .filter(|a| a.len() > 1)
                .map(|a| PathElement::new(a, boundary_style)),
        )
        .map_err(err)?;

    let shown = |p: &&TestPoint| inside(f64::from(p.x), f64::from(p.y));
    chart
        .draw_series(
            points
                .iter()
                .filter(|p| p.correct)
                .filter(shown)
                .map(|p| Circle::new((f64::from(p.x), f64::from(p.y)), 3, DARK[p.label].filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(points.iter().filter(|p| !p.correct).filter(shown).map(|p| {
            Cross::new(
                (f64::from(p.x), f64::from(p.y)),
                5,
                WRONG_COLOUR.stroke_width(3),
            )
        }))
        .map_err(err)?;

    let wrong = points.iter().filter(|p| !p.correct).count();
    draw_boundary_legend(&legend, wrong, points.len()).map_err(err)?;

    root.present().map_err(err)?;
    Ok(())
}

/// The symbol in front of one entry of the decision-boundary legend.
enum Symbol {
    /// A cell predicted as this class.
    Cell(usize),
    /// A correctly classified test point of this label.
    Dot(usize),
    /// A misclassified test point.
    Cross,
    /// The true boundary.
    Line,
}

/// Draws the legend strip under the decision-boundary square.
fn draw_boundary_legend<'a>(
    area: &DrawingArea<BitMapBackend<'a>, Shift>,
    wrong: usize,
    total: usize,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>> {
    let font = TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let percent = if total > 0 {
        100.0 * wrong as f64 / total as f64
    } else {
        0.0
    };
    let rows = [
        vec![
            (Symbol::Cell(0), "predicted 0".to_string()),
            (Symbol::Cell(1), "predicted 1".to_string()),
            (Symbol::Line, "true boundary".to_string()),
        ],
        vec![
            (Symbol::Dot(0), "label 0".to_string()),
            (Symbol::Dot(1), "label 1".to_string()),
            (
                Symbol::Cross,
                format!("misclassified: {wrong} of {total} ({percent:.1}%)"),
            ),
        ],
    ];
    // Each entry is a 22 px symbol, an 8 px gap and its text; entries are 28 px apart, and
    // each row is centred.
    let (w, _) = area.dim_in_pixel();
    for (row, entries) in rows.iter().enumerate() {
        let y = 14 + 30 * row as i32;
        let mut widths = Vec::new();
        for (_, text) in entries {
            widths.push(area.estimate_text_size(text, &font)?.0 as i32);
        }
        let row_w =
            widths.iter().map(|tw| 22 + 8 + tw).sum::<i32>() + 28 * (entries.len() as i32 - 1);
        let mut x = (w as i32 - row_w) / 2;
        for ((symbol, text), tw) in entries.iter().zip(widths) {
            let centre = (x + 11, y);
            match *symbol {
                Symbol::Cell(class) => area.draw(&Rectangle::new(
                    [(x + 2, y - 8), (x + 20, y + 8)],
                    LIGHT[class].filled(),
                ))?,
                Symbol::Dot(label) => area.draw(&Circle::new(centre, 4, DARK[label].filled()))?,
                Symbol::Cross => area.draw(&Cross::new(centre, 5, WRONG_COLOUR.stroke_width(3)))?,
                Symbol::Line => area.draw(&PathElement::new(
                    vec![(x, y), (x + 22, y)],
                    BOUNDARY_COLOUR.stroke_width(2),
                ))?,
            }
            area.draw(&Text::new(text.clone(), (x + 30, y), font.clone()))?;
            x += 22 + 8 + tw + 28;
        }
    }
    Ok(())
}
