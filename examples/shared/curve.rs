//! The training-curve picture shared by the examples (loss and an error metric per
//! epoch, drawn with `plotters`, with min–max bands where it shows several runs), and
//! the font and tick helpers their other pictures use.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::chart::SeriesLabelStyle;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use plotters::style::{register_font, FontStyle};

/// One epoch of the training curve.
#[derive(Debug, Clone, Copy)]
pub struct CurvePoint {
    /// The epoch number (the x coordinate).
    pub epoch: usize,
    /// The training loss of that epoch.
    pub loss: f64,
    /// The error metric after that epoch (test or validation error in percent, say);
    /// NaN where it was not measured.
    pub error_percent: f64,
}

/// The spread of several runs at one epoch: the smallest and largest loss and error.
pub struct Band {
    /// The epoch number.
    pub epoch: usize,
    /// The smallest and largest training loss.
    pub loss: (f64, f64),
    /// The smallest and largest error metric.
    pub error: (f64, f64),
}

/// The family every text uses; DejaVu Sans is registered under this name.
pub const FONT: &str = "sans-serif";

/// The training-loss line.
const LOSS_COLOUR: RGBColor = RGBColor(31, 119, 180);
/// The test-error line.
const ERROR_COLOUR: RGBColor = RGBColor(214, 39, 40);
/// Curve values beyond this magnitude are left out like NaN, so that axis ranges stay finite.
const MAX_PLOTTED: f64 = 1e300;

/// Registers DejaVu Sans (regular and bold) as [`FONT`], once per process.
pub fn ensure_font() -> Result<(), String> {
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

/// The legend style every picture uses: upper right, on a light box with a border.
pub fn legend<'s, 'a, 'b, DB, CT>(
    labels: &'s mut SeriesLabelStyle<'a, 'b, DB, CT>,
) -> &'s mut SeriesLabelStyle<'a, 'b, DB, CT>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    labels
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0, 0, 0).mix(0.4))
        .margin(12)
}

/// The message for a drawing error while writing `path`.
pub fn draw_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot draw {}: {e}", path.display())
}

