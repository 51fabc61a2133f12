"""The reader contracts: one metadata surface, sync (`GeoData`) or async (`AsyncGeoData`) reads.

daskcog's graph builder and mosaics depend only on these, so a fake reader that
satisfies `AsyncGeoData` can drive graph tests without files.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader.geotensor import GeoTensor
from georeader.nodata import default_fill
from georeader.store import Location


@runtime_checkable
class GeoMetadata(Protocol):
    """What every reader knows after open, without I/O."""

    @property
    def crs(self) -> CRS | None: ...
    @property
    def transform(self) -> Affine: ...
    @property
    def shape(self) -> tuple[int, int, int]: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def nodata(self) -> float | None: ...
    @property
    def fill_value_default(self) -> float | int: ...
    @property
    def res(self) -> tuple[float, float]: ...
    @property
    def bounds(self) -> tuple[float, float, float, float]: ...
    @property
    def block_shape(self) -> tuple[int, int]: ...


@runtime_checkable
class GeoData(GeoMetadata, Protocol):
    """A synchronous reader (rasterio-backed): the reference."""

    def read_window(self, window: Window, *, boundless: bool = True, fill_value: float | None = None) -> GeoTensor: ...
    def read_bounds(self, bounds: tuple[float, float, float, float], **kwargs: Any) -> GeoTensor: ...
    def load(self, **kwargs: Any) -> GeoTensor: ...


@runtime_checkable
class AsyncGeoData(GeoMetadata, Protocol):
    """An asynchronous reader: reads are coroutines, safe to run many at once."""

    async def read_window(self, window: Window, *, boundless: bool = True, fill_value: float | None = None) -> GeoTensor: ...
    async def read_bounds(self, bounds: tuple[float, float, float, float], **kwargs: Any) -> GeoTensor: ...
    async def load(self, **kwargs: Any) -> GeoTensor: ...


class _SurfaceNeeds(Protocol):
    """What `ReaderSurface` derives from; readers provide it as fields or properties."""

    @property
    def location(self) -> Location: ...
    @property
    def count(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def nodata(self) -> float | None: ...


class ReaderSurface:
    """The derived part of the reader surface, written once for both readers.

    Needs `location`, `count`, `height`, `width` and `nodata` from the reader.
    """

    @property
    def url(self: _SurfaceNeeds) -> str:
        return self.location.url

    @property
    def shape(self: _SurfaceNeeds) -> tuple[int, int, int]:
        return (self.count, self.height, self.width)

    @property
    def fill_value_default(self: _SurfaceNeeds) -> float | int:
        """Value of invalid and outside pixels: the nodata value, else 0 (GDAL's choice)."""
        return default_fill(self.nodata)
