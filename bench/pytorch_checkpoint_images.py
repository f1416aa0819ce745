#!/usr/bin/env python3
"""Checks that minidl's and PyTorch's checkpoints of convolutional networks are interchangeable.

Four networks, all on 1x28x28 MNIST digits (datasets/mnist/mnist10k.bin.gz):

  lenet     Conv2d(1,6,5,padding=2), ReLU, MaxPool2d(2), Conv2d(6,16,5), ReLU,
            MaxPool2d(2), Flatten, Linear(400,120), ReLU, Linear(120,84), ReLU,
            Linear(84,10); minidl's layers
            conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),
            flatten,linear(120),relu,linear(84),relu,linear(10)
  denoiser  Conv2d(1,32,3,stride=2,padding=1), ReLU,
            Conv2d(32,32,3,stride=2,padding=1), ReLU, Upsample(2, nearest),
            Conv2d(32,32,3,padding=1), ReLU, Upsample(2, nearest),
            Conv2d(32,1,3,padding=1), Sigmoid; minidl's layers
            conv(32,3,stride=2,padding=1),relu,conv(32,3,stride=2,padding=1),
            relu,upsample(2),conv(32,3,padding=1),relu,upsample(2),
            conv(1,3,padding=1),sigmoid
  general   Conv2d(1,4,(3,5),stride=(1,2),padding=(1,2),dilation=(2,1),
            bias=False), ReLU, MaxPool2d((3,2),stride=(2,1),padding=1),
            Conv2d(4,8,(2,3),bias=False), Tanh, Flatten, Linear(8*12*13,10):
            sides that differ everywhere and convolutions without a bias;
            minidl's layers GENERAL_LAYERS below, trained as lenet is
  averaged  Conv2d(1,6,5,padding=2), Tanh, AvgPool2d(2), Conv2d(6,16,5), Tanh,
            AvgPool2d(3,stride=2,padding=1), Flatten, Linear(400,10): average
            pooling (padded positions counted, PyTorch's default) with and
            without padding; minidl's layers AVERAGED_LAYERS below, trained as
            lenet is

For each network:
  (a) minidl -> PyTorch.  minidl trains it for one epoch and saves it:
        train --data FILE --image 1,28,28 --model LAYERS --optimizer momentum
              --lr 0.05 --momentum 0.9 --batch-size 64 --epochs 1
              --split 0.8,0,0.2 --scale-by 255 --backend B --seed S
              --split-out SPLIT --save CKPT --json
        denoise --data FILE --epochs 1 --seed S --backend B
              --split-out SPLIT --save CKPT --json
      PyTorch builds the nn.Sequential above and loads CKPT with
      load_state_dict(safetensors.torch.load_file(CKPT), strict=True), after
      dropping (and reporting) the file's tensors that are not in the model's
      state_dict, e.g. "scaler.mean" / "scaler.scale" or "training.*".
      16 digits drawn (numpy default_rng(seed)) from minidl's test rows, as
      pixel / 255 in [0, 1], go to a safetensors file as one F32 tensor
      "inputs" of shape [16, 784]; minidl computes its outputs with
        checkpoint_predict CKPT INPUTS OUTPUTS --image 1,28,28 --model LAYERS
                           --backend B
      (the tensor "outputs", [16, out]) and PyTorch with
      model(inputs.view(16, 1, 28, 28)).flatten(1).  Both sides get the same
      raw [0, 1] tensor: the saved minidl network already expects it.
  (b) PyTorch -> minidl.  PyTorch builds a freshly initialised network
      (torch.manual_seed(seed)), saves it with
      safetensors.torch.save_file(model.state_dict(), FILE), and
      checkpoint_predict runs it on the same 16 inputs.
The figure of each check is the maximum absolute difference of the outputs
(for the classifiers also how many of the 16 argmax classes agree).

Run from the repository root after
`cargo build --release --example train --example denoise --example checkpoint_predict`:
    python3 bench/pytorch_checkpoint_images.py [--backend cpu|gpu]
Without the minidl binaries, --skip-minidl checks only the PyTorch half: a
numpy split, and a save_file / load_file round trip of each fresh network.
Needs torch, numpy and safetensors.  Progress goes to stderr; the LAST line on
stdout is one JSON object whose "max_abs_diff" holds the eight differences
(null with --skip-minidl).  The exit status is 1 when a difference is above
--tolerance (default 1e-4) or not finite.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn
from safetensors.torch import load_file, save_file

from mnist_common import (AVERAGED_LAYERS, DEFAULT_DATA, DENOISER_LAYERS, LENET_LAYERS, SIDE,
                          averaged, check_binary, denoiser, fail, lenet, load_mnist, log,
                          read_split)

DEFAULT_BIN = os.path.join("target", "release", "examples")
POINTS = 16
GENERAL_LAYERS = ("conv(4,(3,5),stride=(1,2),padding=(1,2),dilation=(2,1),bias=false),relu,"
                  "maxpool((3,2),stride=(2,1),padding=1),conv(8,(2,3),bias=false),tanh,"
                  "flatten,linear(10)")


def general():
    """GENERAL_LAYERS in PyTorch: 28x28 -> 4x26x14 -> pool 4x13x15 -> 8x12x13."""
    return nn.Sequential(
        nn.Conv2d(1, 4, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1), bias=False),
        nn.ReLU(), nn.MaxPool2d((3, 2), stride=(2, 1), padding=1),
        nn.Conv2d(4, 8, (2, 3), bias=False), nn.Tanh(), nn.Flatten(),
        nn.Linear(8 * 12 * 13, 10))
def read_test_rows(path, n):
    """The test indices of the split minidl wrote with --split-out."""
    idx = read_split(path, n)["test"]
    if idx.size < POINTS:
        fail(f"minidl's split {path} has fewer than {POINTS} test rows")
    return idx


def pick_inputs(pixels, test_rows, seed):
    """[16, 784] float32 tensor: 16 of the test digits, pixel / 255."""
    rows = np.random.default_rng(seed).choice(test_rows, size=POINTS, replace=False)
    x = pixels[rows].reshape(POINTS, SIDE * SIDE).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(x).contiguous(), rows.tolist()


def run(cmd, args, what):
    """Runs a minidl command (stderr goes straight through); its stdout."""
    env = dict(os.environ, MINIDL_THREADS=str(args.threads))
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    except OSError as e:
        fail(f"cannot run {cmd[0]}: {e}")
    if proc.returncode != 0:
        fail(f"{what} exited with code {proc.returncode}: {' '.join(cmd)}")
    return proc.stdout


def last_json(stdout, what):
    lines = [l for l in stdout.splitlines() if l.strip()]
    try:
        result = json.loads(lines[-1])
        if not isinstance(result, dict):
            raise ValueError
        return result
    except (IndexError, ValueError):
        fail(f"{what}'s last stdout line is not a JSON object: "
             f"{lines[-1] if lines else '(no output)'!r}")


def train_command(args, name, layers, ckpt, split_out):
    if name != "denoiser":
        return [os.path.join(args.bin_dir, "train"), "--data", args.data,
                "--image", f"1,{SIDE},{SIDE}", "--model", layers,
                "--optimizer", "momentum", "--lr", "0.05", "--momentum", "0.9",
                "--batch-size", "64", "--epochs", "1", "--split", "0.8,0,0.2",
                "--scale-by", "255", "--backend", args.backend, "--seed", str(args.seed),
                "--split-out", split_out, "--save", ckpt, "--json"]
    return [os.path.join(args.bin_dir, "denoise"), "--data", args.data, "--epochs", "1",
            "--seed", str(args.seed), "--backend", args.backend,
            "--split-out", split_out, "--save", ckpt, "--json"]


def load_into(model, path, what):
    """Loads a safetensors file into model strictly; the file's keys the model lacks."""
    try:
        state = load_file(path)
    except Exception as e:  # safetensors raises its own error types
        fail(f"cannot read {what} {path}: {e}")
    wanted = model.state_dict()
    extra = sorted(k for k in state if k not in wanted)
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        fail(f"{what} lacks the model's tensors {missing} (it holds {sorted(state)})")
    wrong = [f"{k}: file {list(state[k].shape)}, model {list(v.shape)}"
             for k, v in wanted.items() if state[k].shape != v.shape]
    if wrong:
        fail(f"{what} has tensors of the wrong shape: {'; '.join(wrong)}")
    try:
        model.load_state_dict({k: state[k] for k in wanted}, strict=True)
    except RuntimeError as e:
        fail(f"load_state_dict(strict=True) refused {what}: {e}")
    return {k: list(v.shape) for k, v in state.items() if k in wanted}, extra


