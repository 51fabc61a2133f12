"""Pixel-window arithmetic: windows <-> bounds, clipping, and the tile grid.

Rounding rules (stated once, used everywhere):

* `window_from_bounds(..., rounding="outer")` (the default) returns the smallest
  whole-pixel window that covers the bounds: offsets are floored and ends are
  ceiled, after snapping values within `1e-6` pixel of an integer to it, so a
  bounds box that was computed from a pixel grid round-trips exactly instead of
  growing by one pixel through floating-point noise.
* `rounding="nearest"` rounds offsets and ends to the nearest pixel edge (the
  choice for "the pixels whose centres fall inside"), halves upwards
  (`floor(x + 0.5)`), so a window's size does not depend on the parity of its
  offset (Python's `round` rounds halves to even: 0.5 -> 0 but 1.5 -> 2).

Windows are `rasterio.windows.Window` values with whole-number offsets and sizes
once they pass `to_int_window`; every function here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

from affine import Affine
from rasterio.windows import Window

from georeader.errors import WindowError

Bounds = tuple[float, float, float, float]
"""(left, bottom, right, top) in the CRS of the grid, like rasterio's BoundingBox."""

GeoSlice = tuple[slice, slice]
"""(rows, cols) pixel slices of a grid, the way numpy indexes it: `np.s_[r0:r1, c0:c1]`."""

Footprint = tuple[tuple[float, float], ...]
"""A closed ring of (x, y) corners (first == last), e.g. `shapely.Polygon(footprint)`."""

_SNAP = 1e-6


def _snap(value: float) -> float:
    nearest = round(value)
    return float(nearest) if abs(value - nearest) < _SNAP else value


def to_int_window(window: object) -> Window:
    """Return `window` as a Window of whole pixels, or raise WindowError.

    async-geotiff silently reads the whole image for anything that is not its own
    Window type; we refuse instead of guessing.
    """
    if not isinstance(window, Window):
        raise WindowError(
            f"expected a rasterio.windows.Window, got {type(window).__name__}: {window!r}"
        )
    values = (window.col_off, window.row_off, window.width, window.height)
    if any(not math.isfinite(v) or float(v) != int(v) for v in values):
        raise WindowError(
            f"window {window!r} has fractional offsets or sizes; round it first "
            "(georeader.geo.windows.round_window)"
        )
    col_off, row_off, width, height = (int(v) for v in values)
    if width <= 0 or height <= 0:
        raise WindowError(f"window {window!r} is empty")
    return Window(col_off, row_off, width, height)


def round_window(window: Window, rounding: Literal["outer", "nearest"] = "outer") -> Window:
    """Snap a fractional window to whole pixels with the module's rounding rules."""
    c0, r0 = _snap(window.col_off), _snap(window.row_off)
    c1, r1 = _snap(window.col_off + window.width), _snap(window.row_off + window.height)
    if rounding == "outer":
        c0, r0, c1, r1 = math.floor(c0), math.floor(r0), math.ceil(c1), math.ceil(r1)
    elif rounding == "nearest":
        c0, r0, c1, r1 = (math.floor(v + 0.5) for v in (c0, r0, c1, r1))
    else:
        raise WindowError(f"rounding must be 'outer' or 'nearest', not {rounding!r}")
    if c1 <= c0 or r1 <= r0:
        raise WindowError(f"window {window!r} rounds to an empty window")
    return Window(c0, r0, c1 - c0, r1 - r0)


def window_from_bounds(
    bounds: Bounds, transform: Affine, rounding: Literal["outer", "nearest"] = "outer"
) -> Window:
    """Whole-pixel window of a grid covering `bounds` (see module docstring for rounding).

    Works for north-up and south-up grids; rotated grids are refused because a
    rotated box has no exact window.
    """
    if transform.b != 0 or transform.d != 0:
        raise WindowError("rotated or sheared transforms have no rectangular window for bounds")
    left, bottom, right, top = bounds
    if right <= left or top <= bottom:
        raise WindowError(f"bounds {bounds!r} are empty or not (left, bottom, right, top)")
    inv = ~transform
    cols, rows = zip(*(inv @ xy for xy in ((left, top), (right, bottom))), strict=True)
    c0, c1 = min(cols), max(cols)
    r0, r1 = min(rows), max(rows)
    return round_window(Window(c0, r0, c1 - c0, r1 - r0), rounding)


