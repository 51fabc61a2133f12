"""The assemble step of a read: decode fetched tiles into a window, then validity and padding.

Pure work, no I/O: `assemble_window` runs in a Dask task's own thread (daskcog's chunk
tasks call it directly, `PendingWindow.assembled` for readers) or after the tiles were
decoded in the process's decode pool (`assembled_async`); imagecodecs releases the GIL.
It returns an `Assembled`: the values, and the validity it learnt on the way (the
internal mask, the nodata scan, alpha), so callers need not scan for nodata again.
Data flows one way: the reader fetches (`Fetched`), this module turns it into values
using only the header's values (`OpenedFile`, `Level`): it never calls back into the reader.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from georeader.errors import TileDecodeError
from georeader.geo import windows
from georeader.geo.geotensor import GeoTensor
from georeader.geo.nodata import nodata_mask
from georeader.header.model import Level, OpenedFile
from georeader.process_state import register, settings
from georeader.read import decode, decoded_tiles
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


@dataclass(frozen=True)
class Assembled:
    """A window's values (bands, rows, cols; invalid and outside pixels hold `fill`) and what
    assembling learnt of their validity, so callers need not scan for nodata again."""

    values: np.ndarray
    fill: float
    invalid: np.ndarray | None
    """Invalid pixels inside the image, (rows, cols) or (bands, rows, cols) over `inside`
    (the internal mask, nodata, alpha == 0); None: see `by_fill`."""
    by_fill: bool
    """Integer nodata equal to the fill: the invalid pixels are those holding the fill (the
    nodata scan was skipped, as nothing needed replacing)."""
    inside: tuple[int, int, int, int] | None
    """(row, col, rows, cols) of the image's pixels in `values`; the rest is padding."""

    @property
    def valid(self) -> np.ndarray:
        """(bands, rows, cols) bool: True where a pixel holds data (GDAL's mask precedence)."""
        if self.inside is None:
            return np.zeros(self.values.shape, dtype=bool)
        r, c, h, w = self.inside
        out = np.zeros(self.values.shape, dtype=bool)
        part = self.values[:, r : r + h, c : c + w]
        if self.by_fill:
            out[:, r : r + h, c : c + w] = part != self.fill
        elif self.invalid is not None:
            out[:, r : r + h, c : c + w] = ~self.invalid
        else:
            out[:, r : r + h, c : c + w] = True
        return out


