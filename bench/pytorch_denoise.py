#!/usr/bin/env python3
"""The Noise2Noise digit denoiser: minidl's `denoise` example against PyTorch.

The data is datasets/mnist/mnist10k.bin.gz (10 000 grey 28x28 digits, pixels
0..255, stored grouped by class; format in datasets/mnist/README.md).  For each
seed 0 .. --seeds - 1 the script

  1. runs minidl's `denoise` example (--minidl, default
     target/release/examples/denoise) as

       denoise --data FILE --epochs E --sigma X --lr X --batch-size B --seed S
               --backend cpu --split-out SPLIT --json [--default-init]

     (--default-init with --init default), with MINIDL_THREADS=--threads in its
     environment; it reads the last stdout line (a JSON object with psnr_db,
     noisy_psnr_db and step_ms_median) and the train / test row indices minidl
     wrote to SPLIT;
  2. trains the same recipe with PyTorch (CPU, torch.set_num_threads(--threads))
     on exactly those rows and measures its PSNR on the test rows.

The recipe both sides follow:
  inputs        clean digits c = pixel / 255 in float32, shaped (1, 28, 28)
  network       Conv2d(1,32,3,stride=2,padding=1), ReLU,
                Conv2d(32,32,3,stride=2,padding=1), ReLU,
                Upsample(scale_factor=2, mode='nearest'), Conv2d(32,32,3,padding=1),
                ReLU, Upsample(scale_factor=2, mode='nearest'),
                Conv2d(32,1,3,padding=1), Sigmoid; PyTorch's default init right
                after torch.manual_seed(seed); then, with --init prior (the
                default, as minidl's), the last convolution's bias set to the
                logit of the mean clean training pixel, so that the untrained
                network outputs that mean instead of 0.5 (--init default keeps
                PyTorch's bias)
  step          for the batch's clean digits c: input = c + sigma * N(0,1) and
                target = c + sigma * N(0,1), two independent draws, fresh every
                step, not clipped; nn.MSELoss() (mean); zero_grad, forward,
                loss, backward, step
  optimizer     Adam(lr) with its other defaults (lr 1e-3 unless --lr); with
                --warmup-steps N > 0, LambdaLR with the factor
                min(1, (step + 1) / N), stepped after every optimizer step, so
                the rate climbs from lr / N to lr over the first N steps
  training      --epochs passes (default 5); each pass orders the train rows
                by torch.randperm with a generator seeded once with the seed;
                consecutive batches of --batch-size (default 64), the last
                partial batch kept; the training noise comes from its own
                generator seeded with seed + 3
  split         minidl's (0.8 train, 0.2 test); with --skip-minidl, numpy's
                default_rng(seed).permutation: the first 80 % train, the rest test
  test          one noisy copy n = c + sigma * N(0,1) of every clean test digit,
                drawn from a generator seeded with seed + 4; the model in eval
                mode under no_grad denoises it;
                PSNR = -10 log10(mean over all test pixels of (out - c)^2)
                (peak 1); noisy_psnr is the same for n itself.  A run has
                "collapsed" when its PSNR is below the noisy input's.

The random streams cannot match minidl's draw for draw (different generators);
the comparison is of distributions over seeds.

Timing: PyTorch's step time is measured from drawing the batch's noise to the
end of the optimizer (and scheduler) step, after the batch is gathered; the
first 5 steps of the run are warm-up and left out, the figure is the median of
all later steps.  minidl's figure is its own step_ms_median.

Run from the repository root after `cargo build --release --example denoise`:
    python3 bench/pytorch_denoise.py --threads 1
PyTorch alone (no minidl binary needed):
    python3 bench/pytorch_denoise.py --skip-minidl --seeds 1 --epochs 1
Needs torch and numpy.  One line per seed and, without --json, a readable
summary go to stderr; the LAST line on stdout is always one JSON object:
recipe, seeds, threads, torch_version, cpu_model, minidl and pytorch (each
{psnr_db, noisy_psnr_db, step_ms, collapsed (per seed), psnr_db_median,
psnr_db_range, noisy_psnr_db_median, step_ms_median, collapsed_count}, null
for a side that did not run) and median_difference_db (minidl - PyTorch).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time

import torch
from torch import nn

from mnist_common import (DEFAULT_DATA, SIDE, check_binary, cpu_model, denoiser, fail, images,
                          load_mnist, log, own_split, read_split)

DEFAULT_MINIDL = os.path.join("target", "release", "examples", "denoise")
SKIP_HINT = "pass --minidl PATH, or run PyTorch alone with --skip-minidl"
WARMUP_STEPS_UNTIMED = 5


def psnr(a, b):
    """-10 log10 of the mean squared difference over all pixels (peak 1), in float64."""
    mse = (a.double() - b.double()).pow(2).mean().item()
    return -10.0 * math.log10(mse) if mse > 0 else float("inf")


def train_pytorch(pixels, split, seed, args):
    """PSNR of the denoised and the noisy test digits, and the per-step times of one seed."""
    clean = images(pixels, split["train"])
    test = images(pixels, split["test"])
    torch.manual_seed(seed)
    model = denoiser()
    if args.init == "prior":
        mean = min(max(clean.double().mean().item(), 1e-3), 1 - 1e-3)
        with torch.no_grad():
            model[-2].bias.fill_(math.log(mean / (1 - mean)))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = None
    if args.warmup_steps > 0:
        n_warm = args.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: min(1.0, (step + 1) / n_warm))
    loss_fn = nn.MSELoss()
    order_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 3)
    n = clean.shape[0]
    times = []
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=order_gen)
        for i in range(0, n, args.batch_size):
            c = clean[order[i:i + args.batch_size]]
            start = time.perf_counter()
            noisy_in = c + args.sigma * torch.randn(c.shape, generator=noise_gen)
            noisy_target = c + args.sigma * torch.randn(c.shape, generator=noise_gen)
            opt.zero_grad()
            loss = loss_fn(model(noisy_in), noisy_target)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            times.append((time.perf_counter() - start) * 1000.0)
    final_loss = loss.item()
    model.eval()
    test_gen = torch.Generator().manual_seed(seed + 4)
    noisy_test = test + args.sigma * torch.randn(test.shape, generator=test_gen)
    with torch.no_grad():
        out = torch.cat([model(noisy_test[i:i + 1000]) for i in range(0, len(test), 1000)])
    timed = times[WARMUP_STEPS_UNTIMED:] if len(times) > WARMUP_STEPS_UNTIMED else times
    return {"psnr_db": psnr(out, test), "noisy_psnr_db": psnr(noisy_test, test),
            "step_ms": statistics.median(timed), "final_loss": final_loss}


def minidl_command(args, seed, split_out):
    cmd = [args.minidl, "--data", args.data, "--epochs", str(args.epochs),
           "--sigma", repr(args.sigma), "--lr", repr(args.lr),
           "--batch-size", str(args.batch_size), "--seed", str(seed), "--backend", "cpu",
           "--split-out", split_out, "--json"]
    if args.warmup_steps > 0:
        fail("--warmup-steps is PyTorch's only: give it with --skip-minidl")
    if args.init == "default":
        cmd += ["--default-init"]
    return cmd


def run_minidl(args, seed, split_out):
    """minidl's JSON result for one seed (its stderr goes straight through)."""
    cmd = minidl_command(args, seed, split_out)
    env = dict(os.environ, MINIDL_THREADS=str(args.threads))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    except OSError as e:
        fail(f"cannot run minidl ({args.minidl}): {e}")
    if proc.returncode != 0:
        fail(f"minidl exited with code {proc.returncode} for seed {seed}: {' '.join(cmd)}")
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    try:
        result = json.loads(lines[-1])
        for key in ("psnr_db", "noisy_psnr_db", "step_ms_median"):
            float(result[key])
    except (IndexError, ValueError, KeyError, TypeError):
        fail(f"minidl's last stdout line for seed {seed} is not a JSON object with psnr_db, "
             f"noisy_psnr_db and step_ms_median: {lines[-1] if lines else '(no output)'!r}")
    return {"psnr_db": float(result["psnr_db"]),
            "noisy_psnr_db": float(result["noisy_psnr_db"]),
            "step_ms": float(result["step_ms_median"]),
            "backend": result.get("backend"), "adapter": result.get("adapter")}


