"""What the MNIST comparison scripts share: reading minidl's MNIST file (or LeCun's
IDX files, with the labels file beside the images file) and the split minidl writes
with --split-out, LeNet-5 and the denoiser in PyTorch (beside
minidl's model lists for them), and the scripts' messages.  Used by
pytorch_lenet.py, pytorch_denoise.py, pytorch_checkpoint_images.py and
pytorch_reference.py, which import it from their own folder (running
`python3 bench/SCRIPT.py` puts that folder on the import path).
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn

DEFAULT_DATA = os.path.join("datasets", "mnist", "mnist10k.bin.gz")
MAGIC = b"MNISTu8\x01"
SIDE = 28
CLASSES = 10
LENET_LAYERS = ("conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),"
                "flatten,linear(120),relu,linear(84),relu,linear(10)")
DENOISER_LAYERS = ("conv(32,3,stride=2,padding=1),relu,conv(32,3,stride=2,padding=1),relu,"
                   "upsample(2),conv(32,3,padding=1),relu,upsample(2),conv(1,3,padding=1),"
                   "sigmoid")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fail(msg):
    """Ends the running script with exit code 1 and one line naming it."""
    log(f"{os.path.basename(sys.argv[0])}: error: {msg}")
    sys.exit(1)


def read_maybe_gzipped(path):
    """The bytes of `path`, gunzipped when they are gzip's."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        fail(f"cannot read {path}: {e}")
    return raw


def read_idx_u8(path):
    """The uint8 array of an IDX file (type 0x08), shaped by its header."""
    raw = read_maybe_gzipped(path)
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        fail(f"{path}: not an IDX file of unsigned bytes")
    rank = raw[3]
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        fail(f"{path}: {body.size} values do not fill {dims}")
    return body.reshape(dims)


def idx_labels_path(path):
    """The labels file beside an IDX images file: the last 'images' becomes 'labels',
    'idx3' becomes 'idx1'; compressed or not, whichever exists."""
    folder, name = os.path.split(path)
    at = name.lower().rfind("images")
    name = name[:at] + ("LABELS" if name[at:at + 6].isupper() else "labels") + name[at + 6:]
    at = name.lower().rfind("idx3")
    name = name[:at + 3] + "1" + name[at + 4:]
    plain = os.path.join(folder, name[:-3] if name.endswith(".gz") else name)
    for candidate in (os.path.join(folder, name), plain, plain + ".gz"):
        if os.path.isfile(candidate):
            return candidate
    fail(f"{path}: no labels file beside it ({os.path.join(folder, name)})")


def load_mnist(path):
    """Pixels (uint8, n x 28 x 28) and labels (int64) of minidl's MNIST file, or of an
    IDX images file (LeCun's train-images-idx3-ubyte[.gz]) with its labels file."""
    if "idx3" in os.path.basename(path).lower():
        pixels = read_idx_u8(path)
        labels = read_idx_u8(idx_labels_path(path)).astype(np.int64).reshape(-1)
        if pixels.ndim != 3 or pixels.shape[1:] != (SIDE, SIDE) or len(labels) != len(pixels):
            fail(f"{path}: expected 28x28 images, one label each, got {pixels.shape}")
        if labels.max() >= CLASSES:
            fail(f"{path}: a label is above {CLASSES - 1}")
        return pixels, labels
    raw = read_maybe_gzipped(path)
    if len(raw) < 20 or raw[:8] != MAGIC:
        fail(f"{path}: not an MNISTu8 version 1 file (bad magic)")
    n, rows, cols = struct.unpack("<III", raw[8:20])
    if n == 0 or (rows, cols) != (SIDE, SIDE):
        fail(f"{path}: expected 28x28 digits and a positive count, got {n} of {rows}x{cols}")
    if len(raw) != 20 + n + n * rows * cols:
        fail(f"{path}: {len(raw)} bytes do not match {n} digits of {rows}x{cols}")
    labels = np.frombuffer(raw, dtype=np.uint8, count=n, offset=20).astype(np.int64)
    if labels.max() >= CLASSES:
        fail(f"{path}: a label is above {CLASSES - 1}")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=20 + n).reshape(n, rows, cols)
    return pixels, labels


def own_split(n, seed):
    """0.8 train / 0.2 test from numpy's default_rng(seed).permutation (no validation)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(0.8 * n)
    return {"train": perm[:n_train], "validation": perm[:0], "test": perm[n_train:]}


def read_split(path, n, test_n=None):
    """The split minidl wrote with --split-out, checked against the data's n rows (the
    test part against a test file's test_n rows when minidl had --test-data)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read minidl's split file {path}: {e}")
    split, seen = {}, set()
    for part in ("train", "validation", "test"):
        if not isinstance(raw, dict) or part not in raw:
            fail(f"minidl's split file {path} has no {part!r} list")
        idx = np.asarray(raw[part], dtype=np.int64).reshape(-1)
        rows_of = test_n if part == "test" and test_n is not None else n
        if idx.size and (idx.min() < 0 or idx.max() >= rows_of):
            fail(f"minidl's {part} indices are outside 0..{rows_of - 1}")
        if part == "test" and test_n is not None:
            seen = set()
        rows = set(idx.tolist())
        if len(rows) != idx.size or seen.intersection(rows):
            fail(f"minidl's {part} indices repeat a row")
        seen.update(rows)
        split[part] = idx
    if not split["train"].size or not split["test"].size:
        fail("minidl's split has an empty train or test part")
    return split


def lenet():
    """LeNet-5 as minidl's LENET_LAYERS, PyTorch's default init."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, CLASSES))


AVERAGED_LAYERS = ("conv(6,5,padding=2),tanh,avgpool(2),conv(16,5),tanh,"
                   "avgpool(3,stride=2,padding=1),flatten,linear(10)")


def averaged():
    """AVERAGED_LAYERS in PyTorch (average pooling, padded and not):
    28x28 -> 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(3, stride=2, padding=1),
        nn.Flatten(), nn.Linear(16 * 5 * 5, CLASSES))


def denoiser():
    """The 2022 project's denoiser as minidl's DENOISER_LAYERS, PyTorch's default init."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())


def images(pixels, idx):
    """float32 (len(idx), 1, 28, 28) tensor of pixel / 255."""
    x = pixels[idx].astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(x).unsqueeze(1)


def check_binary(path, example, instead):
    """Fails unless minidl's `example` binary is at `path`; `instead` says what else the
    user can do."""
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        fail(f"minidl's {example} example is not at {path}: build it with "
             f"`cargo build --release --example {example}`, {instead}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or None
