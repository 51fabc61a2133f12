"""The assemble step of a read: decode fetched tiles into a window, then masks and padding.

Pure work, no I/O: it runs in a Dask task's own thread (`PendingWindow.assemble`)
or in the process's decode pool (`assemble_async`); imagecodecs releases the GIL.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from georeader import window_utils
from georeader.errors import TileDecodeError
from georeader.geotensor import GeoTensor
from georeader.nodata import nodata_mask, same_value

if TYPE_CHECKING:
    from georeader.async_geotiff_reader import AsyncGeoTIFFReader
    from georeader.opened_file import OpenedFile

_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def decode_pool() -> ThreadPoolExecutor:
    """Process-wide pool that decodes tiles (imagecodecs releases the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = int(os.environ.get("GEOREADER_DECODE_THREADS", os.cpu_count() or 2))
            _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="georeader-decode"))
        return _pool[1]


@dataclass
class Fetched:
    """What a fetch brought back for a window inside the image, ready to assemble."""

    raw: list[tuple[int, int, Any]] = field(default_factory=list)
    """(tx, ty, compressed bytes) of tiles imagecodecs decodes."""
    decoded: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    """(tx, ty, (bands, h, w)) of tiles async-tiff decoded."""
    sparse: list[tuple[int, int]] = field(default_factory=list)
    masks: list[tuple[int, int, np.ndarray]] | None = None
    values: np.ndarray | None = None
    """The final values (the rasterio route reads and assembles in one go)."""


@dataclass
class PendingWindow:
    """A fetched window waiting to be decoded and assembled (see `fetch_window`)."""

    reader: AsyncGeoTIFFReader
    window: Window
    inside: Window | None
    fill: float
    fetched: Fetched | None

    def assemble(self) -> GeoTensor:
        """Decode and assemble in the calling thread (imagecodecs releases the GIL)."""
        values = None
        if self.inside is not None and self.fetched is not None:
            values = self.fetched.values
            if values is None:
                out = self.reader._empty(self.inside)  # noqa: SLF001
                self.reader._decode_raw(out, self.inside, self.fetched.raw)  # noqa: SLF001
                values = self.reader._finish(out, self.inside, self.fetched, self.fill)  # noqa: SLF001
        return self._pad(values)

    async def assemble_async(self) -> GeoTensor:
        """Decode in the process's decode pool, tiles split across its threads."""
        values = None
        if self.inside is not None and self.fetched is not None:
            values = self.fetched.values
            if values is None:
                reader, inside, raw = self.reader, self.inside, self.fetched.raw
                out = reader._empty(inside)  # noqa: SLF001
                loop = asyncio.get_running_loop()
                pool = decode_pool()
                n = max(1, min(len(raw), pool._max_workers))  # noqa: SLF001
                await asyncio.gather(
                    *(loop.run_in_executor(pool, reader._decode_raw, out, inside, raw[i::n]) for i in range(n))  # noqa: SLF001
                )
                values = reader._finish(out, inside, self.fetched, self.fill)  # noqa: SLF001
        return self._pad(values)

    def _pad(self, values: np.ndarray | None) -> GeoTensor:
        reader, window, inside = self.reader, self.window, self.inside
        if inside == window and values is not None:
            out = values  # the common case: no padding, no second copy
        else:
            out = np.full((reader.count, int(window.height), int(window.width)), self.fill, dtype=reader.dtype)
            if inside is not None and values is not None:
                r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
                out[:, r : r + int(inside.height), c : c + int(inside.width)] = values
        transform = window_utils.window_transform(window, reader.transform)
        return GeoTensor(out, transform, reader.crs, self.fill)


def _place(
    out: np.ndarray, tile: np.ndarray | None, tx: int, ty: int, tw: int, th: int, inside: Window,
    fill: float = 0,
) -> None:
    """Copy the part of tile (tx, ty) that overlaps `inside` into `out` (or fill it).

    Plain integer arithmetic: this runs once per tile on the hot path.
    """
    wc0, wr0 = int(inside.col_off), int(inside.row_off)
    c0, r0 = max(tx * tw, wc0), max(ty * th, wr0)
    c1 = min((tx + 1) * tw, wc0 + int(inside.width))
    r1 = min((ty + 1) * th, wr0 + int(inside.height))
    if c1 <= c0 or r1 <= r0:
        return
    dst = out[:, r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
    if tile is None:
        dst[...] = fill
        return
    if tile.shape[1] < r1 - ty * th or tile.shape[2] < c1 - tx * tw:
        raise TileDecodeError(f"tile ({tx}, {ty}) decoded to shape {tile.shape}, smaller than its grid cell")
    dst[...] = tile[: out.shape[0], r0 - ty * th : r1 - ty * th, c0 - tx * tw : c1 - tx * tw]


def _apply_validity(
    data: np.ndarray, valid: np.ndarray | None, opened: OpenedFile, bands: Sequence[int], fill: float
) -> np.ndarray:
    """Invalid pixels -> fill, then band subset.

    One source of validity, in GDAL's order of precedence (what rasterio's
    masked reads use): the internal mask, else nodata, else alpha == 0 (for the
    other bands).
    """
    if valid is not None:
        data[:, ~valid] = fill
    elif opened.nodata is not None:
        # integer nodata pixels already hold the fill value when fill == nodata: skip the scan
        if np.issubdtype(data.dtype, np.floating) or not same_value(fill, opened.nodata):
            invalid = nodata_mask(data, opened.nodata)
            if invalid is not None:
                data[invalid] = fill
    elif opened.alpha_index is not None:
        alpha = data[opened.alpha_index]
        invalid = alpha == 0
        if invalid.any():
            others = [i for i in range(data.shape[0]) if i != opened.alpha_index]
            for i in others:
                data[i][invalid] = fill
    index = [b - 1 for b in bands]
    return data if index == list(range(data.shape[0])) else data[index]
