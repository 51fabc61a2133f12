"""Shared helpers of the georeader tests: comparisons against rasterio, window sets.

The reference is always `RasterioReader` (GDAL). Pixels must be equal (floats:
NaN equals NaN), except for YCbCr JPEG, where async-tiff's Rust JPEG decoder and
GDAL's libjpeg 9 differ by a few DN (the chroma upsampling differs); there the
tolerance below applies.

YCbCr JPEG tolerance, and what was measured (full image, tile-aligned,
unaligned, edge and negative-offset windows at every level):

| file (levels)                           | max abs diff      | mean abs diff | 99.9th pct |
|-----------------------------------------|-------------------|---------------|------------|
| hro_rgb_ycbcr_jpeg_cog (0, 1)           | 58, 69            | <= 1.00       | <= 26      |
| hirise_mars_ycbcr_jpeg_cog (0-2)        | 13, 14, 11        | <= 0.15       | <= 4       |
| rasterio_cogeo_ycbcr_jpeg_mask (0-6)    | 13, 18, 11, 14, 11, 5, 5 | <= 0.55 | <= 7      |
| generated spec `jpeg_ycbcr` (0, 1)      | 7, 9              | <= 0.49       |            |

The maxima are isolated pixels on sharp colour edges (chroma upsampling). Tolerance:
max abs diff <= 72 and mean abs diff < 2 (64 would fail on one pixel
neighbourhood of hro level 1, 69). Every other layout, including non-YCbCr JPEG
(imagecodecs' libjpeg-turbo), must be exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from rasterio.windows import Window

YCBCR_MAX_ABS = 72
YCBCR_MEAN_ABS = 2.0

FULL_READ_BUDGET = 64 * 2**20
"""Bytes above which a level is not read whole (the 20480 x 20480 RGBA sparse file would
need 1.6 GB per read); such levels are read through a large window instead."""

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine (pytest-asyncio is not used in this project)."""
    return asyncio.run(coro)


@dataclass
class Diff:
    max_abs: float
    mean_abs: float
    p999_abs: float
    differing: int

    def __str__(self) -> str:
        return (
            f"max={self.max_abs:g} mean={self.mean_abs:.3f} p99.9={self.p999_abs:g} "
            f"n={self.differing}"
        )


def diff(a: np.ndarray, b: np.ndarray) -> Diff:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if d.size == 0:
        return Diff(0, 0, 0, 0)
    return Diff(float(d.max()), float(d.mean()), float(np.percentile(d, 99.9)), int((d > 0).sum()))


def same_pixels(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=bool(np.issubdtype(a.dtype, np.floating))))


def assert_matches(ours: np.ndarray, ref: np.ndarray, *, exact: bool, label: str) -> Diff | None:
    """Exact equality, or (exact=False: YCbCr JPEG) the stated tolerance; returns the diff."""
    assert ours.shape == ref.shape, f"{label}: shape {ours.shape} != rasterio {ref.shape}"
    assert ours.dtype == ref.dtype, f"{label}: dtype {ours.dtype} != rasterio {ref.dtype}"
    if same_pixels(ours, ref):
        return None
    d = diff(ours, ref)
    if exact:
        raise AssertionError(f"{label}: pixels differ from rasterio ({d})")
    assert d.max_abs <= YCBCR_MAX_ABS, f"{label}: YCbCr JPEG max abs diff {d} > {YCBCR_MAX_ABS}"
    assert d.mean_abs < YCBCR_MEAN_ABS, f"{label}: YCbCr JPEG mean abs diff {d} >= {YCBCR_MEAN_ABS}"
    return d


def level_bytes(count: int, width: int, height: int, dtype: Any) -> int:
    return count * width * height * np.dtype(dtype).itemsize


def window_set(
    width: int, height: int, block: tuple[int, int], *, count: int = 1, dtype: Any = "uint8"
) -> dict[str, Window]:
    """The windows every level is read with.

    full       the whole level (or, above FULL_READ_BUDGET, a large window from the
               centre crossing tile boundaries: "big")
    aligned    exactly the second tile (the first when there is one tile column)
    unaligned  starts mid-tile, crosses tile boundaries and the invalid areas the
               generated files put at x ~ 0.7 and in the lower-left corner
    edge       reaches past the right and bottom edges (boundless padding)
    negative   negative offsets (padding above and left)
    """
    bh, bw = block
    windows: dict[str, Window] = {}
    if level_bytes(count, width, height, dtype) <= FULL_READ_BUDGET:
        windows["full"] = Window(0, 0, width, height)
    else:
        side = 2048
        windows["big"] = Window(
            max(0, width // 2 - side // 2 - 37),
            max(0, height // 2 - side // 2 - 19),
            min(side, width),
            min(side, height),
        )
    col = bw if width > bw else 0
    windows["aligned"] = Window(col, 0, min(bw, width - col), min(bh, height))
    windows["unaligned"] = Window(
        width // 7,
        height // 5,
        max(1, min(width * 3 // 4, 1500)),
        max(1, min(height * 2 // 3, 1500)),
    )
    ew, eh = min(max(1, width // 4), 700), min(max(1, height // 4), 700)
    windows["edge"] = Window(width - ew, height - eh, ew + 13, eh + 9)
    windows["negative"] = Window(
        -5, -7, max(1, min(width // 3, 700)) + 5, max(1, min(height // 3, 700)) + 7
    )
    return windows
