#!/usr/bin/env python3
"""LeNet-5 on the shipped MNIST digits: minidl's `train` example against PyTorch.

With --data train-images-idx3-ubyte.gz --test-data t10k-images-idx3-ubyte.gz (LeCun's
IDX files, the labels files beside them) both sides train on all of the first file's
rows (minidl: --test-data FILE --split 1,0,0) and test on the second file's.

The data is datasets/mnist/mnist10k.bin.gz (10 000 grey 28x28 digits, pixels
0..255, labels 0..9, stored grouped by class; format in datasets/mnist/README.md).
For each seed 0 .. --seeds - 1 the script

  1. runs minidl's `train` example (--minidl, default
     target/release/examples/train) as

       train --data FILE --image 1,28,28 --model LENET --optimizer momentum
             --lr 0.05 --momentum 0.9 --batch-size 64 --epochs E
             --split 0.8,0,0.2 --scale-by 255 --backend B --seed S
             --split-out SPLIT --json

     with MINIDL_THREADS=--threads in its environment, where LENET is
     conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),flatten,
     linear(120),relu,linear(84),relu,linear(10); it reads the last stdout line
     (a JSON object with test_accuracy and epoch_ms_median) and the train /
     validation / test row indices minidl wrote to SPLIT;
  2. trains the same recipe with PyTorch (CPU, torch.set_num_threads(--threads))
     on exactly those rows and measures its test accuracy and step time.

The recipe both sides follow:
  inputs        pixel / 255 in float32, shaped (1, 28, 28); no other scaling
  network       Conv2d(1,6,5,padding=2), ReLU, MaxPool2d(2), Conv2d(6,16,5),
                ReLU, MaxPool2d(2), Flatten, Linear(400,120), ReLU,
                Linear(120,84), ReLU, Linear(84,10); PyTorch's default init
                right after torch.manual_seed(seed)
  loss          nn.CrossEntropyLoss() (mean over the batch)
  optimizer     SGD(lr=0.05, momentum=0.9)
  training      --epochs passes (default 5); each pass orders the train rows
                by torch.randperm with a generator seeded once with the seed;
                consecutive batches of 64, the last partial batch kept; each
                step zero_grad, forward, loss, backward, step
  split         minidl's (0.8 train, no validation, 0.2 test); with
                --skip-minidl, numpy's default_rng(seed).permutation: the first
                80 % train, the rest test
  accuracy      the fraction of test rows whose argmax output is the label

Timing: PyTorch's step time is measured around zero_grad, forward, loss,
backward and step of each batch (the batch is gathered before the clock
starts); the first 5 steps of the run are warm-up and left out, the figure is
the median over all later steps of all epochs.  minidl's step time is its
epoch_ms_median divided by its steps per epoch, ceil(train rows / 64), so it
includes whatever minidl does between steps.

Run from the repository root after `cargo build --release --example train`:
    python3 bench/pytorch_lenet.py --threads 1
PyTorch alone (no minidl binary needed):
    python3 bench/pytorch_lenet.py --skip-minidl --seeds 1 --epochs 1
Needs torch and numpy.  One line per seed and, without --json, a readable
summary go to stderr; the LAST line on stdout is always one JSON object:
recipe, seeds, threads, torch_version, cpu_model, minidl {test_accuracy,
median, range, step_ms, step_ms_median, epoch_ms_median, backend, adapter}
(null with --skip-minidl), pytorch {test_accuracy, median, range, step_ms,
step_ms_median} (null with --skip-torch) and median_difference_pp (minidl
median - PyTorch median in percentage points, null unless both ran).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from torch import nn

from mnist_common import (DEFAULT_DATA, LENET_LAYERS, SIDE, check_binary, cpu_model,
                          fail, images, lenet, load_mnist, log, own_split, read_split)

DEFAULT_MINIDL = os.path.join("target", "release", "examples", "train")
SKIP_HINT = "pass --minidl PATH, or run PyTorch alone with --skip-minidl"
LR = 0.05
MOMENTUM = 0.9
BATCH = 64
WARMUP_STEPS = 5


def accuracy(model, x, y, chunk=1000):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), chunk):
            correct += int((model(x[i:i + chunk]).argmax(dim=1) == y[i:i + chunk]).sum())
    return correct / len(y)


def train_pytorch(pixels, labels, split, seed, epochs, test=None):
    """Test accuracy and per-step times (ms, warm-up steps removed) of one seed; the
    test rows are split["test"] of `test` (pixels, labels) when given, else of the
    training data."""
    xt, yt = images(pixels, split["train"]), torch.from_numpy(labels[split["train"]])
    test_pixels, test_labels = test if test is not None else (pixels, labels)
    xs, ys = images(test_pixels, split["test"]), torch.from_numpy(test_labels[split["test"]])
    torch.manual_seed(seed)
    model = lenet()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    n = len(yt)
    times = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, BATCH):
            batch = order[i:i + BATCH]
            xb, yb = xt[batch], yt[batch]
            start = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            times.append((time.perf_counter() - start) * 1000.0)
    if not math.isfinite(loss.item()):
        log(f"seed {seed}: PyTorch's last training loss is {loss.item()}")
    model.eval()
    timed = times[WARMUP_STEPS:] if len(times) > WARMUP_STEPS else times
    return {"test_accuracy": accuracy(model, xs, ys), "step_ms": statistics.median(timed),
            "steps": len(times)}


def minidl_command(args, seed, split_out):
    split = ["--split", "0.8,0,0.2"]
    if args.test_data:
        split = ["--test-data", args.test_data, "--split", "1,0,0"]
    return [args.minidl, "--data", args.data, "--image", f"1,{SIDE},{SIDE}",
            "--model", LENET_LAYERS, "--optimizer", "momentum", "--lr", repr(LR),
            "--momentum", repr(MOMENTUM), "--batch-size", str(BATCH),
            "--epochs", str(args.epochs), *split, "--scale-by", "255",
            "--backend", args.backend, "--seed", str(seed), "--split-out", split_out,
            "--json"]


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
        float(result["test_accuracy"])
        float(result["epoch_ms_median"])
    except (IndexError, ValueError, KeyError, TypeError):
        fail(f"minidl's last stdout line for seed {seed} is not a JSON object with "
             f"test_accuracy and epoch_ms_median: {lines[-1] if lines else '(no output)'!r}")
    return result


def summary(values):
    return {"median": statistics.median(values), "range": [min(values), max(values)]}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minidl", default=DEFAULT_MINIDL,
                   help=f"minidl's train example (default {DEFAULT_MINIDL})")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"minidl's MNIST file (default {DEFAULT_DATA})")
    p.add_argument("--test-data", default=None,
                   help="test on this file's digits (an IDX images file or minidl's MNIST "
                        "file) and train on all of --data's")
    p.add_argument("--seeds", type=int, default=5, help="run seeds 0 .. N-1 (default 5)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the train rows (default 5)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads of both sides: torch.set_num_threads(N) and "
                        "MINIDL_THREADS=N for minidl (default 1)")
    p.add_argument("--backend", choices=("cpu", "gpu"), default="cpu",
                   help="minidl's backend (default cpu); PyTorch always runs on the CPU")
    p.add_argument("--skip-minidl", action="store_true",
                   help="split the rows here (numpy, seeded) and run only PyTorch")
    p.add_argument("--skip-torch", action="store_true", help="run only minidl")
    p.add_argument("--json", action="store_true",
                   help="no readable summary; only the per-seed lines on stderr and the JSON line")
    args = p.parse_args()
    if args.seeds < 1 or args.epochs < 1 or args.threads < 1:
        p.error("--seeds, --epochs and --threads must be at least 1")
    if args.skip_minidl and args.skip_torch:
        p.error("--skip-minidl and --skip-torch together leave nothing to run")
    return args


def pct(a):
    return f"{100.0 * a:6.2f} %"


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_minidl:
        check_binary(args.minidl, "train", SKIP_HINT)
    pixels, labels = load_mnist(args.data)
    test = load_mnist(args.test_data) if args.test_data else None
    seeds = list(range(args.seeds))
    recipe = {"data": args.data, "test_data": args.test_data, "model": LENET_LAYERS,
              "inputs": "pixel / 255",
              "loss": "ce", "optimizer": "momentum", "lr": LR, "momentum": MOMENTUM,
              "batch_size": BATCH, "epochs": args.epochs,
              "split": [1.0, 0.0, 0.0] if test is not None else [0.8, 0.0, 0.2],
              "backend": None if args.skip_minidl else args.backend,
              "split_source": "numpy" if args.skip_minidl else "minidl",
              "warmup_steps_untimed": WARMUP_STEPS}
    log(f"mnist: {len(labels)} digits {SIDE}x{SIDE}; LeNet-5, SGD lr {LR} momentum {MOMENTUM}, "
        f"batch {BATCH}, {args.epochs} epoch(s), {args.threads} thread(s), "
        f"seeds 0..{args.seeds - 1}")

    minidl_runs, torch_runs = [], []
    with tempfile.TemporaryDirectory(prefix="pytorch_lenet_") as tmp:
        for seed in seeds:
            if args.skip_minidl and test is not None:
                split = {"train": np.arange(len(labels)), "validation": np.arange(0),
                         "test": np.arange(len(test[1]))}
            elif args.skip_minidl:
                split = own_split(len(labels), seed)
            else:
                split_out = os.path.join(tmp, f"split_{seed}.json")
                result = run_minidl(args, seed, split_out)
                split = read_split(split_out, len(labels),
                                   len(test[1]) if test is not None else None)
                steps = math.ceil(len(split["train"]) / BATCH)
                result["_step_ms"] = float(result["epoch_ms_median"]) / steps
                minidl_runs.append(result)
            line = f"seed {seed}:"
            if minidl_runs:
                m = minidl_runs[-1]
                line += (f"  minidl {pct(float(m['test_accuracy']))} "
                         f"step {m['_step_ms']:.3f} ms")
            if not args.skip_torch:
                res = train_pytorch(pixels, labels, split, seed, args.epochs, test)
                torch_runs.append(res)
                line += f"  pytorch {pct(res['test_accuracy'])} step {res['step_ms']:.3f} ms"
            line += f"  (rows {len(split['train'])}/{len(split['validation'])}/{len(split['test'])})"
            log(line)

    minidl = pytorch = diff = None
    if minidl_runs:
        acc = [float(r["test_accuracy"]) for r in minidl_runs]
        step = [r["_step_ms"] for r in minidl_runs]
        minidl = {"test_accuracy": acc, **summary(acc), "step_ms": step,
                  "step_ms_median": statistics.median(step),
                  "epoch_ms_median": [float(r["epoch_ms_median"]) for r in minidl_runs],
                  "backend": minidl_runs[0].get("backend"),
                  "adapter": minidl_runs[0].get("adapter")}
    if torch_runs:
        acc = [r["test_accuracy"] for r in torch_runs]
        step = [r["step_ms"] for r in torch_runs]
        pytorch = {"test_accuracy": acc, **summary(acc), "step_ms": step,
                   "step_ms_median": statistics.median(step)}
    if minidl and pytorch:
        diff = (minidl["median"] - pytorch["median"]) * 100.0

    if not args.json:
        log(f"\nover {len(seeds)} seed(s), {args.threads} thread(s):")
        for name, side in (("minidl ", minidl), ("pytorch", pytorch)):
            if side is not None:
                lo, hi = side["range"]
                log(f"  {name} test accuracy median {pct(side['median'])} "
                    f"(range {pct(lo)} .. {pct(hi)}), median step {side['step_ms_median']:.3f} ms")
        if diff is not None:
            log(f"  difference (minidl - pytorch): {diff:+.2f} pp")
    print(json.dumps({"recipe": recipe, "seeds": seeds, "threads": args.threads,
                      "torch_version": torch.__version__, "cpu_model": cpu_model(),
                      "minidl": minidl, "pytorch": pytorch,
                      "median_difference_pp": diff}), flush=True)


if __name__ == "__main__":
    main()