def window_bounds(window: Window, transform: Affine) -> Bounds:
    """(left, bottom, right, top) of a window on a grid."""
    xs, ys = zip(
        *(
            transform @ (c, r)
            for c in (window.col_off, window.col_off + window.width)
            for r in (window.row_off, window.row_off + window.height)
        ),
        strict=True,
    )
    return (min(xs), min(ys), max(xs), max(ys))


def footprint(window: Window, transform: Affine) -> Footprint:
    """The outline of a window on a grid: its four corners in order, closed.

    Unlike `window_bounds`, it keeps rotated and sheared grids' true shape.
    """
    c0, r0 = window.col_off, window.row_off
    c1, r1 = c0 + window.width, r0 + window.height
    corners = [transform @ (c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0))]
    return tuple((float(x), float(y)) for x, y in corners)


def geoslice_window(slice_: GeoSlice | object, width: int, height: int) -> Window:
    """The window of `(rows, cols)` slices on a `width` x `height` grid.

    Open ends run to the grid's edge; other ends are taken as they are (they
    may lie outside: boundless reads fill there). Steps other than 1 are refused.
    A reversed slice (stop before start) is empty, as in numpy.
    """
    if not (
        isinstance(slice_, tuple) and len(slice_) == 2 and all(isinstance(s, slice) for s in slice_)
    ):
        raise WindowError(
            f"a geoslice is (rows, cols) slices, e.g. np.s_[0:256, 0:256]; got {slice_!r}"
        )
    rows, cols = slice_
    if (rows.step or 1) != 1 or (cols.step or 1) != 1:
        raise WindowError("read_geoslice takes step-1 slices; subsample with an overview")
    r0, r1 = rows.start or 0, height if rows.stop is None else rows.stop
    c0, c1 = cols.start or 0, width if cols.stop is None else cols.stop
    return Window(c0, r0, max(c1 - c0, 0), max(r1 - r0, 0))


def window_transform(window: Window, transform: Affine) -> Affine:
    """Transform of the window's top-left pixel (keeps resolution and rotation)."""
    return transform @ Affine.translation(window.col_off, window.row_off)


def intersect(a: Window, b: Window) -> Window | None:
    """Overlap of two whole-pixel windows, or None when they do not overlap."""
    c0, r0 = max(a.col_off, b.col_off), max(a.row_off, b.row_off)
    c1 = min(a.col_off + a.width, b.col_off + b.width)
    r1 = min(a.row_off + a.height, b.row_off + b.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def clip_window(window: Window, width: int, height: int) -> Window | None:
    """The part of `window` inside an image of `width` x `height`, or None."""
    return intersect(window, Window(0, 0, width, height))


def tiles_touched(
    window: Window, tile_width: int, tile_height: int
) -> tuple[range, range]:
    """Tile columns and tile rows a (clipped, whole-pixel) window touches."""
    c0, r0 = int(window.col_off), int(window.row_off)
    c1, r1 = c0 + int(window.width), r0 + int(window.height)
    return (
        range(c0 // tile_width, (c1 - 1) // tile_width + 1),
        range(r0 // tile_height, (r1 - 1) // tile_height + 1),
    )


def iter_tiles(
    window: Window, tile_width: int, tile_height: int
) -> Iterator[tuple[int, int]]:
    """(tx, ty) of each tile a window touches, row by row."""
    cols, rows = tiles_touched(window, tile_width, tile_height)
    for ty in rows:
        for tx in cols:
            yield tx, ty
