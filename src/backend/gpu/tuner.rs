//! Choosing the kernel of each matrix product by measuring it on the device. On first
//! use of a (product, shape class) the candidates — the plain kernels and the
//! generated ones of [`gemm`] and [`gemm_staged`] that the adapter can run — are timed
//! on slices of the shape ([`Gpu::measure`]), and the fastest is kept: in memory for
//! the device, and in a file under the user's cache directory for later runs
//! (`MINIDL_TUNE_CACHE` names the file; `MINIDL_TUNE=off` uses a fixed rule instead of
//! measuring). A missing, unreadable, damaged or foreign file means measuring again,
//! never a wrong kernel: an entry names a kernel of the families, and every kernel
//! computes the same product.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::gemm::{self, GemmConfig, Product};
use super::gemm_staged::{self, StagedConfig};
use super::timer::Timer;
use super::{lock, Gpu};
use crate::backend::{Act, Backend, GradMode};
use crate::error::{Error, Result};

/// The environment variable that names the tuning cache file.
pub const TUNE_CACHE_ENV: &str = "MINIDL_TUNE_CACHE";
/// The environment variable that turns measuring off (`off`): a fixed rule chooses.
pub const TUNE_ENV: &str = "MINIDL_TUNE";

/// The first bind-group-cache id of the generated product kernels (the built-in
/// kernels count from 0, the fused trainers from 2³²).
const FIRST_ID: u64 = 1 << 40;

/// Timed runs per candidate, after one untimed run (which also compiles it).
const RUNS: usize = 3;

/// A candidate whose first timed run is this many times slower than the best median so
/// far is not run again: that run gives its rate.
const HOPELESS: f64 = 4.0;

/// The most outputs along each side, and the longest sum, on which the plain kernels
/// are measured (multiples of 4, as all the cuts, so that a shape the generated
/// kernels fit still fits when cut).
const PLAIN_OUTPUTS: usize = 128;
const PLAIN_SUM: usize = 1024;

/// The generated kernels' slice: output rows, and the most along each other side
/// (multiples of 4 and of every configuration's rows).
const GENERATED_ROWS: usize = 128;
const GENERATED_SIDE: usize = 2048;

/// A kernel that computes one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// One invocation per output (`shaders/linear.wgsl`).
    Naive,
    /// The forward's 64×64 workgroup-memory tiles (`linear_forward_tiled`).
    Tiled,
    /// A generated subgroup kernel ([`gemm`]).
    Generated(GemmConfig),
    /// A generated workgroup-memory kernel ([`gemm_staged`]).
    Staged(StagedConfig),
}

impl Choice {
    /// The name in the cache file and the benchmark: `naive`, `tiled`, or the
    /// generated configuration's label.
    pub fn label(self) -> String {
        match self {
            Choice::Naive => "naive".into(),
            Choice::Tiled => "tiled".into(),
            Choice::Generated(c) => c.label(),
            Choice::Staged(c) => c.label(),
        }
    }

    /// The choice a label names.
    fn parse(label: &str) -> Option<Choice> {
        match label {
            "naive" => Some(Choice::Naive),
            "tiled" => Some(Choice::Tiled),
            _ if label.starts_with('s') => StagedConfig::parse(label).map(Choice::Staged),
            _ => {
                let (rc, lanes) = label.split_once('/')?;
                let (rows, cols) = rc.split_once('x')?;
                Some(Choice::Generated(GemmConfig {
                    rows: rows.parse().ok()?,
                    cols: cols.parse().ok()?,
                    lanes: lanes.parse().ok()?,
                }))
            }
        }
    }
}

/// The shape class of a product: each dimension rounded up to a power of two, so that
/// a handful of measurements cover every batch size and width a run meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShapeClass {
    product: Product,
    /// `n`, `k`, `m` of the linear layer (`x: n×k`, `w: m×k`), rounded up.
    dims: [usize; 3],
}

impl ShapeClass {
    fn of(product: Product, n: usize, k: usize, m: usize) -> Self {
        ShapeClass {
            product,
            dims: [n, k, m].map(|d| d.max(1).next_power_of_two()),
        }
    }

    fn key(&self) -> String {
        format!(
            "{} {}x{}x{}",
            self.product.name(),
            self.dims[0],
            self.dims[1],
            self.dims[2]
        )
    }
}

/// The tuner's state for one device: compiled generated kernels and the choices made.
#[derive(Default)]
pub(super) struct Tuner {
    pipelines: HashMap<(Product, Choice, bool), (u64, wgpu::ComputePipeline)>,
    choices: HashMap<ShapeClass, Choice>,
    /// The cache file's entries for this adapter, read once.
    file: Option<HashMap<String, Choice>>,
}

