#!/usr/bin/env python3
"""minidl's `train` example against PyTorch on the UCI handwritten digits.

The data is datasets/digits/digits.csv.gz (1797 rows of 64 pixel values 0..16
and the class 0..9 in the last column).  For each seed 0 .. --seeds - 1 the
script

  1. runs minidl's `train` example (--minidl, default
     target/release/examples/train) with the recipe's flags and
     `--seed S --split-out FILE --json`, reads its last stdout line (a JSON
     object with test_accuracy, backend, adapter, ...) and the train /
     validation / test row indices it wrote to FILE;
  2. trains the same recipe with PyTorch (CPU, --threads intra-op threads) on
     the same rows and measures its test accuracy.

The recipe both sides follow:
  standardization  per column mean and population std (ddof 0) of the train
                   rows, in float64; a column whose std is 0 is scaled by 1;
                   applied to all three parts, then float32
  network          Linear(64, h1), act, ..., Linear(h_last, 10), PyTorch's
                   default Linear init, no activation after the last layer
                   (--hidden 64 or e.g. 128,64; --activation relu|tanh|sigmoid)
  loss             nn.CrossEntropyLoss() (mean over the batch)
  optimizer        sgd: SGD(lr); momentum: SGD(lr, momentum); adam: Adam(lr)
                   with its defaults; lr 0.001 for adam, 0.01 otherwise, unless
                   --lr; momentum 0.9 unless --momentum
  schedule         per epoch: constant, cosine (CosineAnnealingLR(T_max=epochs,
                   eta_min=0)) or step (StepLR(step_size=max(1, epochs // 3),
                   gamma=0.1))
  training         torch.manual_seed(seed) before the model is built; every
                   epoch a fresh permutation of the train rows (torch.randperm
                   with a generator seeded with the seed), consecutive batches
                   of --batch-size (the last may be smaller); each step
                   zero_grad, forward, loss, backward, step
  accuracy         the fraction of rows whose argmax output is the label

Run from the repository root after `cargo build --release --example train`:
    python3 bench/pytorch_digits.py --minidl target/release/examples/train --backend cpu
Without a minidl binary, `--skip-minidl` splits the rows itself (numpy's
default_rng(seed).permutation; the first fractions of --split are train and
validation, the rest test) and runs only PyTorch:
    python3 bench/pytorch_digits.py --skip-minidl --seeds 2 --epochs 5
Needs torch and numpy.  One line per seed and, without --json, a readable
summary (the median test accuracy of each side and their difference) go to
stderr; the LAST line on stdout is always one JSON object: recipe, seeds,
minidl {test_accuracy, median, backend, adapter} (null with --skip-minidl),
pytorch {test_accuracy, median, torch_version} and median_difference_pp
(minidl median - PyTorch median, in percentage points).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

DEFAULT_MINIDL = os.path.join("target", "release", "examples", "train")
DEFAULT_DATA = os.path.join("datasets", "digits", "digits.csv.gz")
CLASSES = 10
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fail(msg):
    log(f"pytorch_digits.py: error: {msg}")
    sys.exit(1)


def load_data(path):
    """Features (float64, n x 64) and labels (int64) from the gzipped CSV."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    if table.shape[1] < 2:
        fail(f"{path}: expected feature columns and a label column, got {table.shape[1]} column(s)")
    x, labels = table[:, :-1], table[:, -1]
    y = labels.astype(np.int64)
    if not np.array_equal(y, labels) or y.min() < 0 or y.max() >= CLASSES:
        fail(f"{path}: the last column must hold integer classes 0..{CLASSES - 1}")
    return x, y


def own_split(n, fractions, seed):
    """Train / validation / test indices from numpy's default_rng(seed).permutation."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(fractions[0] * n)
    n_val = int(fractions[1] * n)
    return {"train": perm[:n_train], "validation": perm[n_train:n_train + n_val],
            "test": perm[n_train + n_val:]}


def read_split(path, n):
    """The split minidl wrote with --split-out, checked against the data's n rows."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read minidl's split file {path}: {e}")
    split, seen = {}, set()
    for part in ("train", "validation", "test"):
        if part not in raw:
            fail(f"minidl's split file has no {part!r} list")
        idx = np.asarray(raw[part], dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            fail(f"minidl's {part} indices are outside 0..{n - 1}")
        if seen.intersection(idx.tolist()) or len(set(idx.tolist())) != idx.size:
            fail(f"minidl's {part} indices repeat a row")
        seen.update(idx.tolist())
        split[part] = idx
    if not split["train"].size or not split["test"].size:
        fail("minidl's split has an empty train or test part")
    return split


def standardize(x, split):
    """float32 train / validation / test features, scaled with the train rows' statistics."""
    train = x[split["train"]]
    mean = train.mean(axis=0)
    std = train.std(axis=0)  # population std (ddof = 0), float64
    scale = np.where(std > 0, std, 1.0)
    return {part: torch.from_numpy(((x[idx] - mean) / scale).astype(np.float32))
            for part, idx in split.items()}


def build_model(n_in, hidden, activation):
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


def make_optimizer(params, args):
    if args.optimizer == "adam":
        return torch.optim.Adam(params, lr=args.lr)
    if args.optimizer == "momentum":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    return torch.optim.SGD(params, lr=args.lr)


def make_schedule(opt, args):
    if args.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs, eta_min=0.0)
    if args.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, args.epochs // 3), gamma=0.1)
    return None


