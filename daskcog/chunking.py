"""Chunk sizes that follow a COG's tile grid.

Chunk edges fall on whole multiples of the tile size in the image's own pixel
grid (a window that starts mid-tile gets a partial first chunk), so no tile is
decoded by two tasks. `chunks` accepts what `dask.array` accepts: "auto", an
int (y and x), a tuple (band, y, x) or a dict keyed by 0/1/2 or band/y/x; -1 or
None means the whole axis.

"auto" aims at `DEFAULT_CHUNK_BYTES` per chunk (all bands together) and then
grows chunks until the task count is below `MAX_AUTO_CHUNKS`; any chunking
above `WARN_CHUNKS` warns: Dask expands every chunk into tasks at compute time
(~70-100 µs each here), and schedulers stall with more than ~500k tasks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from georeader.errors import WindowError

DEFAULT_CHUNK_BYTES = 32 * 2**20
MAX_AUTO_CHUNKS = 100_000
WARN_CHUNKS = 500_000
_AXES = {"band": 0, "y": 1, "x": 2}


def _round_to_tiles(size: int, tile: int, full: int) -> int:
    if size is None or size == -1 or size >= full:
        return max(full, 1)
    if size <= 0:
        raise WindowError(f"chunk size must be positive or -1, got {size}")
    return max(tile, int(round(size / tile)) * tile)


def _axis_chunks(start: int, stop: int, step: int) -> tuple[int, ...]:
    """Chunk lengths covering [start, stop) with edges at multiples of `step` (absolute grid)."""
    if stop <= start:
        return (0,)
    edges = [start]
    edge = (start // step + 1) * step
    while edge < stop:
        edges.append(edge)
        edge += step
    edges.append(stop)
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:], strict=True))


def _normalise(chunks: Any) -> tuple[Any, Any, Any]:
    if isinstance(chunks, dict):
        values: list[Any] = [None, "auto", "auto"]
        for key, value in chunks.items():
            axis = _AXES.get(key, key)
            if axis not in (0, 1, 2):
                raise WindowError(f"unknown chunk axis {key!r}; use band/y/x or 0/1/2")
            values[axis] = value
        return (values[0], values[1], values[2])
    if isinstance(chunks, int):
        return (None, chunks, chunks)
    if isinstance(chunks, tuple | list):
        if len(chunks) == 2:
            return (None, chunks[0], chunks[1])
        if len(chunks) == 3:
            return tuple(chunks)  # type: ignore[return-value]
    if chunks == "auto" or chunks is None:
        return (None, "auto", "auto")
    raise WindowError(f"chunks must be 'auto', an int, a (band, y, x) tuple or a dict; got {chunks!r}")


def tile_chunks(
    chunks: Any,
    *,
    window: tuple[int, int, int, int],
    count: int,
    tile: tuple[int, int],
    itemsize: int,
    target_bytes: int = DEFAULT_CHUNK_BYTES,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Dask chunks (band, y, x) for the pixel window (col_off, row_off, width, height)."""
    col_off, row_off, width, height = window
    tile_h, tile_w = tile
    band_c, y_c, x_c = _normalise(chunks)
    band_size = count if band_c in (None, -1, "auto") else int(band_c)
    if y_c == "auto" or x_c == "auto":
        side = math.sqrt(target_bytes / max(1, band_size * itemsize))
        auto_y = max(tile_h, int(side // tile_h) * tile_h)
        auto_x = max(tile_w, int(side // tile_w) * tile_w)
        y_c = auto_y if y_c == "auto" else y_c
        x_c = auto_x if x_c == "auto" else x_c
        while math.ceil(height / y_c) * math.ceil(width / x_c) * math.ceil(count / band_size) > MAX_AUTO_CHUNKS:
            y_c, x_c = y_c * 2, x_c * 2
    y_step = _round_to_tiles(y_c, tile_h, height if row_off % tile_h == 0 else height + tile_h)
    x_step = _round_to_tiles(x_c, tile_w, width if col_off % tile_w == 0 else width + tile_w)
    bands = tuple(min(band_size, count - i) for i in range(0, count, max(1, band_size)))
    ys = _axis_chunks(row_off, row_off + height, y_step)
    xs = _axis_chunks(col_off, col_off + width, x_step)
    n = len(bands) * len(ys) * len(xs)
    if n > WARN_CHUNKS:
        warnings.warn(
            f"{n:,} chunks: Dask's scheduler slows down past ~500k tasks; use larger chunks",
            stacklevel=3,
        )
    return bands, ys, xs
