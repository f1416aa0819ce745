//! The benchmark: median times of the seed workload per epoch (the CPU backend fused
//! and step by step, the GPU step by step and fused; wall clock, and device time from
//! timestamp queries where the adapter has them), of a wide MLP's training step, and
//! of LeNet-5's and the denoiser's training steps (batch 64), the matrix-product
//! throughput of the CPU backend, of the kernels the GPU's tuner
//! chooses, and of its tiled, naive and workgroup-memory (`s…`) forward kernels. CPU figures are given per thread count (`cpu_threads`: one thread and
//! every core by default), keyed by the count. The last line of `--json` output is
//! one JSON object; `bench/pytorch_reference.py` prints the same keys for PyTorch.
//!
//! `cargo run --release --example bench -- --json [--epochs N] [--steps N] [--reps N]
//! [--threads LIST] [--adapter NAME | --no-gpu]`

use std::process::ExitCode;
use std::time::Instant;

use minidl::backend::gpu::products::{self, Choice, Product};
use minidl::backend::gpu::{ConvLowering, ConvPass};
use minidl::backend::{Conv2dGeometry, Conv2dSpec};
use minidl::backend::{MlpLayer, MlpRecipe, MlpSpec, MlpTrainer};
use minidl::data::{disc_train_test, Dataset};
use minidl::nn::{
    build_model, parse_model, CrossEntropyLoss, LayerSpec, Linear, Module, MseLoss, ReLU, RowShape,
    Sequential,
};
use minidl::optim::{Adam, MomentumStep, Sgd};
use minidl::train::{fit, FitConfig, Fusion};
use minidl::{seed, Act, Backend, Cpu, DeviceTensor, Error, Gpu, GradMode, Ops, Reduction, Tensor};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

const USAGE: &str =
    "usage: bench [--json] [--epochs N] [--steps N] [--reps N] [--image-steps N] [--threads LIST]
             [--adapter NAME | --no-gpu]

  --epochs N      timed seed epochs per path, after 5 warm-up epochs (default 30, at least 5)
  --steps N       timed wide-MLP steps per backend, after one warm-up step (default 5)
  --reps N        timed products per matrix size and kernel, after one warm-up (default 3)
  --image-steps N timed LeNet-5 and denoiser steps (batch 64) per backend (default 20)
  --threads LIST  CPU thread counts, comma-separated (default: 1 and every core)
  --adapter NAME  the GPU adapter whose name contains NAME
  --no-gpu        CPU figures only (also when no GPU adapter exists)
  --products-only only the GPU's tuned products (stderr; no JSON)
  --images-only   only the GPU's LeNet-5 and denoiser steps, after both lowerings of each
                  of their convolutions timed (stderr; no JSON; MINIDL_CONV=direct or
                  unfolded forces a lowering in the steps)
  --json          end with one JSON line of results";

/// Seed epochs run before the timed ones (the first few are slower on llvmpipe).
const WARM_UP: usize = 5;

