#!/usr/bin/env python3
"""PyTorch (eager mode) reference numbers for minidl's benchmark.

Runs the same workloads as `cargo run --release --example bench -- --json`
and prints, as the LAST line on stdout, one JSON object with the same
top-level keys, so the two outputs can be compared side by side:

  seed_epoch_ms  the seed task: 1000 points in [0,1]^2, label 1 inside the disc
                 centred (0.5,0.5) of radius 1/sqrt(2*pi); one-hot targets;
                 MLP 2-25-25-25-2 (ReLU, ReLU, ReLU, Tanh); MSELoss(sum);
                 SGD lr 0.01; batches of 10 in order (100 steps per epoch).
                 The loss is accumulated on the device and read back once per
                 epoch (.item(), which also synchronises CUDA).  2 warm-up
                 epochs, then --epochs timed epochs; median ms per epoch.
  wide_step_ms   MLP 784-1024-1024-10 (ReLU, ReLU), batch 256, inputs uniform
                 in [0,1), fixed one-hot random targets, MSELoss(mean), SGD lr
                 0.01.  3 warm-up steps, then --steps steps timed one by one
                 (synchronised on CUDA); median ms per step.
  lenet_step_ms  LeNet-5 (Conv2d(1,6,5,padding=2), ReLU, MaxPool2d(2), Conv2d(6,16,5),
                 ReLU, MaxPool2d(2), Flatten, Linear(400,120), ReLU, Linear(120,84),
                 ReLU, Linear(84,10)) on 64 uniform random 1x28x28 images with
                 fixed labels, CrossEntropyLoss (mean), SGD lr 0.05 momentum 0.9;
  denoiser_step_ms  the Noise2Noise denoiser of examples/denoise (Conv2d(1,32,3,
                 stride 2, padding 1), ReLU, Conv2d(32,32,3,2,1), ReLU,
                 Upsample(x2 nearest), Conv2d(32,32,3,padding 1), ReLU,
                 Upsample(x2), Conv2d(32,1,3,padding 1), Sigmoid) on 64 random
                 images against 64 random targets, MSELoss (mean), Adam 1e-3.
                 Both: 3 warm-up steps, then --image-steps steps timed one by one,
                 each ending with the loss read back (.item()); median ms per step.
  matmul_gflops  CPU: square float32 torch.mm for n = 256, 1024, 2048; warm-up,
                 then the median over several repetitions; GFLOPS = 2 n^3 / s / 1e9.
                 CUDA: the linear layer's three products as minidl's bench names
                 them (forward x @ w.T, grad_input dy @ w, grad_weight dy.T @ x) for
                 square n = 256, 1024, 2048, 4096, each {"gflops", "kernel"}, with
                 TF32 off so that both sides compute in FP32.

Each step is zero_grad, forward, loss, backward, step, as in minidl.  Data
tensors are on the device before timing starts; batches are slices (views).
CPU always runs, once per intra-op thread count of --threads (a comma-separated
list, default 1); its figures are keyed by the thread count, as minidl's
bench keys its CPU figures ("cpu_threads" lists the counts).  CUDA runs too
when torch.cuda.is_available().  Progress goes to stderr; without --json a
readable summary also goes to stderr.  The JSON line is always printed last.
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
from torch import nn

from mnist_common import denoiser, lenet


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def seed_epoch_ms(dev, epochs):
    torch.manual_seed(0)
    x = torch.rand(1000, 2)
    inside = ((x - 0.5) ** 2).sum(1) < 1.0 / (2.0 * math.pi)  # r^2 = 1/(2 pi)
    y = nn.functional.one_hot(inside.long(), 2).float()
    x, y = x.to(dev), y.to(dev)
    model = nn.Sequential(
        nn.Linear(2, 25), nn.ReLU(), nn.Linear(25, 25), nn.ReLU(),
        nn.Linear(25, 25), nn.ReLU(), nn.Linear(25, 2), nn.Tanh(),
    ).to(dev)
    loss_fn = nn.MSELoss(reduction="sum")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times, loss = [], float("nan")
    sync(dev)
    for epoch in range(2 + epochs):
        t0 = time.perf_counter()
        epoch_loss = torch.zeros((), device=dev)
        for i in range(0, 1000, 10):
            opt.zero_grad()
            l = loss_fn(model(x[i:i + 10]), y[i:i + 10])
            l.backward()
            opt.step()
            epoch_loss += l.detach()
        loss = epoch_loss.item()  # one read-back per epoch (syncs CUDA)
        if epoch >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    log(f"  seed  {dev.type}: median {statistics.median(times):.3f} ms/epoch "
        f"(last epoch loss {loss:.4f})")
    return statistics.median(times)


def wide_step_ms(dev, steps):
    torch.manual_seed(0)
    x = torch.rand(256, 784, device=dev)
    y = nn.functional.one_hot(torch.randint(0, 10, (256,)), 10).float().to(dev)
    model = nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, 10),
    ).to(dev)
    loss_fn = nn.MSELoss(reduction="mean")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    sync(dev)
    for step in range(3 + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        sync(dev)
        if step >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    log(f"  wide  {dev.type}: median {statistics.median(times):.3f} ms/step")
    return statistics.median(times)


def image_step_ms(dev, is_denoiser, steps):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28, device=dev)
    if is_denoiser:
        model = denoiser().to(dev)
        y = torch.rand(64, 1, 28, 28, device=dev)
        loss_fn = nn.MSELoss()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        model = lenet().to(dev)
        y = (torch.arange(64, device=dev) * 7) % 10
        loss_fn = nn.CrossEntropyLoss()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    times = []
    for step in range(3 + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if step >= 3:
            times.append((time.perf_counter() - t0) * 1e3)
    name = "denoiser" if is_denoiser else "LeNet"
    log(f"  {name} {dev.type}: median {statistics.median(times):.3f} ms/step")
    return statistics.median(times)


def matmul_gflops(dev):
    out = {}
    for n, reps in ((256, 50), (1024, 10), (2048, 5)):
        torch.manual_seed(0)
        a = torch.rand(n, n, device=dev)
        b = torch.rand(n, n, device=dev)
        for _ in range(3):  # warm-up
            torch.mm(a, b)
        sync(dev)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            sync(dev)
            times.append(time.perf_counter() - t0)
        out[str(n)] = 2.0 * n ** 3 / statistics.median(times) / 1e9
        log(f"  mm    {dev.type}: n={n:5d} {out[str(n)]:10.1f} GFLOPS")
    return out


def product_gflops(dev):
    """The three products of a linear layer on square n x n operands (CUDA)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    products = {
        "forward": lambda a, b: torch.mm(a, b.t()),
        "grad_input": lambda a, b: torch.mm(a, b),
        "grad_weight": lambda a, b: torch.mm(a.t(), b),
    }
    out = {}
    for name, f in products.items():
        out[name] = {}
        for n, reps in ((256, 50), (1024, 20), (2048, 10), (4096, 5)):
            torch.manual_seed(0)
            a = torch.rand(n, n, device=dev)
            b = torch.rand(n, n, device=dev)
            for _ in range(3):
                f(a, b)
            sync(dev)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                f(a, b)
                sync(dev)
                times.append(time.perf_counter() - t0)
            g = 2.0 * n ** 3 / statistics.median(times) / 1e9
            out[name][str(n)] = {"gflops": g, "kernel": "cuBLAS (FP32, TF32 off)"}
            log(f"  {name:11s} {dev.type}: n={n:5d} {g:10.1f} GFLOPS")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true",
                   help="no readable summary; only progress on stderr and the JSON line on stdout")
    p.add_argument("--epochs", type=int, default=10, help="timed seed epochs (>= 5, default 10)")
    p.add_argument("--steps", type=int, default=30, help="timed wide steps (>= 20, default 30)")
    p.add_argument("--image-steps", type=int, default=20,
                   help="timed LeNet-5 and denoiser steps (default 20)")
    p.add_argument("--only-images", action="store_true",
                   help="only the LeNet-5 and denoiser steps")
    p.add_argument("--threads", default="1",
                   help="CPU intra-op thread counts, comma-separated (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="devices to run (default all available)")
    args = p.parse_args()
    if args.epochs < 5 or args.steps < 20:
        p.error("--epochs must be >= 5 and --steps >= 20")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but torch.cuda.is_available() is False")

    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        p.error("--threads must be a comma-separated list of positive integers")

    run_cpu = args.device in ("cpu", "all")
    run_cuda = args.device == "cuda" or (args.device == "all" and torch.cuda.is_available())
    names = []
    if run_cpu:
        names.append("CPU (" + ", ".join(f"{t} thread{'s' if t != 1 else ''}" for t in threads) + ")")
    if run_cuda:
        names.append(f"CUDA {torch.cuda.get_device_name(0)}")
    result = {"adapter": f"PyTorch {torch.__version__} " + " + ".join(names),
              "torch": torch.__version__, "cpu_threads": threads if run_cpu else [],
              "seed_epoch_ms": {}, "wide_step_ms": {}, "matmul_gflops": {},
              "lenet_step_ms": {}, "denoiser_step_ms": {}}
    if run_cpu:
        cpu = torch.device("cpu")
        for key in ("seed_epoch_ms", "wide_step_ms", "matmul_gflops", "lenet_step_ms",
                    "denoiser_step_ms"):
            result[key]["cpu"] = {}
        for t in threads:
            torch.set_num_threads(t)
            log(f"[cpu, {t} thread(s)]")
            if not args.only_images:
                result["seed_epoch_ms"]["cpu"][str(t)] = seed_epoch_ms(cpu, args.epochs)
                result["wide_step_ms"]["cpu"][str(t)] = wide_step_ms(cpu, args.steps)
                result["matmul_gflops"]["cpu"][str(t)] = matmul_gflops(cpu)
            result["lenet_step_ms"]["cpu"][str(t)] = image_step_ms(cpu, False, args.image_steps)
            result["denoiser_step_ms"]["cpu"][str(t)] = image_step_ms(cpu, True, args.image_steps)
    if run_cuda:
        cuda = torch.device("cuda")
        log("[cuda]")
        result["lenet_step_ms"]["cuda"] = image_step_ms(cuda, False, args.image_steps)
        result["denoiser_step_ms"]["cuda"] = image_step_ms(cuda, True, args.image_steps)
        result["seed_epoch_ms"]["cuda"] = seed_epoch_ms(cuda, args.epochs)
        result["wide_step_ms"]["cuda"] = wide_step_ms(cuda, args.steps)
        result["matmul_gflops"]["cuda"] = product_gflops(cuda)

    if not args.json:
        log(f"\n{result['adapter']}")
        for t in (threads if run_cpu else []):
            k = str(t)
            if not args.only_images:
                mm = ", ".join(f"n={n}: {g:.1f}" for n, g in result["matmul_gflops"]["cpu"][k].items())
                log(f"  cpu, {t} thread(s): seed {result['seed_epoch_ms']['cpu'][k]:.3f} ms/epoch | "
                    f"wide {result['wide_step_ms']['cpu'][k]:.3f} ms/step | matmul GFLOPS {mm}")
            log(f"  cpu, {t} thread(s): LeNet {result['lenet_step_ms']['cpu'][k]:.3f} ms/step | "
                f"denoiser {result['denoiser_step_ms']['cpu'][k]:.3f} ms/step")
        if run_cuda:
            fwd = result["matmul_gflops"]["cuda"]["forward"]
            mm = ", ".join(f"n={n}: {g['gflops']:.1f}" for n, g in fwd.items())
            log(f"  cuda seed {result['seed_epoch_ms']['cuda']:.3f} ms/epoch | "
                f"wide {result['wide_step_ms']['cuda']:.3f} ms/step | matmul GFLOPS {mm}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
