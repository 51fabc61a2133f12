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

from georeader import window_utils


class _Gridded(Protocol):
    """What the mixin needs; subclasses provide it as fields or properties."""

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
    def res(self: _Gridded) -> tuple[float, float]:
        """Pixel size (x, y), positive, like rasterio's `res` (rotation-aware)."""
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def bounds(self: _Gridded) -> tuple[float, float, float, float]:
        """(left, bottom, right, top), always ordered, whatever the grid's orientation."""
        return window_utils.window_bounds(Window(0, 0, self.width, self.height), self.transform)
