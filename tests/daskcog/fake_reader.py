"""A fake reader that satisfies georeader's `AsyncGeoData`, and the header it is made from.

It drives the reader-cache and graph tests that need no pixels: no file, no
store, no event-loop I/O. Its pixels, when asked for, are computed from their
coordinates (value = row * 1000 + col, per band offset by 1e6), so a test can
still tell which window it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader import (
    GeoTensor,
    ObjectNotFoundError,
    ReaderSurface,
    check_no_warp,
    geo,
    parse_location,
)
from georeader.geo import OnGrid
from georeader.io import Location


@dataclass(frozen=True)
class FakeHeader:
    """What a header open would learn: one level per entry of `sizes` (finest first)."""

    location: Location
    sizes: tuple[tuple[int, int], ...] = ((4096, 4096), (2048, 2048))
    """(width, height) of each level."""
    count: int = 2
    dtype: str = "uint16"
    nodata: float | None = None
    tile: tuple[int, int] = (256, 256)
    origin: tuple[float, float] = (500_000.0, 4_200_000.0)
    res: float = 10.0
    crs: CRS = field(default_factory=lambda: CRS.from_epsg(32633))
    alpha_index: int | None = None
    """As the real header's: no alpha band."""

    @property
    def levels(self) -> tuple[SimpleNamespace, ...]:
        """As the real header's levels, for what `daskcog.open` asks of them: no masks."""
        return tuple(SimpleNamespace(mask_ifd=None) for _ in self.sizes)


class FakeOpener:
    """`open_header` for `ReaderCache`: counts opens, can wait, fail, or fail until told."""

    def __init__(self, *, delay: float = 0.01, missing: Sequence[str] = (), **header: Any) -> None:
        self.delay = delay
        self.missing = set(missing)
        self.header = header
        """FakeHeader fields the headers get (e.g. tile=(16, 16))."""
        self.calls: list[str] = []

    async def __call__(self, url: str | Location, **store_options: Any) -> FakeHeader:
        url = url if isinstance(url, str) else url.url  # daskcog.open hands its Location over
        self.calls.append(url)
        await asyncio.sleep(self.delay)  # long enough for concurrent opens to overlap
        if url in self.missing:
            raise ObjectNotFoundError(f"{url}: not found (fake)")
        if store_options.get("refuse"):
            raise ObjectNotFoundError(f"{url}: these store options are refused (fake)")
        return FakeHeader(parse_location(url), **self.header)


class FakeReader(ReaderSurface, OnGrid):
    """One level and band subset of a FakeHeader; every read is a coroutine."""

    def __init__(
        self, header: FakeHeader, *, overview_level: int = 0, bands: Sequence[int] | None = None
    ) -> None:
        self.opened_file = header
        self.location = header.location
        self.overview_level = overview_level
        self.bands = tuple(bands) if bands is not None else tuple(range(1, header.count + 1))
        self.width, self.height = header.sizes[overview_level]
        scale = header.sizes[0][0] / self.width
        self.transform = Affine(
            header.res * scale, 0, header.origin[0], 0, -header.res * scale, header.origin[1]
        )
        self.crs = header.crs
        self.dtype = np.dtype(header.dtype)
        self.nodata = header.nodata
        self.block_shape = header.tile
        self.closed = False

    @classmethod
    def from_header(
        cls,
        header: FakeHeader,
        *,
        overview_level: int = 0,
        bands: Sequence[int] | None = None,
        resolution: float | tuple[float, float] | None = None,
    ) -> FakeReader:
        """`make_reader` for `ReaderCache` (the fake of `AsyncGeoTIFFReader.from_opened`)."""
        if resolution is not None:
            target = resolution if isinstance(resolution, int | float) else min(resolution)
            fits = [
                i
                for i, (w, _) in enumerate(header.sizes)
                if header.res * header.sizes[0][0] / w <= target
            ]
            overview_level = fits[-1] if fits else 0
        return cls(header, overview_level=overview_level, bands=bands)

    @property
    def count(self) -> int:
        return len(self.bands)

    async def read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor:
        window = geo.to_int_window(window)
        rows = np.arange(int(window.row_off), int(window.row_off + window.height))[:, None]
        cols = np.arange(int(window.col_off), int(window.col_off + window.width))[None, :]
        values = np.stack([(b * 1_000_000 + rows * 1000 + cols) for b in self.bands]).astype(
            self.dtype
        )
        return GeoTensor(
            values,
            geo.window_transform(window, self.transform),
            self.crs,
            self.fill_value_default,
        )

    async def read_bounds(
        self,
        bounds: tuple[float, float, float, float],
        *,
        target_resolution: Any = None,
        target_crs: Any = None,
        boundless: bool = True,
        fill_value: float | None = None,
    ) -> GeoTensor:
        check_no_warp(self, target_resolution=target_resolution, target_crs=target_crs)
        return await self.read_window(geo.window_from_bounds(bounds, self.transform))

    async def read_geoslice(self, slice_: geo.GeoSlice, **kwargs: Any) -> GeoTensor:
        return await self.read_window(
            geo.geoslice_window(slice_, self.width, self.height), **kwargs
        )

    async def load(self, **kwargs: Any) -> GeoTensor:
        return await self.read_window(Window(0, 0, self.width, self.height), **kwargs)

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def fake_cache(maxsize: int = 8, **opener: Any) -> tuple[Any, FakeOpener]:
    """A `ReaderCache` over fake headers and readers, and its opener (to count opens)."""
    from daskcog.runtime.reader_cache import ReaderCache

    open_header = FakeOpener(**opener)
    return ReaderCache(
        maxsize, open_header=open_header, make_reader=FakeReader.from_header
    ), open_header
