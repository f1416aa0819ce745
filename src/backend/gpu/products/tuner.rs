//! Choosing the kernel of each product by measuring it on the device. On first use of
//! a (product, shape class), the candidates the caller lists are timed on slices of
//! the shape by a function the caller hands over (the tuner launches nothing itself),
//! and the fastest is kept: in memory for the device, and in the tuning cache file
//! ([`tuning_cache`](super::tuning_cache)) for later runs. `MINIDL_TUNE=off` uses the
//! caller's fixed rule instead of measuring.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::choice::Choice;
use super::product::{Product, ProductShape};
use crate::backend::gpu::runtime::context::{lock, Gpu};
use crate::backend::gpu::runtime::timestamps::Timestamps;
use crate::backend::Backend;
use crate::error::Result;

/// The environment variable that turns measuring off (`off`): a fixed rule chooses.
pub const TUNE_ENV: &str = "MINIDL_TUNE";

/// Whether [`TUNE_ENV`] turns measuring off: the fixed rules choose.
pub(crate) fn tuning_off() -> bool {
    std::env::var(TUNE_ENV).as_deref() == Ok("off")
}

/// Timed runs per candidate, after one untimed run (which also compiles it).
const RUNS: usize = 3;

/// A candidate whose first timed run is this many times slower than the best median so
/// far is not run again: that run gives its rate.
pub(crate) const HOPELESS: f64 = 4.0;

/// The most outputs along each side, and the longest sum, on which the plain kernels
/// are measured (multiples of 4, as all the cuts, so that a shape the generated
/// kernels fit still fits when cut).
const PLAIN_OUTPUTS: usize = 128;
const PLAIN_SUM: usize = 1024;

/// The generated kernels' slice: output rows, and the most along each other side
/// (multiples of 4 and of every configuration's rows).
const GENERATED_ROWS: usize = 128;
const GENERATED_SIDE: usize = 2048;

/// Below this many multiply-adds a product is launch-bound: nothing to choose.
const SMALLEST_TUNED: usize = 1 << 18;

/// The shape class of a product: the output's rows and columns and the sum's length,
/// each rounded up to a power of two, so that a handful of measurements cover every
/// size a run meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    product: Product,
    shape: ProductShape,
}

impl ShapeClass {
    /// The class of `product` over `shape`.
    pub fn of(product: Product, shape: ProductShape) -> Self {
        let round = |d: usize| d.max(1).next_power_of_two();
        ShapeClass {
            product,
            shape: ProductShape {
                rows: round(shape.rows),
                cols: round(shape.cols),
                depth: round(shape.depth),
            },
        }
    }

    /// The key in the tuning cache file: the product, then rows × columns × depth.
    pub fn key(&self) -> String {
        let s = self.shape;
        format!("{} {}x{}x{}", self.product.name(), s.rows, s.cols, s.depth)
    }
}

/// The tuner's state for one device (a [`Gpu::state`]): the choices made.
#[derive(Default)]
struct Choices {
    made: Mutex<HashMap<ShapeClass, Choice>>,
}

/// How a caller measures one candidate: `time(choice, slice, hopeless)` returns the
/// median milliseconds of `choice` on a product of `slice` (see `Gpu::median_millis`).
pub type TimeCandidate<'a> = dyn FnMut(Choice, ProductShape, f64) -> Result<f64> + 'a;

impl Gpu {
    /// The kernel for `product` over `shape`: the choice already made for its shape
    /// class; else, with `options()` giving the candidates (which always hold the
    /// naive kernel) and the fixed rule's choice, the cache file's where it is among
    /// the candidates, else the fixed choice where measuring is off, else the fastest
    /// as `time` measures them. Products too small to matter take the naive kernel
    /// without measuring. A choice already made costs no allocation: `options` runs
    /// only on a shape class's first use.
    pub(crate) fn choose(
        &self,
        product: Product,
        shape: ProductShape,
        options: impl FnOnce() -> (Vec<Choice>, Choice),
        time: &mut TimeCandidate<'_>,
    ) -> Result<Choice> {
        if shape.work() < SMALLEST_TUNED {
            return Ok(Choice::Naive);
        }
        let class = ShapeClass::of(product, shape);
        let state = self.state::<Choices>();
        if let Some(&c) = lock(&state.made).get(&class) {
            return Ok(c);
        }
        let (candidates, fixed) = options();
        let choice = if tuning_off() {
            fixed
        } else if let Some(c) = self
            .cached_label(&class.key())
            .and_then(|label| Choice::parse(&label))
            .filter(|c| candidates.contains(c))
        {
            c
        } else {
            let (best, _) = self.fastest(shape, &candidates, time)?;
            self.remember_label(&class.key(), &best.label());
            best
        };
        lock(&state.made).insert(class, choice);
        Ok(choice)
    }

