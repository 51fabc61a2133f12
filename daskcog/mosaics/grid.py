"""The target grid of a mosaic or stack: CRS, resolution, extent, and pixel snapping.

Rules (in this order):

* `like=` (a GeoArray, GeoStack or anything with `crs`, `transform` and a
  `shape` whose last two axes are (height, width)) gives the whole grid.
* CRS: `crs=` or the first scene's CRS.
* Resolution: `resolution=` (one number or (x, y)) or the finest among the
  scenes in the target CRS (per axis). A scene in another CRS counts with
  GDAL's suggested-warp resolution (square pixels keeping the diagonal's pixel
  count).
* Extent: `bounds=` (left, bottom, right, top, in the target CRS) is used as
  given: the origin is its top-left corner and the size covers it (a partial
  last pixel is kept, like `gdalwarp -te`). Without bounds, the union of the
  footprints is snapped outwards to an anchor grid: the grid of the first scene
  that has the target CRS and resolution (so its pixels, and those of every
  scene aligned with it, are read without resampling), else multiples of the
  resolution (`gdalwarp -tap`).

These are the mosaic's rules (`daskcog.mosaic` / `stack`: GDAL is their reference).
`daskcog.load` chooses its grid with odc-geo by odc-stac's rules
(`daskcog.stac.output_grid`) and passes it as `place(grid=...)`, which then only
places the scenes. Kept here, and not odc-geo's, where exactness needs daskcog's
own arithmetic: `aligned_offset` decides that a scene is read without resampling
only when its grid is offset from the output by whole pixels to within 1e-6 of a
pixel (odc-geo's 1/100-pixel snapping tolerance would read a scene 0.005 px off as
aligned and shift it), and the footprints the chunk tasks test are GDAL's
(`reproject_footprints`: densified edges, GDAL's suggested-warp resolution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from daskcog.mosaics.crs import crs_from_text, crs_text, same_crs
from daskcog.mosaics.scenes import Bounds, Scene, reproject_footprints
from georeader import geo
from georeader.errors import WindowError

_SNAP = 1e-6
"""Fractions of a pixel treated as rounding noise when snapping."""
_RES_RTOL = 1e-9


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS (WKT), transform coefficients, size."""

    crs: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def res(self) -> tuple[float, float]:
        return (abs(self.transform[0]), abs(self.transform[4]))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> Bounds:
        return geo.window_bounds(Window(0, 0, self.width, self.height), self.affine)

    @property
    def crs_obj(self) -> Any:
        return crs_from_text(self.crs)

    def window_bounds(self, col_off: int, row_off: int, width: int, height: int) -> Bounds:
        return geo.window_bounds(Window(col_off, row_off, width, height), self.affine)

    def window_transform(self, col_off: int, row_off: int) -> Affine:
        return self.affine @ Affine.translation(col_off, row_off)

    @classmethod
    def from_affine(cls, crs: Any, transform: Affine, width: int, height: int) -> Grid:
        t = transform
        return cls(crs_text(crs), (t.a, t.b, t.c, t.d, t.e, t.f), int(width), int(height))


