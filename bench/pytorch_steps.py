#!/usr/bin/env python3
"""Checks that minidl's training steps follow PyTorch's: the same Adam steps from the
same weights on the same batches end at the same weights.

For each network (--network: denoiser, lenet, averaged (average pooling), both (the
first two) or all; layers as in mnist_common.py)
and seed S, the script

  1. builds the PyTorch network after torch.manual_seed(S) (its default init) and
     saves its state_dict with safetensors as the starting point;
  2. draws --steps batches of --batch-size digits from datasets/mnist/mnist10k.bin.gz
     (numpy default_rng(S): a permutation of the digits, pixel / 255):
       denoiser  input c + sigma * N(0,1), target c + sigma * N(0,1), two independent
                 draws (sigma --sigma, default 0.2, not clipped), as the Noise2Noise
                 recipe's steps
       lenet     input c, target the label's one-hot row (an MSE regression, so
       averaged  that both networks train under the same loss)
     and saves them as one safetensors file ("inputs" [n, 784], "targets" [n, out]);
  3. runs minidl's checkpoint_predict on them:
       checkpoint_predict START BATCHES OUT --model LAYERS --image 1,28,28
                          --adam LR --batch-size B --backend BACKEND
     which trains one pass over the batches in order (MSE mean, Adam) and writes the
     trained parameters and its outputs on all the inputs;
  4. trains the same batches in order with PyTorch twice from START: in float32 (as
     minidl) and in float64 (the reference of both), nn.MSELoss() and
     torch.optim.Adam(lr) with its other defaults, zero_grad / forward / backward /
     step for each batch.

It reports, for minidl against PyTorch float32, minidl against float64 and float32
against float64, the largest absolute difference of any trained parameter relative
to that tensor's largest magnitude, and the largest absolute difference of the
outputs.  Rounding makes two float32 trainings drift apart as the steps go on; the
float32-against-float64 figure is the size of that drift.  Over many steps the drift
grows unevenly (a rounding that moves a ReLU across zero, or an Adam step on a gradient
near zero, changes everything after it), so that either float32 side may end far
from float64 by chance: the check is meant for the first steps (--steps, default 10),
where an error in a step shows and the drift does not yet.  The exit status is 1 when
minidl's distance to float64 is more than --factor (default 10) times PyTorch
float32's, or not finite.

Run from the repository root after `cargo build --release --example checkpoint_predict`:
    python3 bench/pytorch_steps.py [--backend cpu|gpu] [--steps 10] [--seeds 3]
Needs torch, numpy and safetensors.  Progress goes to stderr; the LAST line on stdout
is one JSON object with each network's figures.
"""
import argparse
import json
import math
import os
import subprocess
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mnist_common import (AVERAGED_LAYERS, CLASSES, DEFAULT_DATA, DENOISER_LAYERS,
                          LENET_LAYERS, SIDE, averaged, check_binary, cpu_model, denoiser,
                          fail, lenet, load_mnist, log)

DEFAULT_BIN = os.path.join("target", "release", "examples", "checkpoint_predict")
NETWORKS = {"denoiser": (denoiser, DENOISER_LAYERS), "lenet": (lenet, LENET_LAYERS),
            "averaged": (averaged, AVERAGED_LAYERS)}


def batches(name, pixels, labels, seed, args):
    """The inputs [n, 784] and targets [n, out] of the steps, float32."""
    n = args.steps * args.batch_size
    if n > len(pixels):
        fail(f"{args.steps} batches of {args.batch_size} need {n} digits; the data has "
             f"{len(pixels)}")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(pixels))[:n]
    clean = pixels[idx].reshape(n, SIDE * SIDE).astype(np.float32) / np.float32(255.0)
    if name == "denoiser":
        sigma = np.float32(args.sigma)
        inputs = clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
        targets = clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    else:
        inputs = clean
        targets = np.eye(CLASSES, dtype=np.float32)[labels[idx]]
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def train_pytorch(model, inputs, targets, args):
    """One pass of MSE and Adam over the batches in order; the trained model."""
    dtype = next(model.parameters()).dtype
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    images = inputs.to(dtype).view(-1, 1, SIDE, SIDE)
    targets = targets.to(dtype)
    model.train()
    for i in range(0, len(images), args.batch_size):
        opt.zero_grad()
        out = model(images[i:i + args.batch_size]).flatten(1)
        loss_fn(out, targets[i:i + args.batch_size]).backward()
        opt.step()
    return model


def outputs(model, inputs):
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        x = inputs.to(dtype).view(-1, 1, SIDE, SIDE)
        return torch.cat([model(x[i:i + 1000]).flatten(1) for i in range(0, len(x), 1000)])


def distance(a, b, names):
    """Largest |a - b| of any tensor over its largest |b| (b the reference), in float64."""
    worst = 0.0
    for k in names:
        x, y = a[k].double(), b[k].double()
        scale = y.abs().max().item() or 1.0
        worst = max(worst, (x - y).abs().max().item() / scale)
    return worst


