//! disc_gpu's command line: the flags, their defaults and their checks.

use std::path::PathBuf;

use minidl::optim::{LrSchedule, Schedule};
use minidl::seed;

use crate::cli::{
    non_negative, number, schedule_kind, step_every_third, BackendChoice, OptimizerChoice,
    OptimizerFlags,
};

/// The usage message, printed with `--help` and after a bad flag.
pub const USAGE: &str =
    "usage: disc_gpu [--backend auto|gpu|cpu] [--adapter NAME] [--epochs N] [--lr X]
                [--batch-size N] [--seed N] [--runs R] [--shuffle] [--no-fused]
                [--loss mse|ce] [--optimizer sgd|momentum|adam] [--momentum X]
                [--nesterov] [--weight-decay X] [--lr-schedule S] [--warmup N]
                [--save PATH] [--load PATH] [--plot DIR] [--json] [--list-adapters]

  --backend B        auto (default: a hardware GPU if one exists, else the CPU), gpu, cpu
                     (the CPU backend uses every core; MINIDL_THREADS=N sets the count)
  --adapter NAME     the first GPU adapter whose name contains NAME (also MINIDL_ADAPTER)
  --epochs N         passes over the 1000 training points (default 300; 0 only evaluates)
  --lr X             learning rate (default 0.01; 0.001 with momentum or adam)
  --batch-size N     points per mini-batch (default 10)
  --seed N           seed of the data (N) and of the initial weights (N + 1) (default 0)
  --runs R           train seeds N … N + R − 1 and print each run's errors and their
                     distribution (default 1; trained together: on the GPU one
                     dispatch per epoch for all of them, on the CPU on its threads)
  --shuffle          shuffle the training points every epoch (default: in order)
  --no-fused         train step by step, even where the fully fused trainer could run
                     (default: fused where it pays for its build, on a GPU from 150
                     steps, e.g. 2 epochs of the 1000 points in batches of 10)
  --loss L           mse (default: MSE on one-hot targets after a final Tanh) or ce
                     (softmax cross-entropy on the raw outputs); both summed over a batch
  --optimizer O      sgd (default), momentum (SGD with momentum) or adam
  --momentum X       the momentum of --optimizer momentum (default 0.9)
  --nesterov         Nesterov momentum (with --optimizer momentum)
  --weight-decay X   L2 penalty of the optimizer (default 0)
  --lr-schedule S    cosine (default: annealed to 0 over the epochs), constant (the
                     report's recipe) or step (×0.1 after each third of the epochs), as
                     PyTorch's schedulers; with --runs, a list (cosine,constant) trains
                     the same seeds with each and compares them
  --warmup N         epochs of linear warm-up before the schedule (default 0)
  --save PATH        save the trained network as safetensors (PyTorch state_dict names)
  --load PATH        start from the network saved in PATH
  --plot DIR         write DIR/training_curve.png and DIR/decision_boundary.png; with
                     --runs, DIR/test_errors.png (each run's test errors, schedules
                     side by side) and DIR/training_curve.png (the runs' medians and
                     min–max bands; training_curve_S.png for each further schedule S)
  --json             print nothing but one JSON line of results at the end
  --list-adapters    print the usable GPU adapters and exit";

/// The loss function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossChoice {
    /// MSE on one-hot targets, after the seed network's final Tanh.
    Mse,
    /// Softmax cross-entropy on the logits (the seed network without its final Tanh).
    CrossEntropy,
}

