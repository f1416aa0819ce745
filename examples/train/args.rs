//! train's command line: the flags, their defaults and their checks.

use std::path::PathBuf;

use minidl::data::{Column, Header, SplitFractions, Target};
use minidl::nn::{parse_model, LayerSpec};
use minidl::optim::Schedule;

use crate::cli::{
    image_shape, non_negative, number, schedule_kind, step_every_third, BackendChoice,
    OptimizerChoice, OptimizerFlags,
};

/// The usage message, printed with `--help` and after a bad flag.
pub const USAGE: &str =
    "usage: train --data FILE [--test-data FILE] [--label COL | --targets COL,...]
             [--header auto|yes|no]
             [--hidden LIST] [--activation relu|tanh|sigmoid] [--image C,H,W]
             [--model LAYERS] [--loss ce|mse]
             [--optimizer sgd|momentum|adam] [--lr X] [--momentum X] [--nesterov]
             [--weight-decay X] [--lr-schedule S] [--warmup N] [--batch-size N]
             [--epochs N] [--split TRAIN,VAL,TEST] [--seed N] [--no-scale | --scale-by X]
             [--backend auto|gpu|cpu] [--adapter NAME] [--save PATH] [--plot DIR]
             [--json] [--checkpoint-every N] [--checkpoint PATH] [--resume PATH]
             [--split-out PATH]

  --data FILE           the data: .csv or .csv.gz (numbers, a header line optional), .npy
                        (a 2-D array), .safetensors (1-D and 2-D tensors of equal rows)
                        or .bin.gz (MNIST digits, as datasets/mnist/mnist10k.bin.gz),
                        or an IDX images file (LeCun's MNIST files, Fashion-MNIST,
                        EMNIST: train-images-idx3-ubyte[.gz], its labels file beside it),
                        a binary CIFAR-10 or CIFAR-100 file (.bin, rows in 3,32,32
                        order), a folder of one subfolder of .png and .jpg images
                        per class (as torchvision's ImageFolder: classes by sorted
                        name; all images of one shape), or a
                        folder of CIFAR-10 data_batch_N.bin files
  --test-data FILE      the test rows from this file (read as --data) instead of the
                        split, e.g. MNIST's t10k-images-idx3-ubyte.gz or CIFAR-10's
                        test_batch.bin (an image folder's classes matched by name);
                        --split is then
                        TRAIN,VAL,0 (default 0.8,0.2,0)
  --label COL           classification: the column of class indices 0, 1, … by header
                        name or 0-based index (default: the last column)
  --targets COL,...     regression instead: the columns to predict (MSE loss)
  --header H            whether a CSV file's first line names the columns (default auto)
  --hidden LIST         hidden layer widths, comma-separated, or none (default 64)
  --activation A        relu (default), tanh or sigmoid after each hidden layer
  --image C,H,W         each row is an image of C channels of H×W pixels, in (C, H, W)
                        order (C·H·W must be the data's width); scaled with one mean
                        and deviation over all pixels unless --no-scale. Without it, a
                        --model that starts with conv, maxpool, avgpool, upsample or
                        flatten takes the shape of MNIST (1,28,28), CIFAR (3,32,32) or
                        a rank-3 IDX file (1,H,W)
  --model LAYERS        the network as comma-separated layers in PyTorch's words, instead
                        of --hidden: conv(OUT,K[,stride=S][,padding=P][,dilation=D]
                        [,bias=false]), maxpool(K[,stride=S][,padding=P]),
                        avgpool(K[,stride=S][,padding=P]), upsample(S),
                        flatten, linear(OUT), relu, tanh, sigmoid, leakyrelu; a size is
                        N or a pair (H,W); the input comes from the data (and
                        --image), the last layer's width must be the class count, e.g.
                        conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),
                        flatten,linear(120),relu,linear(84),relu,linear(10)
  --loss L              ce (softmax cross-entropy, the default for labels) or mse (on
                        one-hot targets for labels; always for --targets); batch means
  --optimizer O         adam (default), sgd or momentum
  --lr X                learning rate (default 0.001 for adam, 0.01 otherwise)
  --momentum X          the momentum of --optimizer momentum (default 0.9)
  --nesterov            Nesterov momentum (with --optimizer momentum)
  --weight-decay X      L2 penalty of the optimizer (default 0)
  --lr-schedule S       constant (default), cosine (annealed to 0 over the epochs) or step
                        (×0.1 after each third of the epochs)
  --warmup N            epochs of linear warm-up before the schedule (default 0)
  --batch-size N        rows per mini-batch (default 32); the rows are shuffled each epoch
  --epochs N            passes over the training rows (default 60)
  --split T,V,E         fractions of the rows for training, validation and test
                        (default 0.6,0.2,0.2, or 0.8,0.2,0 with --test-data), dealt by a
                        permutation seeded with --seed
  --seed N              seed of the split (N), the initial weights (N + 1) and the
                        shuffling (N + 2) (default 0)
  --no-scale            keep the inputs as they are (default: standardize each column
                        with the training rows' mean and standard deviation; with
                        --image, all pixels with one mean and one deviation)
  --scale-by X          divide every input by X instead (e.g. 255 for 8-bit pixels)
  --backend B           auto (default: a hardware GPU if one exists, else the CPU), gpu, cpu
  --adapter NAME        the first GPU adapter whose name contains NAME
  --save PATH           save the trained network and its scaler (safetensors; PyTorch's
                        load_state_dict(..., strict=False) reads the network)
  --plot DIR            write DIR/training_curve.png and, for labels,
                        DIR/confusion_matrix.png (of the test rows); when the first
                        layer is a conv, DIR/filters.png (its filters)
  --json                print nothing but one JSON line of results at the end
  --checkpoint-every N  write a training checkpoint after every N epochs (atomically)
  --checkpoint PATH     where (default checkpoint.safetensors)
  --resume PATH         continue the run saved in the training checkpoint PATH (the same
                        flags as the run that wrote it)
  --split-out PATH      write the split's row indices to PATH as JSON (with --test-data,
                        the test indices are that file's rows)";

/// The loss function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossChoice {
    /// Softmax cross-entropy on the logits.
    CrossEntropy,
    /// Mean-squared error (on one-hot targets for labels).
    Mse,
}