def side_summary(runs):
    """Per-seed lists and their medians, range and collapse count."""
    out = {key: [r[key] for r in runs] for key in ("psnr_db", "noisy_psnr_db", "step_ms")}
    out["collapsed"] = [r["psnr_db"] < r["noisy_psnr_db"] for r in runs]
    out["psnr_db_median"] = statistics.median(out["psnr_db"])
    out["psnr_db_range"] = [min(out["psnr_db"]), max(out["psnr_db"])]
    out["noisy_psnr_db_median"] = statistics.median(out["noisy_psnr_db"])
    out["step_ms_median"] = statistics.median(out["step_ms"])
    out["collapsed_count"] = sum(out["collapsed"])
    return out


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minidl", default=DEFAULT_MINIDL,
                   help=f"minidl's denoise example (default {DEFAULT_MINIDL})")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"minidl's MNIST file (default {DEFAULT_DATA})")
    p.add_argument("--seeds", type=int, default=5, help="run seeds 0 .. N-1 (default 5)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the train rows (default 5)")
    p.add_argument("--batch-size", type=int, default=64, help="digits per step (default 64)")
    p.add_argument("--sigma", type=float, default=0.2,
                   help="standard deviation of the added noise (default 0.2)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--init", choices=("prior", "default"), default="prior",
                   help="the output bias: the mean pixel's logit (prior, minidl's default) "
                        "or PyTorch's default")
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="PyTorch only (with --skip-minidl): raise the learning rate "
                        "linearly over the first N steps (default 0: constant)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads of both sides: torch.set_num_threads(N) and "
                        "MINIDL_THREADS=N for minidl (default 1)")
    p.add_argument("--skip-minidl", action="store_true",
                   help="split the rows here (numpy, seeded) and run only PyTorch")
    p.add_argument("--skip-torch", action="store_true", help="run only minidl")
    p.add_argument("--json", action="store_true",
                   help="no readable summary; only the per-seed lines on stderr and the JSON line")
    args = p.parse_args()
    if args.seeds < 1 or args.epochs < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--seeds, --epochs, --batch-size and --threads must be at least 1")
    if args.sigma <= 0 or args.lr <= 0 or args.warmup_steps < 0:
        p.error("--sigma and --lr must be positive and --warmup-steps non-negative")
    if args.skip_minidl and args.skip_torch:
        p.error("--skip-minidl and --skip-torch together leave nothing to run")
    return args


