"""Chunk sizes that follow a COG's tile grid.

Chunk edges fall on whole multiples of the tile size in the image's own pixel
grid (a window that starts mid-tile gets a partial first chunk), so no tile is
decoded by two tasks. `chunks` accepts what `dask.array` accepts: "auto", an
int (y and x), a tuple (band, y, x) or a dict keyed by 0/1/2 or band/y/x; -1 or
None means the whole axis.

A byte size ("64MiB", dask's spelling, parsed by `dask.utils.parse_bytes`) for
the whole array or one axis means "auto" aiming at that many bytes per chunk, as
in `dask.array`.

"auto" is dask's own choice (`dask.array.core.normalize_chunks` with the tile as
`previous_chunks`, aiming at `DEFAULT_CHUNK_BYTES` per chunk, all bands
together); on top of it, chunks are rounded to tile multiples, aligned to the
image's tile grid, and grown until the task count is below `MAX_AUTO_CHUNKS`; any chunking
above `WARN_CHUNKS` warns: Dask expands every chunk into tasks at compute time
(~70-100 µs each here), and schedulers stall with more than ~500k tasks.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from dask.array.core import normalize_chunks

from georeader.errors import WindowError

DEFAULT_CHUNK_BYTES = 32 * 2**20
MAX_AUTO_CHUNKS = 100_000
WARN_CHUNKS = 500_000
_AXES = {"band": 0, "y": 1, "x": 2}


def whole_number(value: Any) -> int | None:
    """`value` as a chunk length (a whole number above 0; 1024.0 is 1024), else None (2.5,
    True, -1, a string)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value) if int(value) > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


def checked_size(value: Any, axis: str, *, byte_size: bool = True) -> Any:
    """`value` if it is a chunk size of one axis, else a WindowError naming it.

    A size is a whole number above 0 (an integral float such as 1024.0 is that number),
    "auto", None or -1 (the whole axis). Byte sizes ("64MiB") are turned into "auto"
    before this (`_byte_sizes`). Why refuse the rest here: rounding 2.5
    to 2, or reading True as 1, would turn what the caller gave into another chunking
    silently."""
    if value == "auto" or value is None:
        return value
    if (size := whole_number(value)) is not None:
        return size
    if isinstance(value, numbers.Integral) and int(value) == -1:
        return -1
    byte_hint = " or a byte size such as '64MiB'" if byte_size else ""
    raise WindowError(
        f"chunks[{axis!r}] must be a whole number above 0, -1 or None (the whole axis), "
        f"'auto'{byte_hint}; got {value!r}"
    )


def _round_to_tiles(size: int | None, tile: int, full: int) -> int | None:
    """Distance between chunk edges (a tile multiple), or None for one chunk over the axis.

    None, -1 or a size covering the whole window (`full` pixels) give one chunk:
    a step of `full` would put edges at multiples of the window length in the
    image's grid, which splits a window that does not start at 0 at an
    arbitrary, tile-misaligned row.
    """
    if size is None or size == -1:
        return None
    if size <= 0:
        raise WindowError(f"chunk size must be positive or -1, got {size}")
    if size >= full:
        return None
    return max(tile, int(round(size / tile)) * tile)


def _axis_chunks(start: int, stop: int, step: int | None) -> tuple[int, ...]:
    """Chunk lengths covering [start, stop) with edges at multiples of `step` (absolute grid)."""
    if stop <= start:
        return (0,)
    if step is None:
        return (stop - start,)
    edges = [start]
    edge = (start // step + 1) * step
    while edge < stop:
        edges.append(edge)
        edge += step
    edges.append(stop)
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:], strict=True))


def _for_dask(size: Any) -> Any:
    """A size in dask's terms: "auto" stays, None or -1 is the whole axis (-1)."""
    return -1 if size is None else size