def accuracy(model, x, y):
    if not len(y):
        return float("nan")
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).double().mean().item()


def train_pytorch(x, y, split, seed, args):
    """Train the recipe on the split's train rows; accuracies of the three parts."""
    feats = standardize(x, split)
    labels = {part: torch.from_numpy(y[idx]) for part, idx in split.items()}
    torch.manual_seed(seed)
    model = build_model(x.shape[1], args.hidden, args.activation)
    opt = make_optimizer(model.parameters(), args)
    sched = make_schedule(opt, args)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    xt, yt = feats["train"], labels["train"]
    n = len(yt)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, args.batch_size):
            batch = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
        if sched is not None:
            sched.step()
    model.eval()
    return {f"{part}_accuracy": accuracy(model, feats[part], labels[part])
            for part in ("train", "validation", "test")}


def minidl_command(args, seed, split_out):
    cmd = [args.minidl, "--data", args.data, "--label", "last",
           "--hidden", ",".join(str(h) for h in args.hidden),
           "--activation", args.activation, "--loss", "ce",
           "--optimizer", args.optimizer, "--lr", repr(args.lr)]
    if args.optimizer == "momentum":
        cmd += ["--momentum", repr(args.momentum)]
    cmd += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
            "--lr-schedule", args.lr_schedule, "--split", args.split,
            "--seed", str(seed), "--backend", args.backend,
            "--split-out", split_out, "--json"]
    return cmd


def run_minidl(args, seed, split_out):
    """minidl's JSON result for one seed (its stderr goes straight through)."""
    cmd = minidl_command(args, seed, split_out)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    except OSError as e:
        fail(f"cannot run minidl ({args.minidl}): {e}; build it with "
             "`cargo build --release --example train` or pass --minidl PATH "
             "(or --skip-minidl to run PyTorch alone)")
    if proc.returncode != 0:
        fail(f"minidl exited with code {proc.returncode} for seed {seed}: {' '.join(cmd)}")
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    try:
        result = json.loads(lines[-1])
        float(result["test_accuracy"])
    except (IndexError, ValueError, KeyError, TypeError):
        fail(f"minidl's last stdout line for seed {seed} is not a JSON object with "
             f"test_accuracy: {lines[-1] if lines else '(no output)'!r}")
    return result


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minidl", default=DEFAULT_MINIDL,
                   help=f"minidl's train example (default {DEFAULT_MINIDL})")
    p.add_argument("--data", default=DEFAULT_DATA, help=f"gzipped CSV (default {DEFAULT_DATA})")
    p.add_argument("--seeds", type=int, default=5, help="run seeds 0 .. N-1 (default 5)")
    p.add_argument("--hidden", default="64",
                   help="hidden widths, comma-separated, e.g. 128,64 (default 64)")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                   help="hidden activation (default relu)")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="sgd",
                   help="optimizer (default sgd)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.001 for adam, 0.01 otherwise)")
    p.add_argument("--momentum", type=float, default=0.9,
                   help="momentum of --optimizer momentum (default 0.9)")
    p.add_argument("--batch-size", type=int, default=32, help="rows per mini-batch (default 32)")
    p.add_argument("--epochs", type=int, default=60, help="passes over the train rows (default 60)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine", "step"), default="constant",
                   help="learning-rate schedule per epoch (default constant)")
    p.add_argument("--split", default="0.6,0.2,0.2",
                   help="train,validation,test fractions (default 0.6,0.2,0.2)")
    p.add_argument("--backend", choices=("cpu", "gpu", "auto"), default="cpu",
                   help="minidl's backend (default cpu); PyTorch always runs on the CPU")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch's intra-op threads (torch.set_num_threads, default 1)")
    p.add_argument("--skip-minidl", action="store_true",
                   help="split the rows here and run only PyTorch")
    p.add_argument("--json", action="store_true",
                   help="no readable summary; only the per-seed lines on stderr and the JSON line")
    args = p.parse_args()
    try:
        args.hidden = [int(h) for h in args.hidden.split(",")]
    except ValueError:
        args.hidden = []
    if not args.hidden or min(args.hidden) < 1:
        p.error("--hidden must be a comma-separated list of positive integers")
    try:
        args.split_fractions = [float(f) for f in args.split.split(",")]
    except ValueError:
        args.split_fractions = []
    if (len(args.split_fractions) != 3 or min(args.split_fractions) < 0
            or abs(sum(args.split_fractions) - 1.0) > 1e-6
            or args.split_fractions[0] <= 0 or args.split_fractions[2] <= 0):
        p.error("--split must be three non-negative fractions summing to 1 "
                "(train and test above 0), e.g. 0.6,0.2,0.2")
    if args.lr is None:
        args.lr = 0.001 if args.optimizer == "adam" else 0.01
    if args.lr <= 0 or args.momentum < 0:
        p.error("--lr must be positive and --momentum non-negative")
    if args.seeds < 1 or args.batch_size < 1 or args.epochs < 1 or args.threads < 1:
        p.error("--seeds, --batch-size, --epochs and --threads must be at least 1")
    return args


