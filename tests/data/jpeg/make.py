"""Writes the JPEG fixtures of tests/jpeg.rs with Pillow and, beside each image, the
levels Pillow's own decoder (libjpeg-turbo) gives it: float32 little-endian in
(C, H, W) order. JPEG decoding is not exact (the standard bounds the inverse DCT's
error; chroma upsampling and the colour conversion are each decoder's choice), so the
test holds minidl's decoder to these levels within a few levels, not exactly.

The images are 13 × 11 pixels (a multiple of no block or MCU size): a smooth
gradient with a disc and mild noise, in grey and in RGB at three chroma
subsamplings, baseline and progressive; and a CMYK image, which minidl refuses.

Run from this folder: python3 make.py (Pillow 13.0.0 with libjpeg-turbo 6.2 and NumPy
2.4.6 wrote the files here).
"""
import numpy as np
from PIL import Image

rng = np.random.default_rng(25)
h, w = 11, 13
y, x = np.mgrid[0:h, 0:w]
disc = ((y - 5.0) ** 2 + (x - 7.0) ** 2 < 12.0) * 90.0


def plane(a, b, c):
    """A gradient a + b·x + c·y with the disc and noise, as 8-bit levels."""
    v = a + b * x + c * y + disc + rng.normal(0.0, 6.0, (h, w))
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def save(name, image, **options):
    """The image as NAME.jpg and the levels Pillow decodes from it as NAME.f32."""
    image.save(f"{name}.jpg", **options)
    levels = np.asarray(Image.open(f"{name}.jpg"), dtype=np.float64)
    if levels.ndim == 2:
        levels = levels[:, :, None]
    chw = np.ascontiguousarray(np.transpose(levels, (2, 0, 1)), dtype="<f4")
    chw.tofile(f"{name}.f32")


grey = Image.fromarray(plane(20.0, 9.0, 4.0))
rgb = Image.fromarray(np.stack([plane(30.0, 8.0, 2.0), plane(200.0, -6.0, 3.0), plane(60.0, 2.0, 9.0)], axis=2))
save("grey", grey, quality=90)
save("rgb444", rgb, quality=90, subsampling=0)
save("rgb422", rgb, quality=90, subsampling=1)
save("rgb420", rgb, quality=75, subsampling=2)
save("rgb420_progressive", rgb, quality=75, subsampling=2, progressive=True)
rgb.convert("CMYK").save("cmyk.jpg", quality=90)
