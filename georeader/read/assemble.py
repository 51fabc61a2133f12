"""The assemble step of a read: decode fetched tiles into a window, then masks and padding.

Pure work, no I/O: it runs in a Dask task's own thread (`PendingWindow.assemble`)
or in the process's decode pool (`assemble_async`); imagecodecs releases the GIL.
Data flows one way: the reader fetches (`Fetched`), this module turns it into a
GeoTensor using only the header's values (`OpenedFile`, `Level`): it never calls
back into the reader.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from georeader.errors import TileDecodeError
from georeader.geo import windows
from georeader.geo.geotensor import GeoTensor
from georeader.geo.nodata import nodata_mask, same_value
from georeader.header.model import Level, OpenedFile
from georeader.process_state import register, settings
from georeader.read import decode
from georeader.read.fetched import Fetched

_pool_lock = threading.Lock()
_pool: tuple[ThreadPoolExecutor, int] | None = None


def decode_pool() -> ThreadPoolExecutor:
    """Process-wide pool that decodes tiles (imagecodecs releases the GIL)."""
    return _decode_pool()[0]


def _decode_pool() -> tuple[ThreadPoolExecutor, int]:
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, settings().decode_threads)
            _pool = (ThreadPoolExecutor(workers, thread_name_prefix="georeader-decode"), workers)
        return _pool


def _drop_pool() -> None:
    """Forget the pool (its threads finish what they have); the next decode makes a new one."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool[0].shutdown(wait=False)


def _pool_after_fork() -> None:
    """In a forked child the pool's threads do not exist: forget it without touching it."""
    global _pool, _pool_lock
    _pool_lock, _pool = threading.Lock(), None


register(
    "georeader.decode_pool",
    info=lambda: {"workers": 0 if _pool is None else _pool[1]},
    clear=_drop_pool,
    after_fork=_pool_after_fork,
    on_settings=lambda old, new: _drop_pool() if old.decode_threads != new.decode_threads else None,
)


@dataclass
class PendingWindow:
    """A fetched window waiting to be decoded and assembled (see `fetch_window`).

    It holds the header's values (never the reader), so assembling needs no
    reader method and no event loop.
    """

    opened: OpenedFile
    level: Level
    bands: tuple[int, ...]
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
                level, inside, fetched = self.level, self.inside, self.fetched
                out = empty_window(level, inside)
                decode_tiles(self.opened.location.url, level, out, inside, fetched.raw)
                values = finish_window(
                    self.opened, level, self.bands, out, inside, fetched, self.fill
                )
        return self._pad(values)

    async def assemble_async(self) -> GeoTensor:
        """Decode in the process's decode pool, tiles split across its threads."""
        values = None
        if self.inside is not None and self.fetched is not None:
            values = self.fetched.values
            if values is None:
                level, inside, fetched = self.level, self.inside, self.fetched
                url, raw = self.opened.location.url, fetched.raw
                out = empty_window(level, inside)
                loop = asyncio.get_running_loop()
                pool, workers = _decode_pool()
                n = max(1, min(len(raw), workers))
                await asyncio.gather(
                    *(
                        loop.run_in_executor(pool, decode_tiles, url, level, out, inside, raw[i::n])
                        for i in range(n)
                    )
                )
                values = finish_window(
                    self.opened, level, self.bands, out, inside, fetched, self.fill
                )
        return self._pad(values)

    def _pad(self, values: np.ndarray | None) -> GeoTensor:
        window, inside = self.window, self.inside
        if inside == window and values is not None:
            out = values  # the common case: no padding, no second copy
        else:
            shape = (len(self.bands), int(window.height), int(window.width))
            out = np.full(shape, self.fill, dtype=self.opened.dtype)
            if inside is not None and values is not None:
                r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
                out[:, r : r + int(inside.height), c : c + int(inside.width)] = values
        transform = windows.window_transform(window, self.level.transform)
        return GeoTensor(out, transform, self.opened.crs, self.fill)


def empty_window(level: Level, inside: Window) -> np.ndarray:
    """The uninitialised (samples, rows, cols) array a native window is decoded into."""
    fmt = level.native_fmt
    return np.empty((fmt.samples, int(inside.height), int(inside.width)), dtype=fmt.dtype)


def decode_tiles(
    url: str, level: Level, out: np.ndarray, inside: Window, raw: list[tuple[int, int, Any]]
) -> None:
    """Decode tiles imagecodecs handles and copy their part of `inside` into `out`."""
    fmt = level.native_fmt
    for tx, ty, data in raw:
        try:
            array = decode.decode_tile(fmt, data, scratch=True)  # copied out by place_tile
        except TileDecodeError as exc:
            raise TileDecodeError(f"{url}: level {level.index} tile ({tx}, {ty}): {exc}") from exc
        place_tile(out, array, tx, ty, fmt.tile_width, fmt.tile_height, inside)


def finish_window(
    opened: OpenedFile, level: Level, bands: Sequence[int], out: np.ndarray, inside: Window,
    fetched: Fetched, fill: float,
) -> np.ndarray:
    """Sparse and Rust-decoded tiles, masks, validity, band subset."""
    fmt = level.native_fmt
    th, tw = fmt.tile_height, fmt.tile_width
    sparse_fill = 0 if opened.nodata is None else opened.nodata
    for tx, ty in fetched.sparse:
        place_tile(out, None, tx, ty, tw, th, inside, sparse_fill)
    for tx, ty, array in fetched.decoded:
        place_tile(out, array, tx, ty, tw, th, inside)
    valid = None
    if fetched.masks is not None:
        mask_ifd: Any = level.mask_ifd
        compression, bits = int(mask_ifd.compression), int(mask_ifd.bits_per_sample[0])
        valid = np.zeros((int(inside.height), int(inside.width)), dtype=bool)
        for tx, ty, raw in fetched.masks:
            try:  # bounded by the mask tile's size (async-tiff's decoder inflated bombs to 2+ GB)
                mask = decode.decode_mask(compression, bits, th, tw, raw)
            except TileDecodeError as exc:
                raise TileDecodeError(
                    f"{opened.location.url}: level {level.index} mask tile ({tx}, {ty}): {exc}"
                ) from exc
            place_tile(valid[np.newaxis], mask, tx, ty, tw, th, inside)
    return apply_validity(out, valid, opened, bands, fill)


def place_tile(
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
        raise TileDecodeError(
            f"tile ({tx}, {ty}) decoded to shape {tile.shape}, smaller than its grid cell"
        )
    dst[...] = tile[: out.shape[0], r0 - ty * th : r1 - ty * th, c0 - tx * tw : c1 - tx * tw]


def apply_validity(
    data: np.ndarray,
    valid: np.ndarray | None,
    opened: OpenedFile,
    bands: Sequence[int],
    fill: float,
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