struct Args {
    json: bool,
    epochs: usize,
    steps: usize,
    reps: usize,
    threads: Vec<usize>,
    adapter: Option<String>,
    no_gpu: bool,
    products_only: bool,
    images_only: bool,
    image_steps: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        json: false,
        epochs: 30,
        steps: 5,
        reps: 3,
        threads: vec![1, Cpu::all_cores()],
        adapter: None,
        no_gpu: false,
        products_only: false,
        images_only: false,
        image_steps: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or(format!("{name}: {v:?} is not a positive integer"))
        };
        match flag.as_str() {
            "--json" => args.json = true,
            "--epochs" => args.epochs = number("--epochs")?.max(5),
            "--steps" => args.steps = number("--steps")?,
            "--reps" => args.reps = number("--reps")?,
            "--image-steps" => args.image_steps = number("--image-steps")?,
            "--threads" => {
                let v = it.next().ok_or("--threads needs a value")?;
                args.threads = v
                    .split(',')
                    .map(|t| t.trim().parse().ok().filter(|&n: &usize| n >= 1))
                    .collect::<Option<_>>()
                    .ok_or(format!(
                        "--threads: {v:?} is not a list of positive integers"
                    ))?;
            }
            "--adapter" => args.adapter = Some(it.next().ok_or("--adapter needs a value")?),
            "--no-gpu" => args.no_gpu = true,
            "--products-only" => args.products_only = true,
            "--images-only" => args.images_only = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.threads.dedup();
    Ok(Some(args))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median ms per epoch of the seed workload after [`WARM_UP`] epochs: wall clock, and
/// device time where the backend has timestamps.
fn seed_epoch_ms<B: Backend>(
    b: &B,
    fused: bool,
    epochs: usize,
) -> Result<(f64, Option<f64>), Error> {
    let (train, _) = disc_train_test(seed::SEED)?;
    let mut model = seed::network(b, &mut ChaCha8Rng::seed_from_u64(seed::SEED + 1))?;
    let mut loss = MseLoss::new(seed::REDUCTION);
    let config = FitConfig {
        epochs: WARM_UP + epochs,
        batch_size: seed::BATCH_SIZE,
        fused: fused.into(),
        gpu_timing: true,
        ..FitConfig::default()
    };
    let mut sgd = Sgd::new(seed::LR)?;
    let reports = fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &train,
        &config,
        |_, _| Ok(()),
    )?;
    if reports[0].fused != fused {
        return Err(Error::InvalidArgument(format!(
            "{}: the fused path was not available",
            b.name()
        )));
    }
    let timed = &reports[WARM_UP..];
    let wall = median(timed.iter().map(|r| r.millis).collect());
    let device: Vec<f64> = timed.iter().filter_map(|r| r.gpu_millis).collect();
    Ok((wall, (!device.is_empty()).then(|| median(device))))
}

/// Median ms per training step of Linear(784,1024) ReLU Linear(1024,1024) ReLU
/// Linear(1024,10), batch 256, mean MSE, SGD 0.01, after one warm-up step; each step
/// ends with the loss read back.
fn wide_step_ms<B: Backend>(b: &B, steps: usize) -> Result<f64, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let layers: Vec<Box<dyn Module<B>>> = vec![
        Box::new(Linear::new(b, 784, 1024, &mut rng)?),
        Box::new(ReLU::new()),
        Box::new(Linear::new(b, 1024, 1024, &mut rng)?),
        Box::new(ReLU::new()),
        Box::new(Linear::new(b, 1024, 10, &mut rng)?),
    ];
    let mut model = Sequential::new(layers)?;
    let inputs: Vec<f32> = (0..256 * 784).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels: Vec<usize> = (0..256).map(|_| rng.random_range(0..10)).collect();
    let data = Dataset::new(Tensor::new(&[256, 784], inputs)?, labels, 10)?;
    let mut loss = MseLoss::new(Reduction::Mean);
    let config = FitConfig {
        epochs: steps + 1,
        batch_size: 256,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    let reports = fit(
        b,
        &mut model,
        &mut loss,
        &mut Sgd::new(0.01)?,
        &data,
        &config,
        |_, _| Ok(()),
    )?;
    Ok(median(reports[1..].iter().map(|r| r.millis).collect()))
}

/// LeNet-5 on 1×28×28 images (cross-entropy, SGD with momentum 0.9, learning rate
/// 0.05), as `train --model` builds it.
const LENET: &str = "conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),flatten,\
                     linear(120),relu,linear(84),relu,linear(10)";
/// The Noise2Noise denoiser of `examples/denoise` (MSE, Adam 0.001).
const DENOISER: &str = "conv(32,3,stride=2,padding=1),relu,conv(32,3,stride=2,padding=1),relu,\
                        upsample(2),conv(32,3,padding=1),relu,upsample(2),conv(1,3,padding=1),sigmoid";