impl LossChoice {
    /// The flag value that selects it.
    pub fn flag(self) -> &'static str {
        match self {
            LossChoice::Mse => "mse",
            LossChoice::CrossEntropy => "ce",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter NAME`.
    pub adapter: Option<String>,
    /// `--epochs N`.
    pub epochs: usize,
    /// `--lr X`, or the optimizer's default.
    pub lr: f32,
    /// `--batch-size N`.
    pub batch_size: usize,
    /// `--seed N`.
    pub seed: u64,
    /// `--shuffle`.
    pub shuffle: bool,
    /// Off with `--no-fused`.
    pub fused: bool,
    /// `--loss`.
    pub loss: LossChoice,
    /// `--optimizer`.
    pub optimizer: OptimizerChoice,
    /// `--momentum X`.
    pub momentum: f32,
    /// `--nesterov`.
    pub nesterov: bool,
    /// `--weight-decay X`.
    pub weight_decay: f32,
    /// `--lr-schedule S` and `--warmup N`.
    pub schedule: Schedule,
    /// `--lr-schedule A,B,...` with `--runs`: the schedules after the first, each
    /// trained on the same seeds and compared with it.
    pub compare: Vec<LrSchedule>,
    /// `--save PATH`.
    pub save: Option<PathBuf>,
    /// `--load PATH`.
    pub load: Option<PathBuf>,
    /// `--plot DIR`.
    pub plot: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--list-adapters`.
    pub list_adapters: bool,
    /// `--runs R`: seeds `seed` … `seed + R − 1`.
    pub runs: usize,
}

impl Args {
    /// The optimizer the flags describe.
    pub fn optimizer_flags(&self) -> OptimizerFlags {
        OptimizerFlags {
            choice: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
        }
    }
}

/// Parses the arguments after the program name; `Ok(None)` for `--help`, `Err` with a
/// one-line reason for anything not understood.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        backend: BackendChoice::Auto,
        adapter: None,
        epochs: seed::EPOCHS,
        lr: f32::NAN,
        batch_size: seed::BATCH_SIZE,
        seed: seed::SEED,
        shuffle: false,
        fused: true,
        loss: LossChoice::Mse,
        optimizer: OptimizerChoice::Sgd,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
        // The default recipe anneals the rate; `--lr-schedule constant` is the
        // report's recipe.
        schedule: Schedule {
            kind: LrSchedule::Cosine { eta_min: 0.0 },
            warmup: 0,
        },
        compare: Vec::new(),
        save: None,
        load: None,
        plot: None,
        json: false,
        list_adapters: false,
        runs: 1,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => parsed.backend = value()?.parse()?,
            "--loss" => {
                parsed.loss = match value()?.as_str() {
                    "mse" => LossChoice::Mse,
                    "ce" => LossChoice::CrossEntropy,
                    other => return Err(format!("--loss: expected mse or ce, got {other:?}")),
                }
            }
            "--optimizer" => parsed.optimizer = value()?.parse()?,
            "--lr-schedule" => {
                let list = value()?;
                let mut kinds = list.split(',').map(schedule_kind);
                parsed.schedule.kind = kinds.next().unwrap_or_else(|| schedule_kind(""))?;
                parsed.compare = kinds.collect::<Result<_, _>>()?;
            }
            "--warmup" => parsed.schedule.warmup = number(&flag, &value()?)?,
            "--adapter" => parsed.adapter = Some(value()?),
            "--epochs" => parsed.epochs = number(&flag, &value()?)?,
            "--lr" => parsed.lr = non_negative(&flag, &value()?, true)?,
            "--momentum" => parsed.momentum = non_negative(&flag, &value()?, false)?,
            "--weight-decay" => parsed.weight_decay = non_negative(&flag, &value()?, false)?,
            "--batch-size" => {
                parsed.batch_size = number(&flag, &value()?)?;
                if parsed.batch_size == 0 {
                    return Err("--batch-size: must be at least 1".into());
                }
            }
            "--seed" => parsed.seed = number(&flag, &value()?)?,
            "--runs" => {
                parsed.runs = number(&flag, &value()?)?;
                if parsed.runs == 0 {
                    return Err("--runs: must be at least 1".into());
                }
            }
            "--save" => parsed.save = Some(value()?.into()),
            "--load" => parsed.load = Some(value()?.into()),
            "--plot" => parsed.plot = Some(value()?.into()),
            "--shuffle" => parsed.shuffle = true,
            "--no-fused" => parsed.fused = false,
            "--nesterov" => parsed.nesterov = true,
            "--json" => parsed.json = true,
            "--list-adapters" => parsed.list_adapters = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.runs > 1 && (parsed.save.is_some() || parsed.load.is_some()) {
        return Err("--runs above 1 takes no --save or --load".into());
    }
    if parsed.runs < 2 && !parsed.compare.is_empty() {
        return Err("--lr-schedule: a list of schedules needs --runs above 1".into());
    }
    for kind in &mut parsed.compare {
        step_every_third(kind, parsed.epochs, parsed.schedule.warmup);
    }
    parsed.optimizer_flags().validate()?;
    step_every_third(
        &mut parsed.schedule.kind,
        parsed.epochs,
        parsed.schedule.warmup,
    );
    if parsed.lr.is_nan() {
        parsed.lr = match parsed.optimizer {
            OptimizerChoice::Sgd => seed::LR,
            // Momentum 0.9 takes steps about ten times as long as plain SGD's.
            OptimizerChoice::Momentum | OptimizerChoice::Adam => 0.001,
        };
    }
    Ok(Some(parsed))
}