@dataclass(frozen=True, eq=False)
class Placement:
    """A grid and where each scene lands on it (arrays aligned with the scene list)."""

    grid: Grid
    footprints: np.ndarray
    """(N, 4) scene bounds in the grid's CRS (NaN when a scene cannot be placed)."""
    native_res: np.ndarray
    """(N, 2) each scene's full-resolution pixel size in the grid's CRS units."""
    axis_res: np.ndarray
    """(N, 2) target units one full-resolution source pixel spans along the grid's x and y."""

    def warp_scales(self) -> np.ndarray:
        """(N, 2) GDAL's XSCALE / YSCALE (destination pixels per source pixel) at full
        resolution: pinned per scene so a warp does not depend on the chunking."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.axis_res / np.asarray(self.grid.res, dtype=np.float64)

    def level_resolution(self, scenes: Sequence[Scene]) -> np.ndarray:
        """(N,) the source pixel size, in each scene's own units, that matches the grid's
        resolution: what `choose_level` gets to pick an overview."""
        target = min(self.grid.res)
        own = np.fromiter((min(s.res) for s in scenes), dtype=np.float64, count=len(scenes))
        finite = np.isfinite(self.native_res)
        native = np.where(finite, self.native_res, np.inf).min(axis=1) if len(scenes) else own
        usable = np.isfinite(native) & (native > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(usable, own * target / np.where(usable, native, 1.0), own)


def _norm_res(resolution: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(resolution, int | float):
        rx = ry = float(resolution)
    else:
        values = [float(v) for v in resolution]
        if len(values) != 2:
            raise WindowError(f"resolution must be a number or (x, y); got {resolution!r}")
        rx, ry = values
    if not (rx > 0 and ry > 0 and math.isfinite(rx) and math.isfinite(ry)):
        raise WindowError(f"resolution must be positive and finite; got {resolution!r}")
    return abs(rx), abs(ry)


def _snap_down(value: float, origin: float, step: float) -> float:
    """The grid line at or below `value`; `value` itself when it is on a line already (so
    an aligned scene's corner is kept to the last bit)."""
    n = (value - origin) / step
    if abs(n - round(n)) < _SNAP:
        return value
    return origin + math.floor(n) * step


def _snap_up(value: float, origin: float, step: float) -> float:
    n = (value - origin) / step
    if abs(n - round(n)) < _SNAP:
        return value
    return origin + math.ceil(n) * step


def _cells(span: float, step: float) -> int:
    n = span / step
    nearest = round(n)
    return max(1, int(nearest if abs(n - nearest) < _SNAP else math.ceil(n)))


def _anchor(scenes: Sequence[Scene], crs: str, res: tuple[float, float]) -> tuple[float, float]:
    """Origin of the first scene on the target CRS and resolution, else (0, 0)."""
    for scene in scenes:
        a, b, c, d, e, f = scene.transform
        if b != 0 or d != 0 or e >= 0:
            continue
        if not (
            math.isclose(a, res[0], rel_tol=_RES_RTOL)
            and math.isclose(-e, res[1], rel_tol=_RES_RTOL)
        ):
            continue
        if same_crs(scene.crs, crs):
            return (c, f)
    return (0.0, 0.0)


def place(
    scenes: Sequence[Scene],
    *,
    crs: Any = None,
    resolution: float | Sequence[float] | None = None,
    bounds: Bounds | None = None,
    like: Any = None,
    grid: Grid | None = None,
) -> Placement:
    """The target grid for `scenes` and their footprints on it (see the module docstring).

    `grid=` is a grid chosen elsewhere (`daskcog.load` chooses its grid with odc-geo,
    `stac.output_grid`): only the footprints are computed."""
    if not scenes:
        raise WindowError("a mosaic needs at least one scene")
    if grid is not None or like is not None:
        if crs is not None or resolution is not None or bounds is not None:
            raise WindowError("give either like= or crs/resolution/bounds, not both")
        if grid is None:
            height, width = (int(v) for v in like.shape[-2:])
            grid = Grid.from_affine(like.crs, like.transform, width, height)
        footprints, native, axis = reproject_footprints(scenes, grid.crs)
        return Placement(grid, footprints, native, axis)

    target = crs_text(crs) if crs is not None else scenes[0].crs
    footprints, native, axis = reproject_footprints(scenes, target)
    placed = np.isfinite(footprints).all(axis=1)
    if not placed.any() and bounds is None:
        raise WindowError("no scene can be placed in the target CRS; give bounds= or another crs=")
    if resolution is not None:
        res = _norm_res(resolution)
    else:
        usable = native[placed] if placed.any() else native
        res = (float(np.nanmin(usable[:, 0])), float(np.nanmin(usable[:, 1])))
        if not all(math.isfinite(v) and v > 0 for v in res):
            raise WindowError("cannot derive a resolution from the scenes; give resolution=")

    if bounds is not None:
        left, bottom, right, top = (float(v) for v in bounds)
        if not (right > left and top > bottom):
            raise WindowError(
                f"bounds must be (left, bottom, right, top) with area; got {bounds!r}"
            )
        width, height = _cells(right - left, res[0]), _cells(top - bottom, res[1])
    else:
        union = footprints[placed]
        left, bottom = float(union[:, 0].min()), float(union[:, 1].min())
        right, top = float(union[:, 2].max()), float(union[:, 3].max())
        ax, ay = _anchor(scenes, target, res)
        left, right = _snap_down(left, ax, res[0]), _snap_up(right, ax, res[0])
        top, bottom = _snap_up(top, ay, res[1]), _snap_down(bottom, ay, res[1])
        width, height = _cells(right - left, res[0]), _cells(top - bottom, res[1])
    grid = Grid(target, (res[0], 0.0, left, 0.0, -res[1], top), width, height)
    return Placement(grid, footprints, native, axis)


def aligned_offset(source: Affine, grid: Affine) -> tuple[int, int] | None:
    """(col, row) of the grid's origin in the source's pixels when the two grids share
    resolution and orientation and are offset by whole pixels; else None."""
    if source.b != 0 or source.d != 0 or grid.b != 0 or grid.d != 0:
        return None
    if not (
        math.isclose(source.a, grid.a, rel_tol=_RES_RTOL)
        and math.isclose(source.e, grid.e, rel_tol=_RES_RTOL)
    ):
        return None
    dx = (grid.c - source.c) / source.a
    dy = (grid.f - source.f) / source.e
    ix, iy = round(dx), round(dy)
    if abs(dx - ix) > _SNAP or abs(dy - iy) > _SNAP:
        return None
    return int(ix), int(iy)