def check(name, pixels, labels, seed, args, tmp):
    build, layers = NETWORKS[name]
    torch.manual_seed(seed)
    start = build()
    start_path = os.path.join(tmp, f"{name}_start.safetensors")
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, start_path)
    inputs, targets = batches(name, pixels, labels, seed, args)
    batch_path = os.path.join(tmp, f"{name}_batches.safetensors")
    save_file({"inputs": inputs.contiguous(), "targets": targets.contiguous()}, batch_path)
    out_path = os.path.join(tmp, f"{name}_minidl.safetensors")
    cmd = [args.minidl, start_path, batch_path, out_path, "--model", layers, "--image",
           f"1,{SIDE},{SIDE}", "--adam", repr(args.lr), "--batch-size", str(args.batch_size),
           "--backend", args.backend]
    env = dict(os.environ, MINIDL_THREADS=str(args.threads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    minidl = load_file(out_path)
    names = list(start.state_dict().keys())
    missing = [k for k in names + ["outputs"] if k not in minidl]
    if missing:
        fail(f"minidl's output file lacks {missing}")

    f32 = build()
    f32.load_state_dict(start.state_dict())
    f64 = build().double()
    f64.load_state_dict({k: v.double() for k, v in start.state_dict().items()})
    train_pytorch(f32, inputs, targets, args)
    train_pytorch(f64, inputs, targets, args)
    p32 = dict(f32.state_dict(), outputs=outputs(f32, inputs))
    p64 = dict(f64.state_dict(), outputs=outputs(f64, inputs))
    out_diff = lambda a, b: (a["outputs"].double() - b["outputs"].double()).abs().max().item()
    result = {
        "steps": args.steps,
        "params_rel_diff": {"minidl_vs_f32": distance(minidl, p32, names),
                            "minidl_vs_f64": distance(minidl, p64, names),
                            "f32_vs_f64": distance(p32, p64, names)},
        "outputs_abs_diff": {"minidl_vs_f32": out_diff(minidl, p32),
                             "minidl_vs_f64": out_diff(minidl, p64),
                             "f32_vs_f64": out_diff(p32, p64)},
        "moved": distance(p64, {k: v.double() for k, v in start.state_dict().items()}, names),
    }
    p, o = result["params_rel_diff"], result["outputs_abs_diff"]
    log(f"{name} seed {seed}: {args.steps} steps moved the weights by up to "
        f"{result['moved']:.3g} of their scale; parameters (relative) minidl-f32 "
        f"{p['minidl_vs_f32']:.2e}, minidl-f64 {p['minidl_vs_f64']:.2e}, "
        f"f32-f64 {p['f32_vs_f64']:.2e}; outputs minidl-f32 {o['minidl_vs_f32']:.2e}, "
        f"minidl-f64 {o['minidl_vs_f64']:.2e}, f32-f64 {o['f32_vs_f64']:.2e}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minidl", default=DEFAULT_BIN, help="checkpoint_predict binary")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--network", choices=["denoiser", "lenet", "averaged", "both", "all"],
                    default="both",
                    help="both: denoiser and lenet; all: the three")
    ap.add_argument("--backend", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sigma", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0 .. SEEDS-1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--factor", type=float, default=10.0)
    args = ap.parse_args()
    if args.steps < 1 or args.batch_size < 1 or args.seeds < 1 or args.threads < 1:
        fail("--steps, --batch-size, --seeds and --threads must be at least 1")
    if not (args.lr > 0 and args.sigma >= 0 and args.factor > 0):
        fail("--lr and --factor must be positive, --sigma at least 0")
    check_binary(args.minidl, "checkpoint_predict", "or pass --minidl PATH")
    torch.set_num_threads(args.threads)
    pixels, labels = load_mnist(args.data)
    names = {"both": ["denoiser", "lenet"], "all": list(NETWORKS)}.get(args.network,
                                                                      [args.network])
    report, bad = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            report[name] = []
            for seed in range(args.seeds):
                r = check(name, pixels, labels, seed, args, tmp)
                report[name].append(r)
                p = r["params_rel_diff"]
                limit = args.factor * p["f32_vs_f64"]
                if not math.isfinite(p["minidl_vs_f64"]) or p["minidl_vs_f64"] > limit:
                    bad.append(f"{name} seed {seed}: minidl is {p['minidl_vs_f64']:.2e} from "
                               f"float64, more than {args.factor} x float32's "
                               f"{p['f32_vs_f64']:.2e}")
    print(json.dumps({"backend": args.backend, "threads": args.threads, "lr": args.lr,
                      "batch_size": args.batch_size, "torch_version": torch.__version__,
                      "cpu_model": cpu_model(), "networks": report}))
    if bad:
        fail("; ".join(bad))


if __name__ == "__main__":
    main()
