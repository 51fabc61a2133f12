"""The reader contracts: one metadata surface, sync (`GeoData`) or async (`AsyncGeoData`) reads.

Plain `typing.Protocol`s: type checkers check readers against them (both georeader readers
and tests/daskcog/fake_reader.py, which drives daskcog's tests without files). `GeoData`
and `AsyncGeoData` list the same metadata (`GeoMetadata`) and the same reads
(`read_window`, `read_bounds`, `read_geoslice`, `load`), plain functions on one and
coroutines on the other. At run time, `conforms(obj, AsyncGeoData)` tells whether an
object has every member, with coroutine reads (plain ones for `GeoData`); it looks
members up statically, so it never runs a property and never raises (an unopened reader
conforms: its properties raise only when read). `isinstance` is not offered: typing's
own check reads every property (which raises on an unopened reader) and cannot tell a
coroutine method from a plain one.

Both georeader readers write their surface once, here: `LevelFacts` holds what the
header says about the level they read (made at open), `FromLevelFacts` serves it as
the metadata properties, and `ReaderSurface` derives the rest (url, shape, fill
value, footprint).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader.geo import windows
from georeader.geo.gridded import Gridded
from georeader.geo.nodata import default_fill

if TYPE_CHECKING:  # annotations only: the contract does not need the value or the store
    from georeader.geo.geotensor import GeoTensor
    from georeader.io.stores import Location

_ASYNC_ONLY = ("__aenter__", "__aexit__", "aclose")
"""Members only async readers have (the async context manager)."""


def _protocol_members(proto: type) -> dict[str, Any]:
    """Public members (and the async context manager's dunders) of `proto` and its bases."""
    members: dict[str, Any] = {}
    for base in reversed(proto.__mro__):
        if base not in _READS_ASYNC:
            continue  # object, typing's Protocol and Generic: no members of the contract
        for name, value in vars(base).items():
            if (name in _ASYNC_ONLY or not name.startswith("_")) and (
                isinstance(value, property) or inspect.isfunction(value)
            ):
                members[name] = value
    return members


def conforms(instance: object, proto: type) -> bool:
    """True when `instance` has every member of the reader Protocol `proto` (`GeoMetadata`,
    `GeoData`, `AsyncGeoData`), its reads plain functions (`GeoData`) or coroutines
    (`AsyncGeoData`). Static lookups only: no property runs, nothing raises."""
    if isinstance(instance, type):
        return False  # a reader class is not a reader
    reads_async = _READS_ASYNC.get(proto)
    try:
        for name, declared in _protocol_members(proto).items():
            found = inspect.getattr_static(instance, name)
            if not inspect.isfunction(declared):
                continue  # a property: any attribute or property will do
            func = getattr(found, "__func__", found)
            if not callable(func):
                return False
            if reads_async is not None and inspect.iscoroutinefunction(func) != reads_async:
                return False
        return True
    except Exception:  # noqa: BLE001 - a missing member (AttributeError) or any odd object: not a reader
        return False


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
    def footprint(self) -> windows.Footprint: ...
    @property
    def block_shape(self) -> tuple[int, int]: ...


class GeoData(GeoMetadata, Protocol):
    """A synchronous reader (rasterio-backed): the reference."""

    def read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor: ...
    def read_bounds(self, bounds: windows.Bounds, **kwargs: Any) -> GeoTensor: ...
    def read_geoslice(self, slice_: windows.GeoSlice, **kwargs: Any) -> GeoTensor: ...
    def load(self, **kwargs: Any) -> GeoTensor: ...


class AsyncGeoData(GeoMetadata, Protocol):
    """An asynchronous reader: reads are coroutines, safe to run many at once.

    `async with reader:` opens it if needed and `aclose()`s it after.
    """

    async def read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor: ...
    async def read_bounds(  # the seed's contract; readers add options (boundless=, fill_value=)
        self, bounds: windows.Bounds, *, target_resolution: Any = None,
        target_crs: Any = None, **kwargs: Any,
    ) -> GeoTensor: ...
    async def read_geoslice(self, slice_: windows.GeoSlice, **kwargs: Any) -> GeoTensor: ...
    async def load(self, **kwargs: Any) -> GeoTensor: ...
    async def aclose(self) -> None: ...
    async def __aenter__(self) -> AsyncGeoData: ...
    async def __aexit__(self, *exc_info: object) -> None: ...


_READS_ASYNC: dict[type, bool | None] = {GeoMetadata: None, GeoData: False, AsyncGeoData: True}
"""Whether a Protocol's read methods must be coroutine functions (GeoMetadata: no reads)."""


def check_no_warp(
    reader: GeoMetadata, *, target_resolution: float | tuple[float, float] | None, target_crs: Any
) -> None:
    """NotImplementedError, with where to go instead, when a read would need a warp or resampling.

    A target equal to the reader's own CRS or resolution needs neither and passes.
    """
    from georeader.geo.geotensor import norm_crs

    if target_crs is not None and norm_crs(target_crs) != reader.crs:
        raise NotImplementedError(
            "read_bounds reads in the file's own CRS; to read onto another CRS or grid use "
            "daskcog.mosaic([url], crs=..., bounds=..., resolution=...), which reprojects"
        )
    if target_resolution is not None:
        wanted = (
            (float(target_resolution), float(target_resolution))
            if isinstance(target_resolution, int | float)
            else (float(target_resolution[0]), float(target_resolution[1]))
        )
        same = zip(wanted, reader.res, strict=True)
        if not all(math.isclose(w, r, rel_tol=1e-9) for w, r in same):
            raise NotImplementedError(
                f"read_bounds reads at the level's own resolution {reader.res}; to read near "
                f"{wanted}, open the nearest overview (AsyncGeoTIFFReader(url, resolution=...)), "
                "or resample with daskcog.mosaic([url], resolution=..., resampling=...)"
            )


class _SurfaceNeeds(Gridded, Protocol):
    """What `ReaderSurface` derives from beyond the grid (fields or properties of a reader)."""

    @property
    def crs(self) -> CRS | None: ...

    @property
    def location(self) -> Location: ...
    @property
    def count(self) -> int: ...
    @property
    def nodata(self) -> float | None: ...
    @property
    def dtype(self) -> np.dtype: ...


class ReaderSurface:
    """The derived part of the reader surface, written once for both readers.

    Needs `location`, `count`, `height`, `width`, `nodata` and `transform` from the reader.
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
        return default_fill(self.nodata, self.dtype)

    @property
    def footprint(self: _SurfaceNeeds) -> windows.Footprint:
        """The image's outline in its CRS: four corners, closed (rotation kept)."""
        return windows.footprint(Window(0, 0, self.width, self.height), self.transform)

    def geoslice_read(
        self: _SurfaceNeeds, slice_: Any, cols: slice | None, fill_value: float | None
    ) -> tuple[Window, GeoTensor | None]:
        """`read_geoslice`'s part before any read, one for both readers: the window of a
        `(rows, cols)` value (or of two slices), and the result already when it is empty
        (a reversed or empty slice gives an empty axis, like numpy)."""
        from georeader.errors import WindowError
        from georeader.geo.geotensor import GeoTensor

        if cols is not None:
            if not isinstance(slice_, slice):
                raise WindowError(
                    f"{self.location.url}: read_geoslice(rows, cols) takes two slices; "
                    f"got {slice_!r}"
                )
            slice_ = (slice_, cols)
        try:
            window = windows.geoslice_window(slice_, self.width, self.height)
        except WindowError as exc:
            raise WindowError(f"{self.location.url}: {exc}") from None
        if window.width and window.height:
            return window, None
        fill = default_fill(self.nodata, self.dtype) if fill_value is None else fill_value
        empty = np.empty((self.count, int(window.height), int(window.width)), dtype=self.dtype)
        transform = windows.window_transform(window, self.transform)
        return window, GeoTensor(empty, transform, self.crs, fill)


@dataclass(frozen=True)
class LevelFacts:
    """What a reader's header says about its level, as one plain value (no I/O to read it).

    Each georeader reader makes one from its own source (a parsed header level; a
    rasterio dataset) when it opens, and `FromLevelFacts` serves it as properties.
    """

    crs: CRS | None
    transform: Affine
    width: int
    height: int
    nodata: float | None
    block_shape: tuple[int, int]
    """(rows, cols) of a tile; for striped files, (rows per strip, width)."""
    overview_count: int


class _FactsNeeds(Protocol):
    @property
    def level_facts(self) -> LevelFacts: ...
    @property
    def bands(self) -> Sequence[int]: ...


class FromLevelFacts:
    """Mixin: the metadata properties of a reader that keeps them in one `LevelFacts`.

    Needs `level_facts` (raising, e.g. `ReaderNotOpenedError`, when the reader has
    none yet) and `bands` from the reader; `count` is the number of bands read.
    """

    @property
    def crs(self: _FactsNeeds) -> CRS | None:
        return self.level_facts.crs

    @property
    def transform(self: _FactsNeeds) -> Affine:
        return self.level_facts.transform

    @property
    def width(self: _FactsNeeds) -> int:
        return self.level_facts.width

    @property
    def height(self: _FactsNeeds) -> int:
        return self.level_facts.height

    @property
    def nodata(self: _FactsNeeds) -> float | None:
        return self.level_facts.nodata

    @property
    def block_shape(self: _FactsNeeds) -> tuple[int, int]:
        """(rows, cols) of a tile; for striped files, (rows per strip, width)."""
        return self.level_facts.block_shape

    @property
    def overview_count(self: _FactsNeeds) -> int:
        return self.level_facts.overview_count

    @property
    def count(self: _FactsNeeds) -> int:
        return len(self.bands)