/// A short tick label: up to five significant digits, plain decimals for moderate
/// magnitudes, else scientific notation (`2.5e-5`).
pub fn tick(v: f64) -> String {
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
pub fn plottable(v: f64) -> bool {
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
/// linear) and the error metric `metric` (its axis label, say "test error (%)") on the
/// right y axis (secondary coordinates) against epoch, with axis labels ("epoch",
/// "training loss", `metric`), a caption `title`, and a
/// legend. 1000×600 pixels.
///
/// Values that are NaN or infinite (or beyond ±1e300) are left out: they break the line and
/// do not count for the axis ranges or for the log-scale test. Errors: an empty `points`, or
/// a failure to draw or write the file.
pub fn training_curve(
    path: &Path,
    title: &str,
    metric: &str,
    points: &[CurvePoint],
) -> Result<(), String> {
    if points.is_empty() {
        return Err(format!(
            "cannot draw the training curve {}: no points",
            path.display()
        ));
    }
    draw_training_curve(path, title, metric, points, &[])
}

/// [`training_curve`] with the min–max `bands` of several runs behind the lines (none
/// for one run); the axes cover the bands too.
pub fn draw_training_curve(
    path: &Path,
    title: &str,
    metric: &str,
    points: &[CurvePoint],
    bands: &[Band],
) -> Result<(), String> {
    ensure_font()?;

    let first = points.iter().map(|p| p.epoch).min().unwrap_or(0);
    let last = points.iter().map(|p| p.epoch).max().unwrap_or(0);
    // A single epoch sits in the middle of a two-epoch-wide axis.
    let epochs = if last > first {
        first..last
    } else {
        first.saturating_sub(1)..first.saturating_add(1)
    };

    let band_errors = bands.iter().flat_map(|b| [b.error.0, b.error.1]);
    let (err_lo, err_hi) = finite_range(points.iter().map(|p| p.error_percent).chain(band_errors))
        .unwrap_or((0.0, 1.0));
    let err_top = if err_hi > 0.0 { err_hi * 1.05 } else { 1.0 };
    let errors = err_lo.min(0.0)..err_top;

    let band_losses = bands.iter().flat_map(|b| [b.loss.0, b.loss.1]);
    let (loss_lo, loss_hi) =
        finite_range(points.iter().map(|p| p.loss).chain(band_losses)).unwrap_or((0.0, 1.0));
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
        draw_curve(
            path,
            title,
            metric,
            (points, bands),
            epochs,
            (lo..hi).log_scale(),
            errors,
        )
    } else {
        let lo = loss_lo.min(0.0);
        let hi = if loss_hi > lo {
            loss_hi + 0.05 * (loss_hi - lo)
        } else {
            lo + 1.0
        };
        draw_curve(path, title, metric, (points, bands), epochs, lo..hi, errors)
    }
}

/// The polygons of a band: for each stretch of epochs where both ends are plottable,
/// the upper edge forwards and the lower edge back.
fn band_polygons(bands: &[Band], range: impl Fn(&Band) -> (f64, f64)) -> Vec<Vec<(usize, f64)>> {
    let mut polygons = Vec::new();
    let mut stretch: Vec<&Band> = Vec::new();
    let close = |stretch: &mut Vec<&Band>, polygons: &mut Vec<Vec<(usize, f64)>>| {
        if stretch.len() > 1 {
            let upper = stretch.iter().map(|b| (b.epoch, range(b).1));
            let lower = stretch.iter().rev().map(|b| (b.epoch, range(b).0));
            polygons.push(upper.chain(lower).collect());
        }
        stretch.clear();
    };
    for b in bands {
        let (lo, hi) = range(b);
        if plottable(lo) && plottable(hi) {
            stretch.push(b);
        } else {
            close(&mut stretch, &mut polygons);
        }
    }
    close(&mut stretch, &mut polygons);
    polygons
}

/// Draws the training curve, with the bands of several runs behind it, with the loss
/// axis `loss` (linear or logarithmic).
fn draw_curve<Y>(
    path: &Path,
    title: &str,
    metric: &str,
    (points, bands): (&[CurvePoint], &[Band]),
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
        .y_desc(metric)
        .y_labels(10)
        .y_label_formatter(&|v| tick(*v))
        .label_style(label_font.color(&ERROR_COLOUR))
        .axis_desc_style(desc_font)
        .draw()
        .map_err(err)?;

    let median = if bands.is_empty() { "" } else { "median " };
    if !bands.is_empty() {
        chart
            .draw_series(
                band_polygons(bands, |b| b.loss)
                    .into_iter()
                    .map(|p| Polygon::new(p, LOSS_COLOUR.mix(0.2).filled())),
            )
            .map_err(err)?
            .label("min–max over the runs")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 6), (x + 24, y + 6)],
                    RGBColor(0, 0, 0).mix(0.2).filled(),
                )
            });
        chart
            .draw_secondary_series(
                band_polygons(bands, |b| b.error)
                    .into_iter()
                    .map(|p| Polygon::new(p, ERROR_COLOUR.mix(0.2).filled())),
            )
            .map_err(err)?;
    }
    let markers = points.len() <= 60;
    let loss_style = LOSS_COLOUR.stroke_width(2);
    chart
        .draw_series(
            finite_runs(points, |p| p.loss)
                .into_iter()
                .map(|run| PathElement::new(run, loss_style)),
        )
        .map_err(err)?
        .label(format!("{median}training loss (left axis)"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], loss_style));
    let error_style = ERROR_COLOUR.stroke_width(2);
    chart
        .draw_secondary_series(
            finite_runs(points, |p| p.error_percent)
                .into_iter()
                .map(|run| PathElement::new(run, error_style)),
        )
        .map_err(err)?
        .label(format!("{median}{metric} (right axis)"))
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
                finite_runs(points, |p| p.error_percent)
                    .into_iter()
                    .flatten()
                    .map(|p| Circle::new(p, 3, ERROR_COLOUR.filled())),
            )
            .map_err(err)?;
    }

    legend(&mut chart.configure_series_labels())
        .draw()
        .map_err(err)?;

    root.present().map_err(err)?;
    Ok(())
}