/// Median ms per training step of LeNet-5 (`denoiser` false) or the denoiser on 64
/// random 1×28×28 images, after one warm-up step; each step ends with the loss read
/// back.
fn image_step_ms<B: Backend>(b: &B, denoiser: bool, steps: usize) -> Result<f64, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let list = if denoiser { DENOISER } else { LENET };
    let layers = parse_model(list).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let image = RowShape::Image {
        channels: 1,
        height: 28,
        width: 28,
    };
    let (mut model, _) = build_model(b, &layers, image, &mut rng)?;
    let mut random = |n: usize| -> Result<Tensor, Error> {
        let v = (0..n * 784).map(|_| rng.random_range(0.0..1.0)).collect();
        Tensor::new(&[n, 784], v)
    };
    let inputs = random(64)?;
    let config = FitConfig {
        epochs: steps + 1,
        batch_size: 64,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    let reports = if denoiser {
        let data = Dataset::regression(inputs, random(64)?)?;
        let mut loss = MseLoss::new(Reduction::Mean);
        let mut adam = Adam::new(0.001)?;
        fit(
            b,
            &mut model,
            &mut loss,
            &mut adam,
            &data,
            &config,
            |_, _| Ok(()),
        )?
    } else {
        let labels = (0..64).map(|i| (i * 7) % 10).collect();
        let data = Dataset::new(inputs, labels, 10)?;
        let mut loss = CrossEntropyLoss::new(Reduction::Mean);
        let mut sgd = Sgd::with(MomentumStep {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        })?;
        fit(
            b,
            &mut model,
            &mut loss,
            &mut sgd,
            &data,
            &config,
            |_, _| Ok(()),
        )?
    };
    Ok(median(reports[1..].iter().map(|r| r.millis).collect()))
}

/// For each convolution of LeNet-5 and the denoiser at batch 64 on `gpu`, and each of
/// its passes (the first layer's backward without the input gradient, as in training):
/// both lowerings' milliseconds as `Gpu::measure_conv` times them, and the lowering the
/// op takes (stderr).
fn conv_lowerings(gpu: &Gpu) -> Result<(), Error> {
    for (name, list) in [("LeNet-5", LENET), ("denoiser", DENOISER)] {
        let layers = parse_model(list).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for (i, layer) in layers.iter().enumerate() {
            let LayerSpec::Conv {
                out,
                kernel,
                stride,
                padding,
                dilation,
                ..
            } = *layer
            else {
                continue;
            };
            let input = RowShape::Image {
                channels: 1,
                height: 28,
                width: 28,
            };
            // The shape the layers before this one make of the 28×28 digits.
            let shape = match i {
                0 => input,
                _ => build_model(gpu, &layers[..i], input, &mut rng)?.1,
            };
            let RowShape::Image {
                channels,
                height,
                width,
            } = shape
            else {
                continue;
            };
            let spec = Conv2dSpec::new(channels, out, kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_dilation(dilation);
            let g = Conv2dGeometry::new("bench", &spec, 64, (height, width))?;
            let backward = ConvPass::Backward { input_grad: i > 0 };
            for pass in [ConvPass::Forward, backward] {
                let (_, times) = gpu.measure_conv(&g, pass)?;
                let time = |l: ConvLowering| times.iter().find(|t| t.0 == l).map_or(0.0, |t| t.1);
                eprintln!(
                    "{name} layer {i} conv {channels}→{out} on {height}×{width}, {}: direct {:.1} ms, \
                     unfolded {:.1} ms; the op takes {}",
                    pass.label(),
                    time(ConvLowering::Direct),
                    time(ConvLowering::Unfolded),
                    gpu.conv_lowering(&g, pass)?.label()
                );
            }
        }
    }
    Ok(())
}

/// GFLOPS of `n×n · (n×n)ᵀ` (plus a bias) on `b`, each product run by `product`: the
/// median of `reps` timed products after a warm-up, each waited for.
fn matmul_gflops<B: Backend>(
    b: &B,
    n: usize,
    reps: usize,
    product: impl Fn(
        &DeviceTensor<B>,
        &DeviceTensor<B>,
        &DeviceTensor<B>,
        &DeviceTensor<B>,
    ) -> Result<(), Error>,
) -> Result<f64, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let mut random = |rows, cols| -> Result<Tensor, Error> {
        let v = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        Tensor::new(&[rows, cols], v)
    };
    let a = b.upload(&random(n, n)?)?;
    let w = b.upload(&random(n, n)?)?;
    let bias = b.alloc(1, n)?;
    let c = b.alloc(n, n)?;
    let mut times = Vec::new();
    for rep in 0..=reps {
        let start = Instant::now();
        product(&a, &w, &bias, &c)?;
        b.synchronize()?;
        if rep > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (n as f64).powi(3) / median(times) / 1e9)
}

