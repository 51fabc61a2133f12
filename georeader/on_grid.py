"""`OnGrid`: the resolution and bounds every gridded thing derives the same way.

Shared by GeoTensor, AsyncGeoTIFFReader and daskcog's GeoArray, which only
need `width`, `height` and `transform`. (RasterioReader reports GDAL's own
values instead: it is the reference.)
"""

from __future__ import annotations

import math

from affine import Affine
from rasterio.windows import Window

from georeader import window_utils


class OnGrid:
    """Mixin: `res` and `bounds` from `width`, `height` and `transform`."""

    __slots__ = ()
    width: int
    height: int
    transform: Affine

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), positive, like rasterio's `res` (rotation-aware)."""
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top), always ordered, whatever the grid's orientation."""
        return window_utils.window_bounds(Window(0, 0, self.width, self.height), self.transform)
