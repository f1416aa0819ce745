//! The pictures of disc_gpu, drawn with `plotters`: the decision boundary of a run
//! (the learned classes over the unit square, the true circle and the test points),
//! and the test errors and training curves of several runs.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::median;
use crate::curve::{
    draw_error, draw_training_curve, ensure_font, legend, plottable, tick, Band, CurvePoint, FONT,
};

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

/// The cells predicted as class 0 and class 1 (light blue, light orange).
const LIGHT: [RGBColor; 2] = [RGBColor(189, 215, 238), RGBColor(253, 212, 166)];
/// The correctly classified test points of label 0 and label 1 (dark blue, dark orange).
const DARK: [RGBColor; 2] = [RGBColor(8, 81, 156), RGBColor(230, 120, 0)];
/// The crosses on misclassified test points.
const WRONG_COLOUR: RGBColor = RGBColor(220, 0, 0);
/// The true boundary circle.
const BOUNDARY_COLOUR: RGBColor = RGBColor(40, 40, 40);

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

/// The runs of one recipe for [`run_distribution`].
pub struct Recipe {
    /// The recipe's name in the legend ("cosine schedule", say).
    pub name: String,
    /// Each run's seed and test errors.
    pub runs: Vec<(u64, usize)>,
}

/// The colours of the recipes of [`run_distribution`], in turn.
const RECIPE_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Writes the distribution of test errors over runs as a PNG: one point per run at
/// its seed (x; several recipes side by side around it) and test errors out of
/// `points` (y), one colour per recipe, and each recipe's median as a dashed line, the
/// legend giving median and range. 1000×600 pixels. Errors: no runs at all, or a failure to draw or write the file.
pub fn run_distribution(
    path: &Path,
    title: &str,
    recipes: &[Recipe],
    points: usize,
) -> Result<(), String> {
    let all = || recipes.iter().flat_map(|r| r.runs.iter());
    let (Some(first), Some(last)) = (all().map(|r| r.0).min(), all().map(|r| r.0).max()) else {
        return Err(format!("cannot draw {}: no runs", path.display()));
    };
    ensure_font()?;
    let err = |e| draw_error(path, e);
    let highest = all().map(|r| r.1).max().unwrap_or(0) as f64;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let seeds = first as f64 - 0.5..last as f64 + 0.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24, FontStyle::Bold))
        .margin(15)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(seeds.clone(), 0.0..(highest * 1.15).max(1.0))
        .map_err(err)?;
    let label_font = (FONT, 15).into_font();
    chart
        .configure_mesh()
        .x_desc("seed (data from the seed, initial weights from the seed + 1)")
        .y_desc(format!("test errors out of {points}"))
        .x_labels(12)
        .y_labels(10)
        .x_label_style(label_font.clone())
        .y_label_style(label_font)
        .axis_desc_style((FONT, 19))
        .x_label_formatter(&|v| tick(v.round()))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(0, 0, 0).mix(0.04))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
        .draw()
        .map_err(err)?;
    // Several recipes sit side by side around each seed, so that equal values stay
    // visible.
    let shift = |r: usize| (r as f64 - (recipes.len() as f64 - 1.0) / 2.0) * 0.2;
    for (r, (recipe, colour)) in recipes
        .iter()
        .zip(RECIPE_COLOURS.iter().cycle())
        .enumerate()
    {
        let errors = || recipe.runs.iter().map(|r| r.1);
        let (Some(min), Some(max)) = (errors().min(), errors().max()) else {
            continue;
        };
        let n = recipe.runs.len();
        let median = median(errors().map(|e| e as f64).collect());
        let colour = *colour;
        chart
            .draw_series(recipe.runs.iter().map(|&(seed, e)| {
                Circle::new((seed as f64 + shift(r), e as f64), 5, colour.filled())
            }))
            .map_err(err)?
            .label(format!(
                "{}: median {} (min {}, max {}) over {n} runs",
                recipe.name,
                tick(median),
                min,
                max
            ))
            .legend(move |(x, y)| Circle::new((x + 12, y), 5, colour.filled()));
        chart
            .draw_series(DashedLineSeries::new(
                [(seeds.start, median), (seeds.end, median)],
                8,
                5,
                colour.stroke_width(2),
            ))
            .map_err(err)?;
    }
    legend(&mut chart.configure_series_labels())
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Writes the training curves of several runs of the same recipe: per epoch, the
/// median over the runs of the loss and of the error metric as lines, with a band from
/// their minimum to their maximum, on the axes of
/// [`training_curve`](crate::curve::training_curve). The runs' curves must cover the
/// same epochs (those of the first run are used); values that are NaN or infinite in a
/// run are left out of that epoch's median and range. Errors: no
/// runs or an empty first run, or a failure to draw or write the file.
pub fn training_curve_of_runs(
    path: &Path,
    title: &str,
    metric: &str,
    runs: &[Vec<CurvePoint>],
) -> Result<(), String> {
    let Some(first) = runs.first().filter(|r| !r.is_empty()) else {
        return Err(format!(
            "cannot draw the training curves {}: no points",
            path.display()
        ));
    };
    // The median, smallest and largest plottable value at epoch `i`; NaN for none.
    let spread = |i: usize, value: fn(&CurvePoint) -> f64| -> (f64, f64, f64) {
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.get(i).map(value))
            .filter(|&v| plottable(v))
            .collect();
        let lo = values.iter().copied().reduce(f64::min).unwrap_or(f64::NAN);
        let hi = values.iter().copied().reduce(f64::max).unwrap_or(f64::NAN);
        (median(values), lo, hi)
    };
    let mut medians = Vec::new();
    let mut bands = Vec::new();
    for (i, p) in first.iter().enumerate() {
        let (loss, loss_lo, loss_hi) = spread(i, |p| p.loss);
        let (error, error_lo, error_hi) = spread(i, |p| p.error_percent);
        medians.push(CurvePoint {
            epoch: p.epoch,
            loss,
            error_percent: error,
        });
        bands.push(Band {
            epoch: p.epoch,
            loss: (loss_lo, loss_hi),
            error: (error_lo, error_hi),
        });
    }
    draw_training_curve(path, title, metric, &medians, &bands)
}