def pct(a):
    return f"{100.0 * a:6.2f} %"


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    x, y = load_data(args.data)
    seeds = list(range(args.seeds))
    recipe = {"data": args.data, "hidden": args.hidden, "activation": args.activation,
              "loss": "ce", "optimizer": args.optimizer, "lr": args.lr,
              "momentum": args.momentum if args.optimizer == "momentum" else None,
              "batch_size": args.batch_size, "epochs": args.epochs,
              "lr_schedule": args.lr_schedule, "split": args.split_fractions,
              "backend": None if args.skip_minidl else args.backend,
              "torch_threads": args.threads, "split_source": "numpy" if args.skip_minidl else "minidl"}
    log(f"digits: {x.shape[0]} rows x {x.shape[1]} features; hidden {args.hidden} "
        f"{args.activation}, {args.optimizer} lr {args.lr:g}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.lr_schedule} schedule, seeds 0..{args.seeds - 1}")

    minidl_runs, torch_runs = [], []
    with tempfile.TemporaryDirectory(prefix="pytorch_digits_") as tmp:
        for seed in seeds:
            if args.skip_minidl:
                split = own_split(len(y), args.split_fractions, seed)
            else:
                split_out = os.path.join(tmp, f"split_{seed}.json")
                minidl_runs.append(run_minidl(args, seed, split_out))
                split = read_split(split_out, len(y))
            res = train_pytorch(x, y, split, seed, args)
            torch_runs.append(res)
            line = f"seed {seed}: "
            if minidl_runs:
                m = float(minidl_runs[-1]["test_accuracy"])
                line += (f"minidl {pct(m)}  pytorch {pct(res['test_accuracy'])}  "
                         f"difference {100.0 * (m - res['test_accuracy']):+6.2f} pp")
            else:
                line += f"pytorch {pct(res['test_accuracy'])}"
            line += (f"  (pytorch train {pct(res['train_accuracy'])}, "
                     f"validation {pct(res['validation_accuracy'])}; rows "
                     f"{len(split['train'])}/{len(split['validation'])}/{len(split['test'])})")
            log(line)

    pt_test = [r["test_accuracy"] for r in torch_runs]
    pytorch = {"test_accuracy": pt_test, "median": statistics.median(pt_test),
               "validation_accuracy": [r["validation_accuracy"] for r in torch_runs],
               "train_accuracy": [r["train_accuracy"] for r in torch_runs],
               "torch_version": torch.__version__}
    minidl, diff = None, None
    if minidl_runs:
        m_test = [float(r["test_accuracy"]) for r in minidl_runs]
        minidl = {"test_accuracy": m_test, "median": statistics.median(m_test),
                  "validation_accuracy": [r.get("validation_accuracy") for r in minidl_runs],
                  "train_accuracy": [r.get("train_accuracy") for r in minidl_runs],
                  "backend": minidl_runs[0].get("backend"),
                  "adapter": minidl_runs[0].get("adapter")}
        diff = (minidl["median"] - pytorch["median"]) * 100.0

    if not args.json:
        log(f"\nmedian test accuracy over {len(seeds)} seed(s):")
        if minidl is not None:
            log(f"  minidl  {pct(minidl['median'])}  ({minidl['backend']}, {minidl['adapter']})")
        log(f"  pytorch {pct(pytorch['median'])}  (PyTorch {torch.__version__}, CPU, "
            f"{args.threads} thread{'s' if args.threads != 1 else ''})")
        if diff is not None:
            log(f"  difference (minidl - pytorch): {diff:+.2f} pp")
    print(json.dumps({"recipe": recipe, "seeds": seeds, "minidl": minidl, "pytorch": pytorch,
                      "median_difference_pp": diff}), flush=True)


if __name__ == "__main__":
    main()