def describe(name, r):
    mark = "  COLLAPSED" if r["psnr_db"] < r["noisy_psnr_db"] else ""
    return (f"  {name} {r['psnr_db']:6.2f} dB (noisy {r['noisy_psnr_db']:5.2f} dB) "
            f"step {r['step_ms']:.3f} ms{mark}")


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_minidl:
        check_binary(args.minidl, "denoise", SKIP_HINT)
    pixels, _ = load_mnist(args.data)
    seeds = list(range(args.seeds))
    recipe = {"data": args.data, "sigma": args.sigma, "lr": args.lr,
              "warmup_steps": args.warmup_steps, "init": args.init, "batch_size": args.batch_size,
              "epochs": args.epochs, "loss": "mse", "optimizer": "adam",
              "split": [0.8, 0.0, 0.2], "backend": None if args.skip_minidl else "cpu",
              "split_source": "numpy" if args.skip_minidl else "minidl",
              "warmup_steps_untimed": WARMUP_STEPS_UNTIMED}
    log(f"mnist: {pixels.shape[0]} digits {SIDE}x{SIDE}; Noise2Noise denoiser, sigma "
        f"{args.sigma:g}, Adam lr {args.lr:g}"
        + (f" (warm-up {args.warmup_steps} steps)" if args.warmup_steps else "")
        + f", batch {args.batch_size}, {args.epochs} epoch(s), {args.threads} thread(s), "
        f"seeds 0..{args.seeds - 1}")

    minidl_runs, torch_runs = [], []
    with tempfile.TemporaryDirectory(prefix="pytorch_denoise_") as tmp:
        for seed in seeds:
            if args.skip_minidl:
                split = own_split(len(pixels), seed)
            else:
                split_out = os.path.join(tmp, f"split_{seed}.json")
                minidl_runs.append(run_minidl(args, seed, split_out))
                split = read_split(split_out, len(pixels))
            line = f"seed {seed}:"
            if minidl_runs:
                line += describe("minidl", minidl_runs[-1])
            if not args.skip_torch:
                res = train_pytorch(pixels, split, seed, args)
                torch_runs.append(res)
                line += describe("pytorch", res)
            line += f"  (rows {len(split['train'])}/{len(split['test'])})"
            log(line)

    minidl = side_summary(minidl_runs) if minidl_runs else None
    if minidl is not None:
        minidl["backend"] = minidl_runs[0].get("backend")
        minidl["adapter"] = minidl_runs[0].get("adapter")
    pytorch = side_summary(torch_runs) if torch_runs else None
    diff = None
    if minidl and pytorch:
        diff = minidl["psnr_db_median"] - pytorch["psnr_db_median"]

    if not args.json:
        log(f"\nover {len(seeds)} seed(s), {args.threads} thread(s):")
        for name, side in (("minidl ", minidl), ("pytorch", pytorch)):
            if side is not None:
                lo, hi = side["psnr_db_range"]
                log(f"  {name} PSNR median {side['psnr_db_median']:.2f} dB (range {lo:.2f} .. "
                    f"{hi:.2f}), noisy input {side['noisy_psnr_db_median']:.2f} dB, "
                    f"{side['collapsed_count']} collapsed, median step "
                    f"{side['step_ms_median']:.3f} ms")
        if diff is not None:
            log(f"  difference (minidl - pytorch): {diff:+.2f} dB")
    print(json.dumps({"recipe": recipe, "seeds": seeds, "threads": args.threads,
                      "torch_version": torch.__version__, "cpu_model": cpu_model(),
                      "minidl": minidl, "pytorch": pytorch,
                      "median_difference_db": diff}), flush=True)


if __name__ == "__main__":
    main()