def torch_outputs(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(inputs.view(POINTS, 1, SIDE, SIDE)).flatten(1)


def minidl_outputs(args, ckpt, inputs_file, out_file, layers, expected):
    cmd = [os.path.join(args.bin_dir, "checkpoint_predict"), ckpt, inputs_file, out_file,
           "--image", f"1,{SIDE},{SIDE}", "--model", layers, "--backend", args.backend]
    run(cmd, args, "checkpoint_predict")
    try:
        out = load_file(out_file)["outputs"]
    except Exception as e:
        fail(f"cannot read the tensor \"outputs\" of checkpoint_predict's {out_file}: {e}")
    if out.numel() != expected.numel():
        fail(f"checkpoint_predict wrote outputs of shape {list(out.shape)}, "
             f"expected {list(expected.shape)}")
    return out.float().reshape(expected.shape)


def compare(ours, theirs, classes):
    diff = (ours - theirs).abs().max().item()
    res = {"max_abs_diff": diff if math.isfinite(diff) else None, "points": POINTS,
           "out_features": int(theirs.shape[1])}
    if classes:
        res["same_class"] = int((ours.argmax(1) == theirs.argmax(1)).sum())
    return res


def check_network(name, build, layers, pixels, args, tmp):
    """Both directions for one network (only PyTorch's round trip with --skip-minidl)."""
    classes = name != "denoiser"
    report = {"layers": layers}
    if args.skip_minidl:
        perm = np.random.default_rng(args.seed).permutation(len(pixels))
        test_rows = perm[int(0.8 * len(pixels)):]
    else:
        ckpt = os.path.join(tmp, f"{name}_minidl.safetensors")
        split_out = os.path.join(tmp, f"{name}_split.json")
        what = "train" if classes else "denoise"
        summary = last_json(run(train_command(args, name, layers, ckpt, split_out), args, what), what)
        report["minidl_summary"] = {k: summary[k] for k in
                                    ("test_accuracy", "psnr_db", "noisy_psnr_db", "backend")
                                    if k in summary}
        test_rows = read_test_rows(split_out, len(pixels))
    inputs, rows = pick_inputs(pixels, test_rows, args.seed)
    report["input_rows"] = rows
    inputs_file = os.path.join(tmp, f"{name}_inputs.safetensors")
    save_file({"inputs": inputs}, inputs_file)

    if not args.skip_minidl:
        model = build()
        keys, extra = load_into(model, ckpt, f"minidl's {name} checkpoint")
        if extra:
            log(f"{name}: minidl's checkpoint also holds {extra} (dropped before loading)")
        theirs = torch_outputs(model, inputs)
        ours = minidl_outputs(args, ckpt, inputs_file,
                              os.path.join(tmp, f"{name}_out_a.safetensors"), layers, theirs)
        report["minidl_to_pytorch"] = {**compare(ours, theirs, classes), "keys": keys,
                                       "dropped_keys": extra}

    torch.manual_seed(args.seed)
    fresh = build()
    from_torch = os.path.join(tmp, f"{name}_torch.safetensors")
    save_file(fresh.state_dict(), from_torch)
    theirs = torch_outputs(fresh, inputs)
    if args.skip_minidl:
        torch.manual_seed(args.seed + 1)
        other = build()  # different weights until the file is loaded
        keys, extra = load_into(other, from_torch, f"PyTorch's own {name} file")
        report["pytorch_roundtrip"] = {**compare(torch_outputs(other, inputs), theirs, classes),
                                       "keys": keys, "dropped_keys": extra}
    else:
        ours = minidl_outputs(args, from_torch, inputs_file,
                              os.path.join(tmp, f"{name}_out_b.safetensors"), layers, theirs)
        report["pytorch_to_minidl"] = compare(ours, theirs, classes)
    return report


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin-dir", default=DEFAULT_BIN,
                   help=f"folder of minidl's train, denoise and checkpoint_predict "
                        f"(default {DEFAULT_BIN})")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"minidl's MNIST file (default {DEFAULT_DATA})")
    p.add_argument("--backend", choices=("cpu", "gpu"), default="cpu",
                   help="minidl's backend for training and checkpoint_predict (default cpu)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of minidl's training, the inputs and PyTorch's init (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="MINIDL_THREADS for minidl and torch.set_num_threads (default 1)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest accepted absolute output difference (default 1e-4)")
    p.add_argument("--skip-minidl", action="store_true",
                   help="check only PyTorch's half (save_file / load_file round trip)")
    args = p.parse_args()
    if args.seed < 0 or args.threads < 1 or not args.tolerance >= 0:
        p.error("--seed and --tolerance must be non-negative and --threads at least 1")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_minidl:
        for example in ("train", "denoise", "checkpoint_predict"):
            check_binary(os.path.join(args.bin_dir, example), example,
                         "pass --bin-dir DIR, or check only the PyTorch half with --skip-minidl")
    pixels, _ = load_mnist(args.data)
    networks = (("lenet", lenet, LENET_LAYERS), ("denoiser", denoiser, DENOISER_LAYERS),
                ("general", general, GENERAL_LAYERS), ("averaged", averaged, AVERAGED_LAYERS))
    reports = {}
    with tempfile.TemporaryDirectory(prefix="pytorch_checkpoint_images_") as tmp:
        for name, build, layers in networks:
            reports[name] = check_network(name, build, layers, pixels, args, tmp)
            for direction in ("minidl_to_pytorch", "pytorch_to_minidl", "pytorch_roundtrip"):
                if direction in reports[name]:
                    r = reports[name][direction]
                    cls = (f", same class {r['same_class']}/{POINTS}"
                           if "same_class" in r else "")
                    log(f"{name} {direction}: max |difference| {r['max_abs_diff']}{cls}")

    diffs, failed = None, False
    directions = (("pytorch_roundtrip",) if args.skip_minidl
                  else ("minidl_to_pytorch", "pytorch_to_minidl"))
    checked = [reports[name][d]["max_abs_diff"] for name, _, _ in networks for d in directions]
    failed = any(d is None or d > args.tolerance for d in checked)
    if not args.skip_minidl:
        diffs = {f"{name}_{d}": reports[name][d]["max_abs_diff"]
                 for name, _, _ in networks for d in directions}
    print(json.dumps({"torch_version": torch.__version__, "backend": args.backend,
                      "seed": args.seed, "threads": args.threads, "tolerance": args.tolerance,
                      "skip_minidl": args.skip_minidl, "max_abs_diff": diffs,
                      "ok": not failed, **reports}), flush=True)
    if failed:
        log(f"a maximum difference is above --tolerance {args.tolerance} or not finite")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