def assemble_window(
    opened: OpenedFile, level: Level, bands: Sequence[int], window: Window,
    inside: Window | None, fill: float, fetched: Fetched | None,
    decoded: np.ndarray | None = None, *, share_tiles: bool = False,
    scratch: Callable[[int], np.ndarray] | None = None,
) -> Assembled:
    """Decode (unless `decoded` holds the tiles already), place, apply validity and pad.

    `window` may reach outside the image (boundless: padded with `fill`); `inside` is its
    part inside the image (None: none), whose tiles `fetched` holds. `share_tiles`: take
    and keep decoded tiles in the per-process table (`decoded_tiles`), for windows that
    share tiles with others (a mosaic's scenes under chunk borders). `scratch(nbytes)`:
    a writable uint8 buffer of at least `nbytes` to decode into, for a caller that is
    done with the values before it hands that buffer out again (a warp's source window,
    consumed by the warp at once); the values may then be a view of it.
    """
    values = invalid = None
    by_fill = False
    if inside is not None and fetched is not None:
        values = fetched.values
        if values is None:
            out = decoded
            if out is None:
                fmt: Any = level.fmt  # the native levels that fetched raw tiles have one
                shape = (fmt.samples, int(inside.height), int(inside.width))
                if scratch is None:
                    out = np.empty(shape, fmt.dtype)
                else:
                    size = shape[0] * shape[1] * shape[2]
                    out = scratch(size * fmt.dtype.itemsize)[: size * fmt.dtype.itemsize]
                    out = out.view(fmt.dtype).reshape(shape)
                decode_tiles(
                    opened.location.url, level, out, inside, fetched.raw,
                    opened.tile_cache_id if share_tiles else None,
                )
            values, invalid, by_fill = finish_window(
                opened, level, bands, out, inside, fetched, fill
            )
        else:
            by_fill = True  # the GDAL route filled invalid pixels: the fill marks them
    if inside == window and values is not None:
        return Assembled(values, fill, invalid, by_fill, (0, 0, values.shape[1], values.shape[2]))
    shape = (len(bands), int(window.height), int(window.width))
    padded = np.full(shape, fill, dtype=opened.dtype)
    where = None
    if inside is not None and values is not None:
        r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
        h, w = int(inside.height), int(inside.width)
        padded[:, r : r + h, c : c + w] = values
        where = (r, c, h, w)
    return Assembled(padded, fill, invalid, by_fill, where)


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
        return self._tensor(self.assembled())

    def assembled(
        self, decoded: np.ndarray | None = None, *,
        scratch: Callable[[int], np.ndarray] | None = None,
    ) -> Assembled:
        """Values and validity, decoded in the calling thread (unless `decoded`); `scratch`:
        see `assemble_window`."""
        return assemble_window(
            self.opened, self.level, self.bands, self.window, self.inside, self.fill,
            self.fetched, decoded, share_tiles=True, scratch=scratch,
        )

    async def assemble_async(self) -> GeoTensor:
        """Decode in the process's decode pool, tiles split across its threads."""
        return self._tensor(await self.assembled_async())

    async def assembled_async(self) -> Assembled:
        """`assembled`, the tiles decoded in the process's decode pool."""
        level, inside, fetched = self.level, self.inside, self.fetched
        if inside is None or fetched is None or fetched.values is not None:
            return self.assembled()
        url, raw, source = self.opened.location.url, fetched.raw, self.opened.tile_cache_id
        fmt: Any = level.fmt
        out = np.empty((fmt.samples, int(inside.height), int(inside.width)), fmt.dtype)
        loop = asyncio.get_running_loop()
        pool, workers = _decode_pool()
        n = max(1, min(len(raw), workers))
        await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool, decode_tiles, url, level, out, inside, raw[i::n], source
                )
                for i in range(n)
            )
        )
        return self.assembled(out)

    def _tensor(self, assembled: Assembled) -> GeoTensor:
        transform = windows.window_transform(self.window, self.level.transform)
        return GeoTensor(assembled.values, transform, self.opened.crs, self.fill)


def decode_tiles(
    url: str, level: Level, out: np.ndarray, inside: Window, raw: list[tuple[int, int, Any]],
    source: str | None = None,
) -> None:
    """Decode tiles imagecodecs handles and write their part of `inside` into `out`.

    Each tile goes from the codec's buffer into its place in `out` in one pass
    (`decode.decode_tile_into`). With `source` (the header's `tile_cache_id`), tiles
    a window cuts are taken from and kept in the per-process decoded-tile table, so a
    tile two windows share is decoded once."""
    fmt: Any = level.fmt
    tw, th = fmt.tile_width, fmt.tile_height
    c0, r0 = int(inside.col_off), int(inside.row_off)
    c1, r1 = c0 + int(inside.width), r0 + int(inside.height)
    table = None  # uncompressed tiles are views of the fetched bytes: nothing to save
    if source is not None and decoded_tiles.TABLE.capacity and fmt.compression != decode.NONE:
        table = decoded_tiles.TABLE
    for tx, ty, data in raw:
        x0, y0 = tx * tw, ty * th
        if table is not None:
            key = (str(source), level.index, tx, ty)
            array = table.get(key)
            # only a tile the window cuts is kept: one it covers whole is, in a partition
            # of the image into windows (chunks), wanted by no other window (measured: keeping
            # every tile cost a two-zone mosaic ~100 MiB more peak RSS for no time)
            keep = not (
                c0 <= x0 and min(x0 + tw, level.width) <= c1
                and r0 <= y0 and min(y0 + th, level.height) <= r1
            )
            if array is not None or keep:
                if array is None:
                    array = table.put(key, _kept_tile(url, level, tx, ty, data))
                place_tile(out, array, tx, ty, tw, th, inside)
                continue
        # this tile's part of the window, in the tile's and in out's pixel coordinates
        a0, b0 = max(x0, c0), max(y0, r0)
        a1, b1 = min(x0 + tw, c1), min(y0 + th, r1)
        if a1 <= a0 or b1 <= b0:
            continue
        try:
            decode.decode_tile_into(
                fmt, data, out[:, b0 - r0 : b1 - r0, a0 - c0 : a1 - c0],
                slice(b0 - y0, b1 - y0), slice(a0 - x0, a1 - x0),
            )
        except TileDecodeError as exc:
            raise TileDecodeError(f"{url}: level {level.index} tile ({tx}, {ty}): {exc}") from exc