/// The generated configurations tried on an adapter with subgroups of `lanes`.
pub fn candidates(product: Product, lanes: u32) -> Vec<GemmConfig> {
    let rows: &[u32] = match product {
        Product::GradWeight => &[32, 64],
        _ => &[16, 32, 64],
    };
    rows.iter()
        .map(|&r| GemmConfig {
            rows: r.max(lanes * if product == Product::GradWeight { 4 } else { 1 }),
            cols: 8,
            lanes,
        })
        .filter(|c| c.is_valid(product))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The workgroup-memory configurations tried on every adapter: 64 × 64 outputs per
/// workgroup of 16 × 16 invocations, 4 × 4 each, 8 steps of the sum staged at once,
/// with one stage and with two.
pub fn staged_candidates() -> Vec<StagedConfig> {
    [false, true]
        .into_iter()
        .map(|double| StagedConfig {
            tile: 64,
            depth: 8,
            per: 4,
            double,
        })
        .collect()
}

/// Where the tuning cache lives: `MINIDL_TUNE_CACHE`, else `minidl/tuning.txt` under
/// `XDG_CACHE_HOME` or `~/.cache`; `None` where none of them is set.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(TUNE_CACHE_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("minidl").join("tuning.txt"))
}

/// The first line of the cache file: its format, then the crate version (another
/// version's generated kernels may differ).
fn file_header() -> String {
    format!("minidl tuning cache 2 {}", env!("CARGO_PKG_VERSION"))
}

/// The entry lines of the cache file at `path`, after its header; `None` where it is
/// missing, unreadable, or of another format or version.
fn cache_lines(path: &std::path::Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    (lines.next()? == file_header()).then(|| lines.map(str::to_string).collect())
}

/// One entry line: the adapter, the shape class and the choice; `None` where damaged.
fn parse_entry(line: &str) -> Option<(&str, &str, Choice)> {
    let mut fields = line.split('\t');
    let (adapter, key, label) = (fields.next()?, fields.next()?, fields.next()?);
    match fields.next() {
        None => Choice::parse(label).map(|c| (adapter, key, c)),
        Some(_) => None,
    }
}

impl Gpu {
    /// The identity of this adapter in the cache file.
    fn tuning_adapter(&self) -> String {
        let a = &self.ctx.adapter;
        format!("{}|{}|{}", a.name, a.backend, a.driver).replace(['\t', '\n'], " ")
    }

    /// Whether this device runs the generated kernels: it has subgroups of one size.
    fn gemm_lanes(&self) -> Option<u32> {
        self.ctx.subgroup_size.filter(|&s| s > 0 && s <= 64)
    }