impl LossChoice {
    /// The flag value that selects it.
    pub fn flag(self) -> &'static str {
        match self {
            LossChoice::CrossEntropy => "ce",
            LossChoice::Mse => "mse",
        }
    }
}

/// The activation after each hidden layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActivationChoice {
    /// ReLU.
    Relu,
    /// Tanh.
    Tanh,
    /// Sigmoid.
    Sigmoid,
}

impl ActivationChoice {
    /// The flag value that selects it.
    pub fn flag(self) -> &'static str {
        match self {
            ActivationChoice::Relu => "relu",
            ActivationChoice::Tanh => "tanh",
            ActivationChoice::Sigmoid => "sigmoid",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--data FILE`.
    pub data: PathBuf,
    /// `--test-data FILE`: the test rows, instead of the split's.
    pub test_data: Option<PathBuf>,
    /// `--label COL` or `--targets COL,...`.
    pub target: Target,
    /// `--header`.
    pub header: Header,
    /// `--hidden LIST`.
    pub hidden: Vec<usize>,
    /// `--activation`.
    pub activation: ActivationChoice,
    /// `--image C,H,W`.
    pub image: Option<(usize, usize, usize)>,
    /// `--model LAYERS`, parsed.
    pub model: Option<Vec<LayerSpec>>,
    /// `--loss`.
    pub loss: LossChoice,
    /// `--optimizer`, `--lr`, `--momentum`, `--nesterov`, `--weight-decay`.
    pub optimizer: OptimizerFlags,
    /// `--lr-schedule S` and `--warmup N`.
    pub schedule: Schedule,
    /// `--batch-size N`.
    pub batch_size: usize,
    /// `--epochs N`.
    pub epochs: usize,
    /// `--split`.
    pub split: SplitFractions,
    /// `--seed N`.
    pub seed: u64,
    /// Off with `--no-scale`.
    pub scale: bool,
    /// `--scale-by X`: divide the inputs by X instead of standardizing them.
    pub scale_by: Option<f32>,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter NAME`.
    pub adapter: Option<String>,
    /// `--save PATH`.
    pub save: Option<PathBuf>,
    /// `--plot DIR`.
    pub plot: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--checkpoint-every N` (0: never).
    pub checkpoint_every: usize,
    /// `--checkpoint PATH`.
    pub checkpoint: PathBuf,
    /// `--resume PATH`.
    pub resume: Option<PathBuf>,
    /// `--split-out PATH`.
    pub split_out: Option<PathBuf>,
}

/// The three split fractions of `--split`, which must sum to 1.
fn split_fractions(v: &str) -> Result<SplitFractions, String> {
    let parts: Vec<f64> = v
        .split(',')
        .map(|p| number::<f64>("--split", p.trim()))
        .collect::<Result<_, _>>()?;
    let [train, validation, test] = parts[..] else {
        return Err(format!(
            "--split: expected three fractions TRAIN,VAL,TEST, got {v:?}"
        ));
    };
    let fractions = SplitFractions { train, validation };
    let sums_to_one = (train + validation + test - 1.0).abs() < 1e-6;
    match fractions.validate() {
        Ok(()) if sums_to_one && test >= 0.0 => Ok(fractions),
        _ => Err(format!(
            "--split: the fractions must be at least 0, the first above 0, and sum to 1; got {v:?}"
        )),
    }
}

/// Parses the arguments after the program name; `Ok(None)` for `--help`, `Err` with a
/// one-line reason for anything not understood.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut data = None;
    let mut loss = None;
    let mut parsed = Args {
        data: PathBuf::new(),
        test_data: None,
        target: Target::Label(Column::Last),
        header: Header::Auto,
        hidden: vec![64],
        activation: ActivationChoice::Relu,
        image: None,
        model: None,
        loss: LossChoice::CrossEntropy,
        optimizer: OptimizerFlags {
            choice: OptimizerChoice::Adam,
            lr: f32::NAN,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
        schedule: Schedule::constant(),
        batch_size: 32,
        epochs: 60,
        split: SplitFractions {
            train: 0.6,
            validation: 0.2,
        },
        seed: 0,
        scale: true,
        scale_by: None,
        backend: BackendChoice::Auto,
        adapter: None,
        save: None,
        plot: None,
        json: false,
        checkpoint_every: 0,
        checkpoint: PathBuf::from("checkpoint.safetensors"),
        resume: None,
        split_out: None,
    };
    let mut label_given = false;
    let mut hidden_given = false;
    let mut split_given = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--test-data" => parsed.test_data = Some(PathBuf::from(value()?)),
            "--label" => {
                let v = value()?;
                parsed.target = Target::Label(Column::from(v.as_str()));
                label_given = true;
            }
            "--targets" => {
                let columns = value()?
                    .split(',')
                    .map(|c| Column::from(c.trim()))
                    .collect();
                parsed.target = Target::Values(columns);
            }
            "--header" => {
                parsed.header = match value()?.as_str() {
                    "auto" => Header::Auto,
                    "yes" => Header::Yes,
                    "no" => Header::No,
                    other => {
                        return Err(format!("--header: expected auto, yes or no, got {other:?}"))
                    }
                }
            }
            "--hidden" => {
                hidden_given = true;
                let v = value()?;
                parsed.hidden = match v.as_str() {
                    "none" | "" => Vec::new(),
                    _ => v
                        .split(',')
                        .map(|w| number::<usize>("--hidden", w.trim()))
                        .collect::<Result<_, _>>()?,
                };
                if parsed.hidden.contains(&0) {
                    return Err("--hidden: every width must be at least 1".into());
                }
            }
            "--activation" => {
                parsed.activation = match value()?.as_str() {
                    "relu" => ActivationChoice::Relu,
                    "tanh" => ActivationChoice::Tanh,
                    "sigmoid" => ActivationChoice::Sigmoid,
                    other => {
                        return Err(format!(
                            "--activation: expected relu, tanh or sigmoid, got {other:?}"
                        ))
                    }
                }
            }
            "--image" => parsed.image = Some(image_shape(&value()?)?),
            "--model" => {
                let v = value()?;
                parsed.model = Some(parse_model(&v).map_err(|e| format!("--model: {e}"))?);
            }
            "--loss" => {
                loss = Some(match value()?.as_str() {
                    "ce" => LossChoice::CrossEntropy,
                    "mse" => LossChoice::Mse,
                    other => return Err(format!("--loss: expected ce or mse, got {other:?}")),
                })
            }
            "--optimizer" => parsed.optimizer.choice = value()?.parse()?,
            "--lr" => parsed.optimizer.lr = non_negative(&flag, &value()?, true)?,
            "--momentum" => parsed.optimizer.momentum = non_negative(&flag, &value()?, false)?,
            "--nesterov" => parsed.optimizer.nesterov = true,
            "--weight-decay" => {
                parsed.optimizer.weight_decay = non_negative(&flag, &value()?, false)?
            }
            "--lr-schedule" => parsed.schedule.kind = schedule_kind(&value()?)?,
            "--warmup" => parsed.schedule.warmup = number(&flag, &value()?)?,
            "--batch-size" => {
                parsed.batch_size = number(&flag, &value()?)?;
                if parsed.batch_size == 0 {
                    return Err("--batch-size: must be at least 1".into());
                }
            }
            "--epochs" => parsed.epochs = number(&flag, &value()?)?,
            "--split" => {
                let v = value()?;
                parsed.split = split_fractions(&v)?;
                split_given = Some(v);
            }
            "--seed" => parsed.seed = number(&flag, &value()?)?,
            "--no-scale" => parsed.scale = false,
            "--scale-by" => {
                let x: f32 = non_negative(&flag, &value()?, true)?;
                if x <= 0.0 {
                    return Err("--scale-by: must be above 0".into());
                }
                parsed.scale_by = Some(x);
            }
            "--backend" => parsed.backend = value()?.parse()?,
            "--adapter" => parsed.adapter = Some(value()?),
            "--save" => parsed.save = Some(value()?.into()),
            "--plot" => parsed.plot = Some(value()?.into()),
            "--json" => parsed.json = true,
            "--checkpoint-every" => {
                parsed.checkpoint_every = number(&flag, &value()?)?;
                if parsed.checkpoint_every == 0 {
                    return Err("--checkpoint-every: must be at least 1".into());
                }
            }
            "--checkpoint" => parsed.checkpoint = value()?.into(),
            "--resume" => parsed.resume = Some(value()?.into()),
            "--split-out" => parsed.split_out = Some(value()?.into()),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    parsed.data = data.ok_or("--data FILE is required")?;
    if !parsed.scale && parsed.scale_by.is_some() {
        return Err("give either --no-scale or --scale-by X".into());
    }
    if parsed.test_data.is_some() {
        match split_given {
            Some(v) if parsed.split.test() > 1e-6 => {
                return Err(format!(
                    "--split: with --test-data the test rows are that file's, so the test fraction must be 0 (TRAIN,VAL,0); got {v:?}"
                ))
            }
            Some(_) => {}
            None => {
                parsed.split = SplitFractions {
                    train: 0.8,
                    validation: 0.2,
                }
            }
        }
    }
    if hidden_given && parsed.model.is_some() {
        return Err("give either --hidden (an MLP) or --model (any network)".into());
    }
    let regression = matches!(parsed.target, Target::Values(_));
    if regression && label_given {
        return Err("give either --label (classification) or --targets (regression)".into());
    }
    parsed.loss = match (loss, regression) {
        (Some(LossChoice::CrossEntropy), true) => {
            return Err("--loss ce needs class labels; --targets trains with mse".into())
        }
        (Some(l), _) => l,
        (None, true) => LossChoice::Mse,
        (None, false) => LossChoice::CrossEntropy,
    };
    parsed.optimizer.validate()?;
    if parsed.optimizer.lr.is_nan() {
        parsed.optimizer.lr = match parsed.optimizer.choice {
            OptimizerChoice::Adam => 0.001,
            OptimizerChoice::Sgd | OptimizerChoice::Momentum => 0.01,
        };
    }
    step_every_third(
        &mut parsed.schedule.kind,
        parsed.epochs,
        parsed.schedule.warmup,
    );
    Ok(Some(parsed))
}