/// GFLOPS of `product` with `choice` for square `n × n` operands (2n³ operations):
/// the median of `reps` timed runs after a warm-up, each waited for.
fn product_gflops(
    gpu: &Gpu,
    product: Product,
    choice: Choice,
    n: usize,
    reps: usize,
) -> Result<f64, Error> {
    matmul_gflops(gpu, n, reps, |a, w, bias, c| match product {
        Product::Forward => gpu.linear_forward_with(choice, a, w, bias, Act::Identity, c),
        Product::GradInput => gpu.grad_input_with(choice, a, w, None, Act::Identity, c),
        Product::GradWeight => gpu.grad_weight_with(
            choice,
            a,
            w,
            None,
            Act::Identity,
            c,
            bias,
            GradMode::Overwrite,
        ),
    })
}

/// `{"forward":{"256":{"gflops":…,"kernel":…},…},…}`: the kernel the tuner chooses for
/// each product at each of [`TUNED_SIZES`] (how long choosing took on stderr), and its
/// GFLOPS.
fn tuned_products(gpu: &Gpu, reps: usize) -> Result<String, Error> {
    let mut tuned = Vec::new();
    for product in Product::ALL {
        let mut sizes = Vec::new();
        for n in TUNED_SIZES {
            let start = Instant::now();
            let choice = gpu.product_choice(product, n, n, n)?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            let g = product_gflops(gpu, product, choice, n, reps)?;
            eprintln!(
                "{} {n}: {g:.2} GFLOPS ({}, chosen in {ms:.0} ms)",
                product.name(),
                choice.label()
            );
            sizes.push(format!(
                "\"{n}\":{{\"gflops\":{g},\"kernel\":\"{}\"}}",
                choice.label()
            ));
        }
        tuned.push(format!("\"{}\":{{{}}}", product.name(), sizes.join(",")));
    }
    Ok(format!("{{{}}}", tuned.join(",")))
}

/// The sizes at which the tuned products are timed.
const TUNED_SIZES: [usize; 4] = [256, 1024, 2048, 4096];

/// The sizes of the square products timed.
const MATMUL_SIZES: [usize; 3] = [256, 1024, 2048];

/// `{"256":…,"1024":…,"2048":…}` of `gflops(n)`, each also printed to stderr.
fn matmul_sizes(
    what: &str,
    mut gflops: impl FnMut(usize) -> Result<f64, Error>,
) -> Result<String, Error> {
    let mut sizes = Vec::new();
    for n in MATMUL_SIZES {
        let g = gflops(n)?;
        eprintln!("matmul {what} {n}: {g:.2} GFLOPS");
        sizes.push(format!("\"{n}\":{g}"));
    }
    Ok(format!("{{{}}}", sizes.join(",")))
}

/// `{"t1":v1,"t2":v2,…}`: one value per thread count.
fn per_threads(values: &[(usize, String)]) -> String {
    let items: Vec<String> = values.iter().map(|(t, v)| format!("\"{t}\":{v}")).collect();
    format!("{{{}}}", items.join(","))
}