    /// Measures every candidate with `time` and returns the fastest, with every
    /// candidate's rate in multiply-adds per nanosecond, in the order of
    /// `candidates`. The plain kernels, slow, run on a small slice of `shape` (at most
    /// `PLAIN_OUTPUTS` outputs along each side, `PLAIN_SUM` along the sum), and so do
    /// the workgroup-memory ones on a CPU adapter. The other generated ones run with
    /// only `GENERATED_ROWS` of the output's rows and each other side at most
    /// `GENERATED_SIDE`: each block of rows streams the whole of the other operand, as
    /// in the real product, so the slice keeps the memory traffic per output that
    /// decides between tile heights. Candidates are measured from the last (the
    /// generated ones) to the first (the naive kernel), so that a slow plain kernel
    /// `HOPELESS` times slower than the best so far takes one run.
    pub(crate) fn fastest(
        &self,
        shape: ProductShape,
        candidates: &[Choice],
        time: &mut TimeCandidate<'_>,
    ) -> Result<(Choice, Vec<(Choice, f64)>)> {
        let plain = ProductShape {
            rows: shape.rows.min(PLAIN_OUTPUTS),
            cols: shape.cols.min(PLAIN_OUTPUTS),
            depth: shape.depth.min(PLAIN_SUM),
        };
        let generated = ProductShape {
            rows: shape.rows.min(GENERATED_ROWS),
            cols: shape.cols.min(GENERATED_SIDE),
            depth: shape.depth.min(GENERATED_SIDE),
        };
        // A CPU adapter runs workgroup memory slowly: the small slice keeps its
        // measurement short.
        let cpu = self.ctx.adapter.is_cpu();
        let mut rates = Vec::new();
        for &choice in candidates.iter().rev() {
            let slice = match choice {
                Choice::Subgroup(_) => generated,
                Choice::Staged(_) if !cpu => generated,
                _ => plain,
            };
            let work = slice.work() as f64;
            let best = rates
                .iter()
                .map(|r: &(Choice, f64)| r.1)
                .fold(0.0, f64::max);
            let hopeless = if best > 0.0 {
                HOPELESS * work / (best * 1e6)
            } else {
                f64::INFINITY
            };
            let millis = time(choice, slice, hopeless)?;
            rates.push((choice, work / (millis.max(1e-6) * 1e6)));
        }
        rates.reverse();
        let best = rates
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Choice::Naive, |t| t.0);
        Ok((best, rates))
    }

    /// The median milliseconds of the work `run` records (after one untimed run, which
    /// also compiles a generated kernel); the first timed run alone where it takes
    /// longer than `hopeless` milliseconds (see [`Gpu::median_millis_after`]).
    pub(crate) fn median_millis(
        &self,
        hopeless: f64,
        mut run: impl FnMut() -> Result<()>,
    ) -> Result<f64> {
        run()?;
        self.median_millis_after(hopeless, || Ok(()), run)
    }

    /// The median milliseconds of the work `run` records, after the untimed `warm_up`
    /// (which compiles what `run` needs, and may be smaller than it); the first timed
    /// run alone where it takes longer than `hopeless` milliseconds. Each run is waited
    /// for and timed on the device between timestamp queries of a timer of its own
    /// where the adapter has them (the device timer a fit uses stays free), by the wall
    /// clock otherwise.
    pub(crate) fn median_millis_after(
        &self,
        hopeless: f64,
        warm_up: impl FnOnce() -> Result<()>,
        mut run: impl FnMut() -> Result<()>,
    ) -> Result<f64> {
        warm_up()?;
        self.synchronize()?;
        let mut timer = Timestamps::new(
            &self.ctx.device,
            &self.ctx.queue,
            self.ctx.device.features(),
        );
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let millis = match timer.as_mut() {
                Some(timer) => self.device_millis(timer, &mut run)?,
                None => {
                    let start = Instant::now();
                    run()?;
                    self.synchronize()?;
                    start.elapsed().as_secs_f64() * 1e3
                }
            };
            if times.is_empty() && millis > hopeless {
                return Ok(millis);
            }
            times.push(millis);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[RUNS / 2])
    }
}
