"""PNG files from NumPy arrays, with the standard library alone (zlib): what the live widgets
show and what the website shows readers without JavaScript."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG file of ``image``: uint8 grey levels (H, W) or RGB (H, W, 3)."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    colour_type = 0 if image.ndim == 2 else 2  # grey or RGB, 8 bits per sample
    rows = image.reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter 0 per row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def grey_levels(probabilities: np.ndarray, scale: int = 1) -> np.ndarray:
    """Pixel probabilities in [0, 1] as dark-on-light uint8 grey levels, each pixel repeated
    ``scale`` times in both directions (no blur when a browser enlarges it)."""
    grey = np.round(255 * (1 - np.clip(probabilities, 0, 1))).astype(np.uint8)
    return grey.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else grey