/// Milliseconds to generate and compile the fused trainer for `widths` (ReLU layers,
/// Tanh output) and batches of 10, on a device of its own (nothing cached yet).
fn fused_build_ms(adapter: Option<&str>, widths: &[usize]) -> Result<f64, Error> {
    let gpu = Gpu::with_adapter(adapter)?;
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| MlpLayer {
            inputs: w[0],
            outputs: w[1],
            act: if i + 2 == widths.len() {
                Act::Tanh
            } else {
                Act::Relu
            },
        })
        .collect();
    let spec = MlpSpec::new(layers)?;
    let start = Instant::now();
    gpu.prepare(&spec, &MlpRecipe::sgd_mse(10, 0.01, Reduction::Sum))?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// The CPU figures at each thread count: seed epoch fused and step by step, wide
/// step and products, as JSON values keyed by the thread count.
struct CpuFigures {
    seed_fused: Vec<(usize, String)>,
    seed_generic: Vec<(usize, String)>,
    wide: Vec<(usize, String)>,
    lenet: Vec<(usize, String)>,
    denoiser: Vec<(usize, String)>,
    matmul: Vec<(usize, String)>,
}

fn cpu_figures(args: &Args) -> Result<CpuFigures, Error> {
    let mut f = CpuFigures {
        seed_fused: Vec::new(),
        seed_generic: Vec::new(),
        wide: Vec::new(),
        lenet: Vec::new(),
        denoiser: Vec::new(),
        matmul: Vec::new(),
    };
    for &t in &args.threads {
        let cpu = Cpu::with_threads(t)?;
        let (fused, _) = seed_epoch_ms(&cpu, true, args.epochs)?;
        let (generic, _) = seed_epoch_ms(&cpu, false, args.epochs)?;
        eprintln!(
            "seed epoch, cpu {t} thread(s): fused {fused:.3} ms, step by step {generic:.3} ms"
        );
        let wide = wide_step_ms(&cpu, args.steps)?;
        eprintln!("wide step, cpu {t} thread(s): {wide:.2} ms");
        let lenet = image_step_ms(&cpu, false, args.image_steps)?;
        let denoiser = image_step_ms(&cpu, true, args.image_steps)?;
        eprintln!("LeNet step, cpu {t} thread(s): {lenet:.2} ms; denoiser step {denoiser:.2} ms");
        f.lenet.push((t, lenet.to_string()));
        f.denoiser.push((t, denoiser.to_string()));
        let matmul = matmul_sizes(&format!("cpu {t} thread(s)"), |n| {
            matmul_gflops(&cpu, n, args.reps, |a, w, bias, c| {
                cpu.linear_forward(a, w, bias, c)
            })
        })?;
        f.seed_fused.push((t, fused.to_string()));
        f.seed_generic.push((t, generic.to_string()));
        f.wide.push((t, wide.to_string()));
        f.matmul.push((t, matmul));
    }
    Ok(f)
}

