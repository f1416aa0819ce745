"""Writes the IDX fixtures of tests/idx.rs with an implementation other than minidl's:
idx2numpy 1.2.3 (its `convert_to_file`) writes each array as an IDX file, and NumPy
writes the same values as a .npy file of shape [items, values per item], which
minidl's NPY reader reads. The test holds minidl's IDX reader to the NPY files.

Run from the repository root (numpy and idx2numpy installed):
    python3 tests/data/idx/make.py
The arrays are drawn from a seeded generator, so a rerun writes the same files.
"""

import gzip
from pathlib import Path

import idx2numpy
import numpy as np

HERE = Path(__file__).parent


def write(name, array, compress=False):
    path = HERE / f"{name}.idx"
    idx2numpy.convert_to_file(str(path), array)
    if compress:
        data = path.read_bytes()
        path.unlink()
        (HERE / f"{name}.idx.gz").write_bytes(gzip.compress(data, mtime=0))
    np.save(HERE / f"{name}.npy", array.reshape(array.shape[0], -1))


def main():
    rng = np.random.default_rng(25)
    write("images_u8", rng.integers(0, 256, (4, 3, 5), dtype=np.uint8), compress=True)
    write("labels_u8", np.array([3, 0, 9, 1], dtype=np.uint8))
    write("values_i8", rng.integers(-128, 128, (3, 4), dtype=np.int8))
    write("values_i16", rng.integers(-32768, 32768, (2, 3, 2), dtype=np.int16))
    write("values_i32", rng.integers(-(2**31), 2**31, (5,), dtype=np.int32), compress=True)
    write("values_f32", rng.standard_normal((3, 2)).astype(np.float32) * 1000)
    write("values_f64", rng.standard_normal((2, 2, 2)) * 1e-3)


if __name__ == "__main__":
    main()
