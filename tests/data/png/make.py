"""Writes the PNG fixtures of tests/image_folder.rs with Pillow, an encoder independent of
the `png` crate that minidl decodes with, and beside each image the levels a reader
should give: float32 little-endian in (C, H, W) order, 8-bit levels as they are, 16-bit
ones divided by 257, 1-bit ones as 0 or 255, a palette image as its RGB(A) colours.

Run from this folder: python3 make.py (Pillow 13.0.0 and NumPy wrote the files here).
"""
import numpy as np
from PIL import Image

rng = np.random.default_rng(25)


def save(name, image, levels):
    """The image as NAME.png and its expected levels (H, W, C) as NAME.f32 in (C, H, W)."""
    image.save(f"{name}.png")
    chw = np.ascontiguousarray(np.transpose(levels, (2, 0, 1)), dtype="<f4")
    chw.tofile(f"{name}.f32")


h, w = 5, 7  # odd sizes, not a multiple of any row packing
grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
save("grey8", Image.fromarray(grey), grey[:, :, None].astype(np.float64))

grey16 = rng.integers(0, 65536, (h, w), dtype=np.uint16)
save("grey16", Image.frombytes("I;16", (w, h), grey16.astype("<u2").tobytes()), grey16[:, :, None] / 257.0)

bits = rng.integers(0, 2, (h, w), dtype=np.uint8).astype(bool)
save("grey1", Image.fromarray(bits), bits[:, :, None] * 255.0)

rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
save("rgb8", Image.fromarray(rgb), rgb.astype(np.float64))

rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
save("rgba8", Image.fromarray(rgba), rgba.astype(np.float64))

grey_alpha = rng.integers(0, 256, (h, w, 2), dtype=np.uint8)
save("greyalpha8", Image.fromarray(grey_alpha), grey_alpha.astype(np.float64))

# A palette image with transparency: Pillow writes a PLTE and a tRNS chunk.
colours = rng.integers(0, 256, (4, 3), dtype=np.uint8)
alphas = np.array([255, 0, 128, 255], dtype=np.uint8)
index = rng.integers(0, 4, (h, w), dtype=np.uint8)
palette = Image.frombytes("P", (w, h), index.tobytes())
palette.putpalette(colours.flatten().tolist())
palette.info["transparency"] = bytes(alphas)
levels = np.concatenate([colours[index], alphas[index][:, :, None]], axis=2)
save("palette_alpha", palette, levels.astype(np.float64))