def _kept_tile(url: str, level: Level, tx: int, ty: int, data: Any) -> np.ndarray:
    """One whole decoded tile in memory of its own for the decoded-tile table: the codec
    writes straight into it where the format allows (`decode.writes_into`: no per-thread
    scratch and copy), in pages a dropped tile left where one did (`decoded_tiles.SLOTS`)."""
    fmt: Any = level.fmt
    if not decode.writes_into(fmt):
        return decoded_tiles.kept_copy(_decoded(url, level, tx, ty, data))
    th, tw = fmt.tile_height, fmt.tile_width
    tile = decoded_tiles.kept_empty((fmt.samples, th, tw), fmt.dtype)
    try:
        decode.decode_tile_into(fmt, data, tile, slice(0, th), slice(0, tw))
    except TileDecodeError as exc:
        raise TileDecodeError(f"{url}: level {level.index} tile ({tx}, {ty}): {exc}") from exc
    return tile


def _decoded(url: str, level: Level, tx: int, ty: int, data: Any) -> np.ndarray:
    """One whole decoded tile (a scratch buffer: copy it before the next decode)."""
    fmt: Any = level.fmt
    try:
        return decode.decode_tile(fmt, data, scratch=True)
    except TileDecodeError as exc:
        raise TileDecodeError(f"{url}: level {level.index} tile ({tx}, {ty}): {exc}") from exc


def finish_window(
    opened: OpenedFile, level: Level, bands: Sequence[int], out: np.ndarray, inside: Window,
    fetched: Fetched, fill: float,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Sparse and Rust-decoded tiles, masks, validity, band subset: (values, invalid, by_fill)
    as `apply_validity` gives them."""
    fmt: Any = level.fmt
    th, tw = fmt.tile_height, fmt.tile_width
    if fetched.sparse:
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
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Invalid pixels -> fill, then band subset: (values, invalid pixels, by_fill).

    One source of validity, in GDAL's order of precedence (what rasterio's
    masked reads use): the internal mask, else nodata, else alpha == 0 (for the
    other bands). `invalid` is what was found ((rows, cols) or (bands, rows, cols), of
    the kept bands), None when every pixel is valid or `by_fill` is True: integer nodata
    equal to the fill needed no scan (the invalid pixels already hold the fill).
    """
    invalid: np.ndarray | None = None
    by_fill = False
    if valid is not None:
        invalid = ~valid
        data[:, invalid] = fill
    elif opened.nodata is not None:
        # integer nodata pixels already hold the fill value when fill == nodata: skip the scan
        # (plain == : a NaN fill or nodata never occurs in an integer band)
        if data.dtype.kind != "f" and fill == opened.nodata:
            by_fill = True
        else:
            invalid = nodata_mask(data, opened.nodata)
            if invalid is not None:
                data[invalid] = fill
    elif opened.alpha_index is not None:
        transparent = data[opened.alpha_index] == 0
        invalid = np.zeros(data.shape, dtype=bool)  # the alpha band itself is valid (GDAL)
        if transparent.any():
            for i in range(data.shape[0]):
                if i != opened.alpha_index:
                    data[i][transparent] = fill
                    invalid[i] = transparent
    if tuple(bands) == tuple(range(1, data.shape[0] + 1)):
        return data, invalid, by_fill
    index = [b - 1 for b in bands]
    if invalid is not None and invalid.ndim == 3:
        invalid = invalid[index]
    return data[index], invalid, by_fill