/// The GPU figures as JSON members (without braces), or `None` without a GPU.
fn gpu_figures(args: &Args) -> Result<Option<[String; 6]>, Error> {
    if args.no_gpu {
        return Ok(None);
    }
    let gpu = match Gpu::with_adapter(args.adapter.as_deref()) {
        Ok(gpu) => gpu,
        Err(Error::NoAdapter(why)) if args.adapter.is_none() => {
            eprintln!("no GPU adapter ({why}): CPU figures only");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    eprintln!("bench on {}", gpu.adapter());
    if args.products_only {
        tuned_products(&gpu, args.reps)?;
        return Ok(None);
    }
    if args.images_only {
        conv_lowerings(&gpu)?;
        let lenet = image_step_ms(&gpu, false, args.image_steps)?;
        let denoiser = image_step_ms(&gpu, true, args.image_steps)?;
        eprintln!("LeNet step, gpu: {lenet:.1} ms; denoiser step {denoiser:.1} ms");
        return Ok(None);
    }
    let build_seed = fused_build_ms(args.adapter.as_deref(), &seed::WIDTHS)?;
    let build_wide = fused_build_ms(args.adapter.as_deref(), &[8, 64, 64, 3])?;
    eprintln!("fused trainer build: seed {build_seed:.1} ms, 8-64-64-3 {build_wide:.1} ms");
    let (generic, generic_device) = seed_epoch_ms(&gpu, false, args.epochs)?;
    eprintln!("seed epoch, gpu step by step: {generic:.3} ms (device {generic_device:?})");
    let (fused, fused_device) = seed_epoch_ms(&gpu, true, args.epochs)?;
    eprintln!("seed epoch, gpu fused: {fused:.3} ms (device {fused_device:?})");
    let number = |v: Option<f64>| v.map_or("null".to_string(), |v| v.to_string());
    let wide_gpu = wide_step_ms(&gpu, args.steps)?;
    eprintln!("wide step, gpu: {wide_gpu:.1} ms");
    let lenet_gpu = image_step_ms(&gpu, false, args.image_steps)?;
    let denoiser_gpu = image_step_ms(&gpu, true, args.image_steps)?;
    eprintln!("LeNet step, gpu: {lenet_gpu:.1} ms; denoiser step {denoiser_gpu:.1} ms");
    let mut matmul = vec![format!("\"gpu\":{}", tuned_products(&gpu, args.reps)?)];
    // The plain kernels and the workgroup-memory ones, kept for the comparison: the
    // forward product.
    let staged = products::staged_candidates()
        .into_iter()
        .map(Choice::Staged);
    for choice in [Choice::Tiled, Choice::Naive].into_iter().chain(staged) {
        let sizes = matmul_sizes(&choice.label(), |n| {
            product_gflops(&gpu, Product::Forward, choice, n, args.reps)
        })?;
        matmul.push(format!("\"{}\":{sizes}", choice.label()));
    }
    Ok(Some([
        format!(
            "\"adapter\":\"{}\",\"seed_epoch_device_ms\":{{\"gpu_generic\":{},\"gpu_fused\":{}}},\"fused_build_ms\":{{\"seed\":{build_seed},\"8-64-64-3\":{build_wide}}}",
            gpu.adapter().name.replace('\\', "\\\\").replace('"', "\\\""),
            number(generic_device),
            number(fused_device),
        ),
        format!("\"gpu_generic\":{generic},\"gpu_fused\":{fused}"),
        format!("\"gpu\":{wide_gpu}"),
        matmul.join(","),
        format!("\"gpu\":{lenet_gpu}"),
        format!("\"gpu\":{denoiser_gpu}"),
    ]))
}

fn run(args: &Args) -> Result<String, Error> {
    let gpu = gpu_figures(args)?;
    if args.products_only || args.images_only {
        return Ok(String::new());
    }
    let cpu = cpu_figures(args)?;
    let threads: Vec<String> = args.threads.iter().map(|t| t.to_string()).collect();
    let [head, seed_gpu, wide_gpu, matmul_gpu, lenet_gpu, denoiser_gpu] =
        gpu.unwrap_or_else(|| {
            let mut none: [String; 6] = Default::default();
            none[0] = "\"adapter\":null".to_string();
            none
        });
    let with = |cpu: String, gpu: &str| {
        if gpu.is_empty() {
            cpu
        } else {
            format!("{cpu},{gpu}")
        }
    };
    Ok(format!(
        "{{{head},\"cpu_threads\":[{}],\"seed_epoch_ms\":{{{}}},\"wide_step_ms\":{{{}}},\"matmul_gflops\":{{{}}},\"lenet_step_ms\":{{{}}},\"denoiser_step_ms\":{{{}}}}}",
        threads.join(","),
        with(
            format!(
                "\"cpu\":{},\"cpu_generic\":{}",
                per_threads(&cpu.seed_fused),
                per_threads(&cpu.seed_generic)
            ),
            &seed_gpu
        ),
        with(format!("\"cpu\":{}", per_threads(&cpu.wide)), &wide_gpu),
        with(format!("\"cpu\":{}", per_threads(&cpu.matmul)), &matmul_gpu),
        with(format!("\"cpu\":{}", per_threads(&cpu.lenet)), &lenet_gpu),
        with(format!("\"cpu\":{}", per_threads(&cpu.denoiser)), &denoiser_gpu),
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(json) => {
            if args.json {
                println!("{json}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(1)
        }
    }
}
