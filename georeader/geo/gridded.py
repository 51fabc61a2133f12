"""`OnGrid`: the resolution and bounds every gridded thing derives the same way.

Shared by GeoTensor, AsyncGeoTIFFReader and daskcog's GeoArray, which only
need `width`, `height` and `transform`. (RasterioReader reports GDAL's own
values instead: it is the reference.)
"""

from __future__ import annotations

import math
from typing import Protocol

from affine import Affine
from rasterio.windows import Window

from georeader.geo import windows


class Gridded(Protocol):
    """What has a grid: a size and a transform (as fields or properties); what `OnGrid` needs."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def transform(self) -> Affine: ...


class OnGrid:
    """Mixin: `res` and `bounds` from `width`, `height` and `transform`."""

    __slots__ = ()

    @property
    def res(self: Gridded) -> tuple[float, float]:
        """Pixel size (x, y), positive, like rasterio's `res` (rotation-aware)."""
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def bounds(self: Gridded) -> tuple[float, float, float, float]:
        """(left, bottom, right, top), always ordered, whatever the grid's orientation."""
        return windows.window_bounds(Window(0, 0, self.width, self.height), self.transform)