def _byte_sizes(chunks: Any) -> tuple[Any, int | None]:
    """(chunks with every byte size turned into "auto", the byte target or None)."""
    from dask.utils import parse_bytes

    def size(value: Any) -> int | None:
        if not isinstance(value, str) or value == "auto":
            return None
        try:
            return int(parse_bytes(value))
        except ValueError:
            raise WindowError(
                f"chunks {value!r} is neither 'auto' nor a byte size such as '64MiB'"
            ) from None

    if isinstance(chunks, str):
        target = size(chunks)
        return ("auto" if target is not None else chunks), target
    if isinstance(chunks, dict | tuple | list):
        items = chunks.items() if isinstance(chunks, dict) else enumerate(chunks)
        targets = {k: size(v) for k, v in items}
        found = [t for t in targets.values() if t is not None]
        if not found:
            return chunks, None
        if len(set(found)) > 1:
            raise WindowError(f"chunks {chunks!r} gives different byte sizes; give one")
        if isinstance(chunks, dict):
            return {k: ("auto" if targets[k] else v) for k, v in chunks.items()}, found[0]
        return type(chunks)("auto" if targets[i] else v for i, v in enumerate(chunks)), found[0]
    return chunks, None


def _checked(band: Any, y: Any, x: Any) -> tuple[Any, Any, Any]:
    return checked_size(band, "band"), checked_size(y, "y"), checked_size(x, "x")


def _normalise(chunks: Any) -> tuple[Any, Any, Any]:
    if isinstance(chunks, dict):
        values: list[Any] = [None, "auto", "auto"]
        for key, value in chunks.items():
            axis = _AXES.get(key, key)
            if axis not in (0, 1, 2):
                raise WindowError(f"unknown chunk axis {key!r}; use band/y/x or 0/1/2")
            values[axis] = value
        return _checked(values[0], values[1], values[2])
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        return (None, int(chunks), int(chunks))
    if isinstance(chunks, tuple | list):
        if len(chunks) == 2:
            return _checked(None, chunks[0], chunks[1])
        if len(chunks) == 3:
            return _checked(*chunks)
    if chunks == "auto" or chunks is None:
        return (None, "auto", "auto")
    raise WindowError(
        f"chunks must be 'auto', an int, a (band, y, x) tuple or a dict; got {chunks!r}"
    )


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
    chunks, byte_target = _byte_sizes(chunks)
    if byte_target is not None:
        if byte_target <= 0:
            raise WindowError(f"a chunk byte size must be positive, got {byte_target}")
        target_bytes = byte_target
    band_c, y_c, x_c = _normalise(chunks)
    band_size = count if band_c in (None, -1, "auto") else int(band_c)
    if band_size <= 0:
        raise WindowError(f"band chunk size must be positive or -1, got {band_c!r}")
    if y_c == "auto" or x_c == "auto":
        _, auto_ys, auto_xs = normalize_chunks(
            (band_size, _for_dask(y_c), _for_dask(x_c)),
            shape=(count, max(height, 1), max(width, 1)),
            limit=target_bytes,
            dtype=np.dtype(f"V{itemsize}"),
            previous_chunks=(band_size, tile_h, tile_w),
        )
        grow_y, grow_x = y_c == "auto", x_c == "auto"
        y_c = max(tile_h, auto_ys[0]) if grow_y else y_c
        x_c = max(tile_w, auto_xs[0]) if grow_x else x_c

        def blocks(size: Any, extent: int) -> int:
            return 1 if size in (None, -1) or size <= 0 else math.ceil(extent / size)

        # grow only the "auto" axes (a size the caller gave is kept), and only while they split
        while (
            blocks(y_c, height) * blocks(x_c, width) * math.ceil(count / band_size)
            > MAX_AUTO_CHUNKS
        ):
            grow_y, grow_x = grow_y and y_c < height, grow_x and x_c < width
            if not (grow_y or grow_x):
                break
            y_c, x_c = (y_c * 2 if grow_y else y_c), (x_c * 2 if grow_x else x_c)
    y_step = _round_to_tiles(y_c, tile_h, height)
    x_step = _round_to_tiles(x_c, tile_w, width)
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