    /// The compiled generated kernel of `choice` (gated or not, see [`gemm::source`]),
    /// built on first use.
    pub(super) fn gemm_pipeline(
        &self,
        product: Product,
        choice: Choice,
        gated: bool,
    ) -> Result<(u64, wgpu::ComputePipeline)> {
        let mut tuner = lock(&self.ctx.tuner);
        if let Some(found) = tuner.pipelines.get(&(product, choice, gated)) {
            return Ok(found.clone());
        }
        let code = match choice {
            Choice::Generated(config) => gemm::source(product, config, gated),
            Choice::Staged(config) => gemm_staged::source(product, config, gated),
            Choice::Naive | Choice::Tiled => None,
        }
        .ok_or_else(|| {
            Error::InvalidArgument(format!("{choice:?} is not a generated {product:?} kernel"))
        })?;
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("gemm"),
            source: wgpu::ShaderSource::Wgsl(code.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("gemm"),
            layout: None,
            module: &module,
            entry_point: Some("gemm"),
            compilation_options: Default::default(),
            cache: self.ctx.cache(),
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "compiling the {} kernel {}: {e}",
                product.name(),
                choice.label()
            )));
        }
        self.ctx.built();
        let id = FIRST_ID + tuner.pipelines.len() as u64;
        tuner
            .pipelines
            .insert((product, choice, gated), (id, pipeline.clone()));
        Ok((id, pipeline))
    }

    /// The kernels that can compute `product` for `x: n×k`, `w: m×k` on this device.
    pub fn product_candidates(
        &self,
        product: Product,
        n: usize,
        k: usize,
        m: usize,
    ) -> Vec<Choice> {
        let mut all = vec![Choice::Naive];
        if product == Product::Forward {
            all.push(Choice::Tiled);
        }
        all.extend(staged_candidates().into_iter().map(Choice::Staged));
        if let Some(lanes) = self.gemm_lanes().filter(|_| gemm::fits(product, n, k, m)) {
            all.extend(
                candidates(product, lanes)
                    .into_iter()
                    .map(Choice::Generated),
            );
        }
        all
    }

    /// The rule used where measuring is off: the largest subgroup kernel where it
    /// applies, else the double-buffered workgroup-memory kernel where every dimension
    /// is at least [`STAGED_FROM`](super::linear::STAGED_FROM), else the naive one.
    fn fixed_choice(&self, product: Product, n: usize, k: usize, m: usize) -> Choice {
        match self.product_candidates(product, n, k, m).last() {
            Some(&c @ Choice::Generated(_)) => c,
            _ if n.min(k).min(m) >= super::linear::STAGED_FROM => staged_candidates()
                .into_iter()
                .rfind(|c| c.double)
                .map_or(Choice::Naive, Choice::Staged),
            _ => Choice::Naive,
        }
    }

    /// The kernel for `product` on `x: n×k`, `w: m×k`: the cached choice of its shape
    /// class, else measured now (or the fixed rule where `MINIDL_TUNE=off`). Small
    /// products take the naive kernel without measuring.
    pub fn product_choice(&self, product: Product, n: usize, k: usize, m: usize) -> Result<Choice> {
        // Below this many multiply-adds a product is launch-bound: nothing to choose.
        if n.saturating_mul(k).saturating_mul(m) < 1 << 18 {
            return Ok(Choice::Naive);
        }
        let class = ShapeClass::of(product, n, k, m);
        if let Some(&c) = lock(&self.ctx.tuner).choices.get(&class) {
            return Ok(c);
        }
        let choice = if std::env::var(TUNE_ENV).as_deref() == Ok("off") {
            self.fixed_choice(product, n, k, m)
        } else if let Some(c) = self.cached_choice(&class, product, n, k, m) {
            c
        } else {
            let (best, _) = self.measure(product, n, k, m)?;
            self.remember_in_file(&class, best);
            best
        };
        lock(&self.ctx.tuner).choices.insert(class, choice);
        Ok(choice)
    }

    /// The cache file's choice for `class`, where the file has one that this device can
    /// run for the shape.
    fn cached_choice(
        &self,
        class: &ShapeClass,
        product: Product,
        n: usize,
        k: usize,
        m: usize,
    ) -> Option<Choice> {
        let mut tuner = lock(&self.ctx.tuner);
        if tuner.file.is_none() {
            tuner.file = Some(self.read_cache_file());
        }
        let choice = *tuner.file.as_ref()?.get(&class.key())?;
        drop(tuner);
        self.product_candidates(product, n, k, m)
            .contains(&choice)
            .then_some(choice)
    }

    /// This adapter's entries of the cache file; empty where it is missing, unreadable,
    /// of another format or version, or damaged (then it will be rewritten).
    fn read_cache_file(&self) -> HashMap<String, Choice> {
        let adapter = self.tuning_adapter();
        let Some(lines) = cache_path().and_then(|path| cache_lines(&path)) else {
            return HashMap::new();
        };
        let mut entries = HashMap::new();
        for line in &lines {
            let Some((a, key, choice)) = parse_entry(line) else {
                return HashMap::new();
            };
            if a == adapter {
                entries.insert(key.to_string(), choice);
            }
        }
        entries
    }

    /// Adds `class → choice` to the cache file (written to a temporary file and renamed
    /// over it, so that a reader never sees half a file). Failing to write is not an
    /// error: the next run measures again.
    fn remember_in_file(&self, class: &ShapeClass, choice: Choice) {
        let Some(path) = cache_path() else { return };
        let adapter = self.tuning_adapter();
        // The sound entries of the other adapters and shape classes.
        let mut kept: Vec<String> = cache_lines(&path)
            .unwrap_or_default()
            .into_iter()
            .filter(|line| {
                parse_entry(line).is_some_and(|(a, key, _)| !(a == adapter && key == class.key()))
            })
            .collect();
        kept.push(format!("{adapter}\t{}\t{}", class.key(), choice.label()));
        let text = format!("{}\n{}\n", file_header(), kept.join("\n"));
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            log::warn!("cannot write the tuning cache {}: {e}", path.display());
        }
        if let Some(file) = lock(&self.ctx.tuner).file.as_mut() {
            file.insert(class.key(), choice);
        }
    }

    /// Measures every candidate for `product` on zero operands of a slice of the shape
    /// and returns the fastest, with every candidate's rate in multiply-adds per
    /// nanosecond. The plain kernels, slow, run on a small slice (at most
    /// `PLAIN_OUTPUTS` outputs along each side, `PLAIN_SUM` along the sum), and so do
    /// the workgroup-memory ones on a CPU adapter. The other generated ones run on the
    /// real shape (each side at most `GENERATED_SIDE`) with
    /// only `GENERATED_ROWS` of the output's rows: each block of rows streams the whole
    /// of the other operand, as in the real product, so the slice keeps the memory
    /// traffic per output that decides between tile heights. Each candidate: one
    /// untimed run (which also compiles a generated kernel), then the median of
    /// `RUNS` (only the first where it is `HOPELESS` times slower than the best
    /// median so far: the candidates are measured from the last, the generated ones,
    /// to the first, the naive kernel, so that the slow plain kernels take one run),
    /// each waited for and timed on the device between timestamp queries where the
    /// adapter has them (the wall clock, submission and wait included, otherwise). The
    /// rates come in the order of [`Gpu::product_candidates`].
    pub fn measure(
        &self,
        product: Product,
        n: usize,
        k: usize,
        m: usize,
    ) -> Result<(Choice, Vec<(Choice, f64)>)> {
        let plain = match product {
            Product::Forward => [n.min(PLAIN_OUTPUTS), k.min(PLAIN_SUM), m.min(PLAIN_OUTPUTS)],
            Product::GradInput => [n.min(PLAIN_OUTPUTS), k.min(PLAIN_OUTPUTS), m.min(PLAIN_SUM)],
            Product::GradWeight => [n.min(PLAIN_SUM), k.min(PLAIN_OUTPUTS), m.min(PLAIN_OUTPUTS)],
        };
        let side = |d: usize| d.min(GENERATED_SIDE);
        let generated = match product {
            // The output's rows are n for the forward and the input gradient, m (the
            // weight's rows) for the weight gradient.
            Product::Forward | Product::GradInput => [n.min(GENERATED_ROWS), side(k), side(m)],
            Product::GradWeight => [side(n), side(k), m.min(GENERATED_ROWS)],
        };
        // A CPU adapter runs workgroup memory slowly: the small slice keeps its
        // measurement short.
        let cpu = self.ctx.adapter.is_cpu();
        let mut rates = Vec::new();
        for choice in self.product_candidates(product, n, k, m).into_iter().rev() {
            let [n, k, m] = match choice {
                Choice::Generated(_) => generated,
                Choice::Staged(_) if !cpu => generated,
                _ => plain,
            };
            let work = (n * k * m) as f64;
            let best = rates
                .iter()
                .map(|r: &(Choice, f64)| r.1)
                .fold(0.0, f64::max);
            let hopeless = if best > 0.0 {
                HOPELESS * work / (best * 1e6)
            } else {
                f64::INFINITY
            };
            let millis = self.time(product, choice, [n, k, m], hopeless)?;
            rates.push((choice, work / (millis.max(1e-6) * 1e6)));
        }
        rates.reverse();
        let best = rates
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(Choice::Naive, |t| t.0);
        Ok((best, rates))
    }

    /// The median milliseconds of `choice` computing `product` for `x: n×k`, `w: m×k`
    /// (after one untimed run); the first timed run alone where it takes longer than
    /// `hopeless` milliseconds.
    fn time(
        &self,
        product: Product,
        choice: Choice,
        [n, k, m]: [usize; 3],
        hopeless: f64,
    ) -> Result<f64> {
        let (x, w, b) = (self.alloc(n, k)?, self.alloc(m, k)?, self.alloc(1, m)?);
        let (y, dx, dw) = (self.alloc(n, m)?, self.alloc(n, k)?, self.alloc(m, k)?);
        let db = self.alloc(1, m)?;
        let run = || match product {
            Product::Forward => {
                super::linear::forward_with(self, choice, &x, &w, &b, Act::Relu, &y)
            }
            Product::GradInput => {
                super::linear::grad_input_with(self, choice, &y, &w, &y, Act::Relu, &dx)
            }
            Product::GradWeight => super::linear::grad_weight_with(
                self,
                choice,
                &y,
                &x,
                &y,
                Act::Relu,
                &dw,
                &db,
                GradMode::Overwrite,
            ),
        };
        run()?;
        self.synchronize()?;
        let mut timer = Timer::new(
            &self.ctx.device,
            &self.ctx.queue,
            self.ctx.device.features(),
        );
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let millis = match timer.as_mut() {
                Some(timer) => self.device_millis(timer, run)?,
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
