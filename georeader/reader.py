"""AsyncGeoTIFFReader: exact, async reads of (Cloud-Optimized) GeoTIFFs.

async-tiff parses the header (and fetches the tiles georeader does not fetch itself);
georeader does the rest: the header is walked, checked and described once
(`header.opening` -> `header.model.OpenedFile`), each level gets a route
(`header.route`: decoded here, or read through GDAL by `read.gdal_route` where
async-tiff would be wrong; nothing comes back silently wrong), and a read is three
steps: plan and fetch the window's tiles (`read.fetch`, through the range cache and the
guarded GET of `io.guarded_get`), decode them (`read.decode`, bounded) and assemble
the window (`read.assemble`: in a thread pool, into a preallocated array, masks and
boundless padding applied).

This module holds the reader's surface: opening, levels and band subsets, metadata,
window arithmetic, retries and error mapping; it hands the header's values to the
read steps, which never call back. Reads never block the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.windows import Window

from georeader.contract import FromLevelFacts, LevelFacts, ReaderSurface, check_no_warp
from georeader.errors import (
    GeoreaderError,
    ReaderNotOpenedError,
    StoreReadError,
    WindowError,
)
from georeader.geo import windows
from georeader.geo.geotensor import GeoTensor
from georeader.geo.gridded import OnGrid
from georeader.geo.nodata import check_fill
from georeader.header import route as routes
from georeader.header.model import (  # re-exported: the reader's public companions
    Level,
    OpenedFile,
    choose_level,
    forget_header_sizes,
    header_size_hint,
)
from georeader.header.opening import DEFAULT_PREFETCH, open_file
from georeader.io.error_mapping import map_store_error
from georeader.io.retry import RetryPolicy, retrying
from georeader.io.shutdown_safety import operation
from georeader.io.stores import Location, reader_location
from georeader.read import fetch
from georeader.read.assemble import PendingWindow, decode_pool
from georeader.read.fetched import Fetched

__all__ = [
    "DEFAULT_PREFETCH", "AsyncGeoTIFFReader", "Fetched", "Level", "OpenedFile", "PendingWindow",
    "choose_level", "decode_pool", "forget_header_sizes", "open_file",
]


class AsyncGeoTIFFReader(FromLevelFacts, ReaderSurface, OnGrid):
    """Async reader of one resolution level (and band subset) of a GeoTIFF.

    `__init__` does no I/O; `await AsyncGeoTIFFReader.open(url)` (or
    `async with AsyncGeoTIFFReader(url) as reader:`) fetches the header, and
    `aclose()` lets it go. Readers of other levels or band subsets of an opened
    file share its header (`.overview(n)`, `.select_bands`).

    Every read returns a GeoTensor in which invalid pixels (nodata, the internal
    mask, alpha == 0) hold the fill value, and pixels outside the image are
    filled too (boundless reads, like GDAL's).

    Transient read failures (see `georeader.io.retry`) are retried per `retry`.
    """

    retry: RetryPolicy = RetryPolicy()

    def __init__(
        self,
        path_or_url: str | os.PathLike[str] | Location,
        *,
        store: Any = None,
        overview_level: int = 0,
        resolution: float | tuple[float, float] | None = None,
        bands: Sequence[int] | None = None,
        prefetch: int | None = None,
        **store_options: Any,
    ) -> None:
        self.location, store_options = reader_location(path_or_url, store, store_options)
        self._store = store
        self._overview_level = overview_level
        self._resolution = resolution
        self._bands = tuple(bands) if bands is not None else None
        self._prefetch = prefetch
        self._store_options = store_options
        self._file: OpenedFile | None = None
        self._level: tuple[Level, LevelFacts] | None = None

    @classmethod
    async def open(cls, path_or_url: str | os.PathLike[str], **options: Any) -> AsyncGeoTIFFReader:
        """Create and open a reader in one go; `options` as for `AsyncGeoTIFFReader(...)`."""
        return await cls(path_or_url, **options).__aenter__()

    async def __aenter__(self) -> AsyncGeoTIFFReader:
        """Fetch the header unless this reader has it already."""
        if self._file is None:
            opened = await open_file(
                self.location if self._store is not None else self.location.url,
                store=self._store, prefetch=self._prefetch, retry=self.retry, **self._store_options,
            )
            self._attach(opened)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Let the header go: metadata and reads raise `ReaderNotOpenedError` until reopened.

        Readers sharing the header (overviews, band subsets, daskcog's cache) keep
        it; a local file's descriptor closes once no one holds the header.
        """
        self._file = None
        self._level = None

    def _attach(self, opened: OpenedFile) -> None:
        level = self._overview_level
        if self._resolution is not None:
            level = choose_level(opened.levels, self._resolution)
        if not 0 <= level < len(opened.levels):
            raise WindowError(
                f"{opened.location.url}: overview_level {level} does not exist; "
                f"levels are 0 (full resolution) to {len(opened.levels) - 1}"
            )
        if self._bands is not None:
            bad = [b for b in self._bands if not 1 <= b <= opened.count]
            if bad or not self._bands:
                raise WindowError(
                    f"{opened.location.url}: bands {list(self._bands)} out of range "
                    f"1..{opened.count} "
                    "(bands are 1-based, like rasterio)"
                )
        self._file = opened
        chosen = opened.levels[level]
        facts = LevelFacts(
            crs=opened.crs,
            transform=chosen.transform,
            width=chosen.width,
            height=chosen.height,
            nodata=opened.nodata,
            block_shape=_block_shape(chosen),
            overview_count=len(opened.levels) - 1,
        )
        self._level = (chosen, facts)

    @classmethod
    def from_opened(
        cls, opened: OpenedFile, *, overview_level: int = 0, bands: Sequence[int] | None = None,
        resolution: float | tuple[float, float] | None = None,
    ) -> AsyncGeoTIFFReader:
        """A reader over an already fetched header (no I/O)."""
        reader = cls(
            opened.location, store=opened.store, overview_level=overview_level,
            bands=bands, resolution=resolution, **opened.store_options,
        )
        reader._attach(opened)
        return reader

    def overview(self, level: int) -> AsyncGeoTIFFReader:
        """Reader of another level of the same file, sharing its header."""
        return AsyncGeoTIFFReader.from_opened(self._opened, overview_level=level, bands=self._bands)

    def select_bands(self, bands: Sequence[int]) -> AsyncGeoTIFFReader:
        """Reader of a band subset (1-based band numbers), sharing the header."""
        return AsyncGeoTIFFReader.from_opened(
            self._opened, overview_level=self.overview_level, bands=bands
        )

    # -- metadata (no I/O) --------------------------------------------------
    @property
    def _opened(self) -> OpenedFile:
        if self._file is None:
            raise ReaderNotOpenedError(
                f"Reader not opened: call `await AsyncGeoTIFFReader.open({self.location.url!r})` "
                "or use `async with AsyncGeoTIFFReader(...) as reader:` first"
            )
        return self._file

    @property
    def _attached(self) -> tuple[Level, LevelFacts]:
        opened = self._opened  # raises when not opened
        if self._level is None:  # attached readers always have a level
            raise ReaderNotOpenedError(f"{opened.location.url}: reader has no level attached")
        return self._level

    @property
    def _lvl(self) -> Level:
        return self._attached[0]

    @property
    def level_facts(self) -> LevelFacts:
        """This level's metadata as one value; ReaderNotOpenedError before the header is in."""
        return self._attached[1]

    @property
    def store_options(self) -> dict[str, Any]:
        """The store options this reader was made with (a copy)."""
        return dict(self._store_options)

    @property
    def opened_file(self) -> OpenedFile:
        return self._opened

    @property
    def layout(self) -> routes.Layout:
        return self._opened.layout

    @property
    def overview_level(self) -> int:
        return self._lvl.index

    @property
    def levels(self) -> list[Level]:
        return self._opened.levels

    @property
    def bands(self) -> tuple[int, ...]:
        return self._bands if self._bands is not None else tuple(range(1, self._opened.count + 1))

    @property
    def dtype(self) -> np.dtype:
        return self._opened.dtype

    @property
    def header_byte_size(self) -> int | None:
        return header_size_hint(self.url)

    def __repr__(self) -> str:
        if self._file is None:
            return f"AsyncGeoTIFFReader({self.url!r}, not opened)"
        return (
            f"AsyncGeoTIFFReader({self.url!r}, level={self.overview_level}, shape={self.shape}, "
            f"dtype={self.dtype}, {self.layout.route})"
        )

    # -- reads ------------------------------------------------------------
    async def read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor:
        """Read a whole-pixel window; parts outside the image take the fill value."""
        with operation():
            return await self._read_window(window, boundless=boundless, fill_value=fill_value)

    async def _read_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> GeoTensor:
        pending = await self.fetch_window(window, boundless=boundless, fill_value=fill_value)
        return await pending.assemble_async()

    async def fetch_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> PendingWindow:
        """The I/O half of `read_window`: fetch (with retries), leave the decoding to the caller.

        `PendingWindow.assemble()` decodes and assembles in the calling thread.
        daskcog's chunk tasks use this so each Dask thread decodes its own chunk
        (no hand-off to another pool); `read_window` decodes in the decode pool.
        """
        with operation():
            return await self._fetch_window(window, boundless=boundless, fill_value=fill_value)

    async def _fetch_window(
        self, window: Window, *, boundless: bool = True, fill_value: float | None = None
    ) -> PendingWindow:
        window = self._int_window(window)
        level = self._lvl
        fill = check_fill(
            self.fill_value_default if fill_value is None else fill_value, self.dtype, self.url
        )
        inside = windows.clip_window(window, level.width, level.height)
        if not boundless and inside != window:
            raise WindowError(
                f"{self.url}: window {window!r} reaches outside the image "
                f"({level.height}x{level.width}); use boundless=True"
            )
        fetched = None
        if inside is not None:
            if self._opened.layout.route == routes.NATIVE:  # each request retries (one layer)
                fetched = await self._fetch_inside(inside, fill)
            else:  # GDAL's reads do not pass through our store: retried here, whole window
                fetched = await retrying(lambda: self._fetch_inside(inside, fill), self.retry)
        return PendingWindow(self._opened, self._lvl, self.bands, window, inside, fill, fetched)

    async def read_bounds(
        self,
        bounds: windows.Bounds,
        *,
        target_resolution: float | tuple[float, float] | None = None,
        target_crs: Any = None,
        boundless: bool = True,
        fill_value: float | None = None,
    ) -> GeoTensor:
        """Read the whole pixels covering `bounds` (in the file's CRS; outer rounding).

        This reader never warps or resamples: a `target_crs` other than the file's,
        or a `target_resolution` other than this level's, raises NotImplementedError
        that says where to go instead.
        """
        check_no_warp(self, target_resolution=target_resolution, target_crs=target_crs)
        window = windows.window_from_bounds(bounds, self.transform)
        return await self.read_window(window, boundless=boundless, fill_value=fill_value)

    def _int_window(self, window: Any) -> Window:
        try:
            return windows.to_int_window(window)
        except WindowError as exc:
            raise WindowError(f"{self.url}: {exc}") from None

    async def read_geoslice(
        self,
        slice_: windows.GeoSlice | slice,
        cols: slice | None = None,
        *,
        boundless: bool = True,
        fill_value: float | None = None,
    ) -> GeoTensor:
        """Read the pixels of one geoslice value: `(rows, cols)` slices (`np.s_[0:256, 512:768]`).

        `read_geoslice(rows, cols)` (two slices) reads the same. Slices take step 1
        (subsample with an overview instead); their ends may lie outside the image.
        A reversed or empty slice gives an empty axis, like numpy.
        """
        window, empty = self.geoslice_read(slice_, cols, fill_value)
        if empty is not None:
            return empty
        return await self.read_window(window, boundless=boundless, fill_value=fill_value)

    async def load(self, *, fill_value: float | None = None) -> GeoTensor:
        """Read the whole level."""
        return await self.read_window(Window(0, 0, self.width, self.height), fill_value=fill_value)

    async def _fetch_inside(self, inside: Window, fill: float) -> Fetched:
        """One attempt at fetching a window inside the image, errors mapped to typed ones."""
        if self._opened.layout.route == routes.NATIVE:  # its errors come out typed
            return await fetch.fetch_native(
                self._opened, self._lvl, inside, self.url, self.retry, share_tiles=True
            )
        try:
            return Fetched(values=await self._read_rasterio(inside, fill))
        except StoreReadError as exc:  # from the store layer, which does not know the window
            raise StoreReadError(f"{exc} (reading window {fetch.fmt_window(inside)})") from exc
        except GeoreaderError:
            raise
        except Exception as exc:
            doing = f"reading window {fetch.fmt_window(inside)}"
            raise map_store_error(exc, self.url, doing) from exc

    async def _read_rasterio(self, inside: Window, fill: float) -> np.ndarray:
        from georeader.read.gdal_route import rasterio_level  # GDAL, only for its layouts

        lock, reader = await asyncio.to_thread(rasterio_level, self._opened, self.overview_level)

        def read() -> np.ndarray:
            with lock:
                reader.bands = list(self.bands)
                return reader.read_window(inside, fill_value=fill).values

        return await asyncio.to_thread(read)

    async def prefetch_window(self, window: Window, *, budget: int) -> bool:
        """Start fetching a window's tiles into the range cache, for a read that is likely next.

        Returns False (fetching nothing) where a read would not use the cache, or when the
        read-ahead bytes no read has used yet would exceed `budget` (see
        `fetch.prefetch_window`).
        """
        w = self._int_window(window)
        return await fetch.prefetch_window(
            self._opened, self._lvl,
            (int(w.col_off), int(w.row_off), int(w.width), int(w.height)),
            budget=budget, retry=self.retry,
        )

    @property
    def reads_locally(self) -> bool:
        """True when a window can be read without the event loop (`read_window_sync`): see
        `fetch.reads_locally`."""
        return fetch.reads_locally(self._opened, self._lvl)

    def read_window_sync(self, window: Window, *, fill_value: float | None = None) -> GeoTensor:
        """`read_window` for `reads_locally` files, in the calling thread (no event loop)."""
        window = self._int_window(window)
        level = self._lvl
        fill = check_fill(
            self.fill_value_default if fill_value is None else fill_value, self.dtype, self.url
        )
        inside = windows.clip_window(window, level.width, level.height)
        fetched = None
        if inside is not None:
            fetched = fetch.fetch_local(self._opened, level, inside, self.url)
        pending = PendingWindow(self._opened, self._lvl, self.bands, window, inside, fill, fetched)
        return pending.assemble()


def _block_shape(level: Level) -> tuple[int, int]:
    """(rows, cols) of a level's tile; for striped files, (rows per strip, width)."""
    fmt = level.fmt
    if fmt is not None and fmt.tile_width:
        return (fmt.tile_height, fmt.tile_width)
    if level.data_ifd is None:  # an overview in SubIFDs, which async-tiff does not read
        return level.raw_block or (1, level.width)
    if level.data_ifd.tile_width:
        return (int(level.data_ifd.tile_height), int(level.data_ifd.tile_width))
    rows = level.data_ifd.rows_per_strip or level.height
    return (min(int(rows), level.height), level.width)
