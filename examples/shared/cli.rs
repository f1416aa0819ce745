//! What the command-line examples share: flag-value parsing, the backend and
//! optimizer choices, JSON formatting, the median, and the start-up that turns logs
//! and panics into one-line reports. Each example uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use minidl::backend::auto::{self, Chosen};
use minidl::optim::{Adam, AdamStep, LrSchedule, MomentumStep, Optimizer, Sgd};
use minidl::{Backend, Error, Gpu};

/// Which backend trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BackendChoice {
    /// The GPU when a hardware adapter exists, else the CPU.
    Auto,
    /// The GPU, or an error.
    Gpu,
    /// The CPU backend.
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!(
                "--backend: expected auto, gpu or cpu, got {other:?}"
            )),
        }
    }
}

/// The GPU to train on, or `None` for the CPU backend, as `choice` and `adapter` say;
/// `auto` without a hardware GPU says on stderr why it takes the CPU.
pub fn choose_gpu(choice: BackendChoice, adapter: Option<&str>) -> Result<Option<Gpu>, String> {
    match choice {
        BackendChoice::Cpu => Ok(None),
        BackendChoice::Gpu => Gpu::with_adapter(adapter)
            .map(Some)
            .map_err(|e| e.to_string()),
        BackendChoice::Auto => match auto::choose(adapter) {
            Ok(Chosen::Gpu(gpu)) => Ok(Some(gpu)),
            Ok(Chosen::Cpu { why, .. }) => {
                eprintln!("note: {why}; running on the CPU backend");
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        },
    }
}

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerChoice {
    /// Plain SGD (with weight decay if asked).
    Sgd,
    /// SGD with momentum.
    Momentum,
    /// Adam.
    Adam,
}

impl OptimizerChoice {
    /// The flag value that selects it.
    pub fn flag(self) -> &'static str {
        match self {
            OptimizerChoice::Sgd => "sgd",
            OptimizerChoice::Momentum => "momentum",
            OptimizerChoice::Adam => "adam",
        }
    }
}

impl FromStr for OptimizerChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sgd" => Ok(OptimizerChoice::Sgd),
            "momentum" => Ok(OptimizerChoice::Momentum),
            "adam" => Ok(OptimizerChoice::Adam),
            other => Err(format!(
                "--optimizer: expected sgd, momentum or adam, got {other:?}"
            )),
        }
    }
}

/// The optimizer's hyperparameters as the flags give them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerFlags {
    /// `--optimizer`.
    pub choice: OptimizerChoice,
    /// `--lr X`.
    pub lr: f32,
    /// `--momentum X` (with `momentum`).
    pub momentum: f32,
    /// `--nesterov`.
    pub nesterov: bool,
    /// `--weight-decay X`.
    pub weight_decay: f32,
}

impl OptimizerFlags {
    /// The optimizer they describe.
    pub fn build<B: Backend>(&self) -> Result<Box<dyn Optimizer<B>>, Error> {
        let momentum = match self.choice {
            OptimizerChoice::Adam => {
                return Ok(Box::new(Adam::with(AdamStep {
                    weight_decay: self.weight_decay,
                    ..AdamStep::with_lr(self.lr)
                })?))
            }
            OptimizerChoice::Sgd => 0.0,
            OptimizerChoice::Momentum => self.momentum,
        };
        Ok(Box::new(Sgd::with(MomentumStep {
            lr: self.lr,
            momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
        })?))
    }

    /// Fails where `--nesterov` has no momentum to work on.
    pub fn validate(&self) -> Result<(), String> {
        if self.nesterov && (self.choice != OptimizerChoice::Momentum || self.momentum == 0.0) {
            return Err("--nesterov needs --optimizer momentum with a momentum above 0".into());
        }
        Ok(())
    }
}

/// `--lr-schedule`'s value: constant, cosine (annealed to 0), or step (×0.1; the step
/// size is set once the epochs are known, see [`step_every_third`]).
pub fn schedule_kind(v: &str) -> Result<LrSchedule, String> {
    match v {
        "constant" => Ok(LrSchedule::Constant),
        "cosine" => Ok(LrSchedule::Cosine { eta_min: 0.0 }),
        "step" => Ok(LrSchedule::Step {
            step_size: 0,
            gamma: 0.1,
        }),
        other => Err(format!(
            "--lr-schedule: expected constant, cosine or step, got {other:?}"
        )),
    }
}

/// Makes a step schedule decay after each third of the epochs after the warm-up.
pub fn step_every_third(kind: &mut LrSchedule, epochs: usize, warmup: usize) {
    if let LrSchedule::Step { step_size, .. } = kind {
        *step_size = (epochs.saturating_sub(warmup) / 3).max(1);
    }
}

/// A flag's value parsed as `T`.
pub fn number<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid value"))
}

/// The `C,H,W` of `--image`, each at least 1.
pub fn image_shape(v: &str) -> Result<(usize, usize, usize), String> {
    let parts: Vec<usize> = v
        .split(',')
        .map(|p| number::<usize>("--image", p.trim()))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok((c, h, w)),
        _ => Err(format!(
            "--image: expected three sizes of at least 1, C,H,W, got {v:?}"
        )),
    }
}

/// An image shape `(C, H, W)` as the messages write it, `C×H×W`.
pub fn shape_words((c, h, w): (usize, usize, usize)) -> String {
    format!("{c}×{h}×{w}")
}

/// A float flag's value, which must be finite and at least 0 (above 0 if `positive`).
pub fn non_negative(flag: &str, v: &str, positive: bool) -> Result<f32, String> {
    let x: f32 = number(flag, v)?;
    if x.is_finite() && x >= 0.0 && (!positive || x > 0.0) {
        Ok(x)
    } else {
        let want = if positive { "positive" } else { "non-negative" };
        Err(format!("{flag}: must be a {want} finite number, got {v}"))
    }
}

/// The median of `values` (the mean of the middle two for an even count), NaN for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as a JSON number, `null` where it is not finite.
pub fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// Sets up logging (warnings, but not the Vulkan loader's and layers' messages, which
/// wgpu forwards as errors: a missing adapter is reported once, as an error of
/// minidl's; `RUST_LOG` overrides this) and a panic hook that reports a panic, a bug
/// in minidl, in one line and exits with code 1.
fn start(program: &'static str) {
    let filter = "warn,wgpu_hal::vulkan::instance=off";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).init();
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let at = info
            .location()
            .map_or(String::new(), |l| format!(" at {l}"));
        eprintln!("{program}: internal error{at}: {what} (please report it)");
        std::process::exit(1);
    }));
}

/// The whole of an example's `main`: [`start`], then `parse` the arguments (`Ok(None)`
/// for `--help`, which prints `usage`; an error exits 2 with the usage), then `run`
/// them (an error exits 1 with one line).
pub fn main<A>(
    program: &'static str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<A>, String>,
    run: impl FnOnce(&A) -> Result<(), String>,
) -> ExitCode {
    start(program);
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{program}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes the split's rows (training, validation, test) to `path` as a JSON object of
/// three arrays of row indices.
pub fn write_split(path: &Path, rows: &[Vec<usize>; 3]) -> Result<(), String> {
    let list = |r: &[usize]| {
        let v: Vec<String> = r.iter().map(usize::to_string).collect();
        format!("[{}]", v.join(","))
    };
    let text = format!(
        "{{\"train\":{},\"validation\":{},\"test\":{}}}\n",
        list(&rows[0]),
        list(&rows[1]),
        list(&rows[2])
    );
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
