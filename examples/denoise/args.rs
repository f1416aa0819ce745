//! denoise's command line: the flags, their defaults and their checks.

use std::path::PathBuf;

use crate::cli::{image_shape, non_negative, number, BackendChoice};

/// The usage message, printed with `--help` and after a bad flag.
pub const USAGE: &str = "usage: denoise [--data FILE] [--image C,H,W] [--scale-by X]
               [--epochs N] [--sigma X] [--lr X]
               [--batch-size N] [--seed N] [--runs R] [--backend auto|gpu|cpu]
               [--adapter NAME] [--digits N] [--plot DIR] [--json] [--split-out PATH]
               [--save PATH] [--default-init]

Trains the Noise2Noise denoiser of EE-559's 2022 mini-project on MNIST digits (or other
images): pairs of independently noised copies of each training image, MSE, Adam, and
reports the PSNR of its output against the clean test images, beside the noisy input's.

  --data FILE        the images (default: datasets/mnist/mnist10k.bin.gz, MNIST digits),
                     any file train reads whose rows are images: MNIST, an IDX file of
                     rank 3 (Fashion-MNIST, EMNIST), CIFAR (in colour), or a table with
                     --image; split 80 % for training and 20 % for the test by a
                     permutation seeded with the run's seed. Height and width must be
                     multiples of 4 (the two stride-2 convolutions)
  --image C,H,W      each row is an image of C channels of H×W pixels in (C, H, W) order
                     (default: the file's own shape)
  --scale-by X       divide every pixel by X, so that they lie in [0, 1] for the Sigmoid
                     and the PSNR's peak of 1 (default 255, for 8-bit pixels)
  --epochs N         passes over the training digits (default 5)
  --sigma X          the noise's standard deviation (default 0.2), fresh every step, not
                     clipped
  --lr X             Adam's learning rate (default 0.001)
  --batch-size N     digits per step (default 64)
  --seed N           the first run's seed: the split (N), the weights (N + 1), the
                     shuffling (N + 2), the training noise (N + 3), the test noise (N + 4)
  --runs R           train R runs, seeds N … N + R − 1, and report the distribution
                     (default 1)
  --backend B        auto (default: a hardware GPU if one exists, else the CPU), gpu, cpu
  --adapter NAME     the first GPU adapter whose name contains NAME
  --digits N         use only N of the digits (80 % of them for training), a random
                     subset: the split's first rows (default: all)
  --plot DIR         write DIR/denoised.png (noisy / denoised / clean test digits of the
                     first run) and DIR/training_curve.png (loss and test PSNR per epoch)
  --json             print nothing but one JSON line of results at the end
  --split-out PATH   write the first run's split (row indices) to PATH as JSON
  --default-init     keep PyTorch's initialisation of the output layer's bias (default:
                     set it so that the untrained network outputs the training digits'
                     mean pixel, which keeps the recipe from collapsing)
  --save PATH        save the first run's trained network (safetensors, PyTorch's
                     state_dict names)";

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--data FILE`.
    pub data: PathBuf,
    /// `--image C,H,W`.
    pub image: Option<(usize, usize, usize)>,
    /// `--scale-by X`.
    pub scale_by: f32,
    /// `--epochs N`.
    pub epochs: usize,
    /// `--sigma X`.
    pub sigma: f32,
    /// `--lr X`.
    pub lr: f32,
    /// `--batch-size N`.
    pub batch_size: usize,
    /// `--seed N`.
    pub seed: u64,
    /// `--runs R`.
    pub runs: usize,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter NAME`.
    pub adapter: Option<String>,
    /// `--digits N`.
    pub digits: Option<usize>,
    /// `--plot DIR`.
    pub plot: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--split-out PATH`.
    pub split_out: Option<PathBuf>,
    /// `--save PATH`.
    pub save: Option<PathBuf>,
    /// Off with `--default-init`.
    pub prior_bias: bool,
}

/// Parses the arguments after the program name; `Ok(None)` for `--help`, `Err` with a
/// one-line reason for anything not understood.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        data: minidl::data::mnist_path(),
        image: None,
        scale_by: 255.0,
        epochs: 5,
        sigma: 0.2,
        lr: 0.001,
        batch_size: 64,
        seed: 0,
        runs: 1,
        backend: BackendChoice::Auto,
        adapter: None,
        digits: None,
        plot: None,
        json: false,
        split_out: None,
        save: None,
        prior_bias: true,
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => parsed.data = value()?.into(),
            "--image" => parsed.image = Some(image_shape(&value()?)?),
            "--scale-by" => parsed.scale_by = non_negative(&flag, &value()?, true)?,
            "--epochs" => parsed.epochs = number(&flag, &value()?)?,
            "--sigma" => parsed.sigma = non_negative(&flag, &value()?, false)?,
            "--lr" => parsed.lr = non_negative(&flag, &value()?, true)?,
            "--batch-size" => parsed.batch_size = number(&flag, &value()?)?,
            "--seed" => parsed.seed = number(&flag, &value()?)?,
            "--runs" => parsed.runs = number(&flag, &value()?)?,
            "--backend" => parsed.backend = value()?.parse()?,
            "--adapter" => parsed.adapter = Some(value()?),
            "--digits" => {
                let n: usize = number(&flag, &value()?)?;
                if n < 5 {
                    return Err("--digits: at least 5 (4 to train on, 1 to test)".into());
                }
                parsed.digits = Some(n);
            }
            "--plot" => parsed.plot = Some(value()?.into()),
            "--json" => parsed.json = true,
            "--split-out" => parsed.split_out = Some(value()?.into()),
            "--save" => parsed.save = Some(value()?.into()),
            "--default-init" => parsed.prior_bias = false,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for (name, v) in [
        ("--epochs", parsed.epochs),
        ("--batch-size", parsed.batch_size),
        ("--runs", parsed.runs),
    ] {
        if v == 0 {
            return Err(format!("{name}: must be at least 1"));
        }
    }
    Ok(Some(parsed))
}
