"""Checks that minidl's checkpoints and PyTorch's state_dicts are interchangeable.

1. disc_gpu trains the seed network and saves it (--save); PyTorch loads it into
   the same nn.Sequential with load_state_dict(strict=True) and computes outputs on
   random points; minidl (examples/checkpoint_predict) computes outputs on the same
   points from the same file. Both outputs and predicted classes are compared.
2. The reverse: PyTorch saves a freshly initialised network with
   safetensors.torch.save_file(model.state_dict()), and minidl loads it.

Run from the repository root after `cargo build --release --examples`:
    python3 bench/pytorch_checkpoint.py [--backend cpu|gpu] [--loss mse|ce]
Needs torch and safetensors (pip install torch safetensors). Prints one JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

BIN = os.path.join("target", "release", "examples")


def seed_network(final_tanh):
    layers = [
        torch.nn.Linear(2, 25), torch.nn.ReLU(),
        torch.nn.Linear(25, 25), torch.nn.ReLU(),
        torch.nn.Linear(25, 25), torch.nn.ReLU(),
        torch.nn.Linear(25, 2),
    ]
    if final_tanh:
        layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def minidl_outputs(checkpoint, points_file, out_file, backend, logits):
    cmd = [os.path.join(BIN, "checkpoint_predict"), checkpoint, points_file, out_file,
           "--backend", backend]
    if logits:
        cmd.append("--logits")
    subprocess.run(cmd, check=True)
    return load_file(out_file)["outputs"]


def compare(ours, theirs):
    return {
        "max_abs_output_diff": float((ours - theirs).abs().max()),
        "same_class": int((ours.argmax(1) == theirs.argmax(1)).sum()),
        "points": int(ours.shape[0]),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--loss", default="mse", choices=["mse", "ce"])
    parser.add_argument("--epochs", default="300")
    args = parser.parse_args()
    logits = args.loss == "ce"
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trained = os.path.join(tmp, "trained.safetensors")
        run = subprocess.run(
            [os.path.join(BIN, "disc_gpu"), "--backend", args.backend, "--loss", args.loss,
             "--epochs", args.epochs, "--save", trained, "--json"],
            check=True, capture_output=True, text=True)
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        points = torch.rand(5000, 2)
        points_file = os.path.join(tmp, "points.safetensors")
        save_file({"inputs": points}, points_file)

        model = seed_network(final_tanh=not logits)
        state = load_file(trained)
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            theirs = model(points)
        ours = minidl_outputs(trained, points_file, os.path.join(tmp, "a.safetensors"),
                              args.backend, logits)
        forward = compare(ours, theirs)

        fresh = seed_network(final_tanh=not logits)
        from_torch = os.path.join(tmp, "from_torch.safetensors")
        save_file(fresh.state_dict(), from_torch)
        with torch.no_grad():
            theirs = fresh(points)
        ours = minidl_outputs(from_torch, points_file, os.path.join(tmp, "b.safetensors"),
                              args.backend, logits)
        reverse = compare(ours, theirs)

    print(json.dumps({
        "torch": torch.__version__,
        "backend": args.backend,
        "adapter": summary["adapter"],
        "loss": args.loss,
        "disc_gpu_test_errors": summary["test_errors"],
        "keys": {k: list(v.shape) for k, v in state.items()},
        "minidl_to_pytorch": forward,
        "pytorch_to_minidl": reverse,
    }))
    ok = all(r["same_class"] == r["points"] for r in (forward, reverse))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
