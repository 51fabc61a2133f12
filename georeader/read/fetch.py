"""The fetch step of a native read: a window's tile bytes, from the store or the range cache.

`AsyncGeoTIFFReader` plans nothing itself for natively read files: it hands the
header's values (`OpenedFile`, `Level`) and a window inside the image to
`fetch_native`, which lists the window's tiles (`plan_tiles`), leaves the sparse ones
out, and fetches the rest in one batched call per IFD (data, mask). Remote tiles that
imagecodecs decodes go through the per-process `range_cache` (`fetch_cached`), so
neighbouring chunks and read-aheads (`prefetch_window`) share their bytes, and every
request is the one guarded GET (`io.guarded_get`, with the read's retry policy); the
others go through async-tiff's `fetch_tiles`, and Rust-decoded codecs are decoded
here. Local files that need no event loop (`reads_locally`) are read by
`fetch_local` with `os.pread` in the calling thread. What comes back is a
`Fetched` for `assemble` to decode and place; every tile's length is checked
against the header first (`check_length`).

Data flows one way: header values in, bytes (or Rust-decoded arrays) out; this
module never calls back into the reader.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.windows import Window

from georeader.errors import (
    GeoreaderError,
    StoreReadError,
    TileDecodeError,
    UnsupportedLayoutError,
)
from georeader.header import route as routes
from georeader.header.model import Level, OpenedFile
from georeader.io import range_cache
from georeader.io.error_mapping import first_line, map_store_error
from georeader.io.guarded_get import policy_scope
from georeader.io.retry import RetryPolicy
from georeader.io.shutdown_safety import settled
from georeader.read import decode as tile_decode
from georeader.read import decode_bounds, decoded_tiles
from georeader.read.fetched import Fetched

Tile = tuple[int, int]


def plan_tiles(level: Level, inside: Window, url: str) -> tuple[list[Tile], list[Tile]]:
    """(tiles with bytes, sparse tiles) of a window inside a native level, row by row.

    One loop of integer arithmetic (it runs once per chunk); a band-interleaved tile asks
    the level (`Level.is_sparse`: bytes in some bands only are refused).
    """
    fmt = level.fmt
    if fmt is None:
        raise UnsupportedLayoutError(f"{url}: level {level.index} has no native decode recipe")
    tw, th = fmt.tile_width, fmt.tile_height
    c0, r0 = int(inside.col_off), int(inside.row_off)
    c1, r1 = c0 + int(inside.width), r0 + int(inside.height)
    nx = -(-level.width // tw)
    counts = level.tile_byte_counts
    planar = fmt.planar == 2
    present: list[Tile] = []
    sparse: list[Tile] = []
    for ty in range(r0 // th, (r1 - 1) // th + 1):
        for tx in range(c0 // tw, (c1 - 1) // tw + 1):
            empty = level.is_sparse(tx, ty, url) if planar else not counts[ty * nx + tx]
            (sparse if empty else present).append((tx, ty))
    return present, sparse


async def fetch_native(
    opened: OpenedFile, level: Level, inside: Window, url: str,
    retry: RetryPolicy | None = None, *, share_tiles: bool = False,
) -> Fetched:
    """Plan the tiles, fetch them in one go; Rust-decoded codecs and masks are decoded here.

    `retry`: the read's policy, handed to the one guarded GET (None: the context's, see
    `io.guarded_get.policy_scope`, else the default). Errors come out typed, naming the
    URL and the window (`map_store_error`). `share_tiles`: tiles the per-process
    decoded-tile table holds are taken from it (`Fetched.decoded`), neither fetched nor
    decoded again (`assemble` keeps what it decodes there).
    """
    try:
        return await _fetch_native(opened, level, inside, url, retry, share_tiles)
    except StoreReadError as exc:  # from the store layer, which does not know the window
        raise StoreReadError(f"{exc} (reading window {fmt_window(inside)})") from exc
    except GeoreaderError:
        raise
    except Exception as exc:
        raise map_store_error(exc, url, f"reading window {fmt_window(inside)}") from exc


def fmt_window(w: Window) -> str:
    """A window as error messages show it."""
    return (
        f"(col_off={int(w.col_off)}, row_off={int(w.row_off)}, "
        f"width={int(w.width)}, height={int(w.height)})"
    )


async def _fetch_native(
    opened: OpenedFile, level: Level, inside: Window, url: str, retry: RetryPolicy | None,
    share_tiles: bool = False,
) -> Fetched:
    present, sparse = plan_tiles(level, inside, url)
    counts = level.tile_byte_counts
    fetched = Fetched(sparse=sparse)
    cached = cacheable(opened, level)
    if cached and level.mask_ifd is None:  # the common remote case: one fetch, no gather
        if share_tiles and decoded_tiles.TABLE.capacity:
            present = _take_decoded(opened, level, present, fetched)
        data_tiles = await fetch_cached(opened, level, present, retry=retry) or []
        for (tx, ty), data in zip(present, data_tiles, strict=True):
            check_length(level, counts, tx, ty, data, url)
            fetched.raw.append((tx, ty, data))
        return fetched
    if retry is not None:  # async-tiff calls back into the store: the policy in the context
        with policy_scope(retry):
            return await _fetch_through_async_tiff(
                opened, level, present, fetched, cached, url, retry
            )
    return await _fetch_through_async_tiff(opened, level, present, fetched, cached, url, None)


def _take_decoded(
    opened: OpenedFile, level: Level, present: list[Tile], fetched: Fetched
) -> list[Tile]:
    """Move the tiles the decoded-tile table holds into `fetched.decoded`; the rest."""
    table = decoded_tiles.TABLE
    source, index = opened.tile_cache_id, level.index
    rest: list[Tile] = []
    for tx, ty in present:
        tile = table.get((source, index, tx, ty), count=False)
        if tile is None:
            rest.append((tx, ty))
        else:
            fetched.decoded.append((tx, ty, tile))
    return rest


async def _fetch_through_async_tiff(
    opened: OpenedFile, level: Level, present: list[Tile], fetched: Fetched, cached: bool,
    url: str, retry: RetryPolicy | None,
) -> Fetched:
    """Masks, Rust-decoded codecs and stores Python cannot call: async-tiff fetches."""
    fmt: Any = level.fmt
    th, tw = fmt.tile_height, fmt.tile_width
    nx = math.ceil(level.width / tw)
    counts = level.tile_byte_counts
    mask_present: list[Tile] = []
    if level.mask_ifd is not None:
        mcounts = level.mask_byte_counts
        mask_present = [(tx, ty) for tx, ty in present + fetched.sparse
                        if mcounts[ty * nx + tx] > 0]
        mask_present.sort(key=lambda t: (t[1], t[0]))
    fetches = [
        fetch_cached(opened, level, present, retry=retry)
        if cached
        else fetch_tiles(level.data_ifd, present)
    ]
    if level.mask_ifd is not None:
        fetches.append(fetch_tiles(level.mask_ifd, mask_present))
    results = await asyncio.gather(*fetches)
    data_tiles = results[0] or []

    if cached or fmt.decoder == "imagecodecs":
        if cached:
            fetched.raw = [(tx, ty, b) for b, (tx, ty) in zip(data_tiles, present, strict=True)]
        else:
            fetched.raw = [
                (tx, ty, t.compressed_bytes)
                for t, (tx, ty) in zip(data_tiles, present, strict=True)
            ]
        for tx, ty, data in fetched.raw:
            check_length(level, counts, tx, ty, data, url)
    else:
        # a Tile object is consumed by decode(): read nothing from it afterwards
        name = tile_decode.COMPRESSION_NAMES.get(fmt.compression, str(fmt.compression))

        async def decode(tile: Any, tx: int, ty: int) -> Any:
            try:
                return await settled(tile.decode())
            except Exception as exc:  # async-tiff's decoders: ValueError, AsyncTiffException
                why = first_line(exc)
                if "panicked" in why:  # a Rust panic says nothing of what it could not read
                    why = f"async-tiff's decoder gave up on its bytes ({why})"
                raise TileDecodeError(
                    f"{url}: level {level.index}: cannot decode the {name} tile ({tx}, {ty}): "
                    f"{why}"
                ) from exc

        try:
            for t, (tx, ty) in zip(data_tiles, present, strict=True):
                data = t.compressed_bytes
                check_length(level, counts, tx, ty, data, url)
                decode_bounds.check_jpeg(bytes(data), th, tw)  # Rust allocates what it declares
        except TileDecodeError as exc:
            raise TileDecodeError(f"{url}: level {level.index}: {exc}") from exc
        arrays = await asyncio.gather(
            *(decode(t, tx, ty) for t, (tx, ty) in zip(data_tiles, present, strict=True))
        )
        fetched.decoded = [
            (tx, ty, tile_decode.rust_array_to_bands(a, fmt.planar))
            for (tx, ty), a in zip(present, arrays, strict=True)
        ]
    if level.mask_ifd is not None:
        mask_tiles = results[1] or []
        fetched.masks = [
            (tx, ty, t.compressed_bytes)
            for (tx, ty), t in zip(mask_present, mask_tiles, strict=True)
        ]
        for tx, ty, data in fetched.masks:
            check_length(level, level.mask_byte_counts, tx, ty, data, url, "mask ")
    return fetched


def forget_file(tile_cache_id: str) -> int:
    """Forget one opened file's tiles, fetched (the range cache) and decoded (`decoded_tiles`),
    when its caller knows that no read in this process will ask for them again: a STAC
    load's chunk tasks call it once the last chunk that reads the file is done
    (`daskcog.stac.load_graph`). Without it the bytes stay until the LRU bounds push
    them out, so a load that sends less than the bounds ends with both tables full (the
    time series of issue 21: 128 + 32 MiB). Returns the bytes dropped. Here, where both
    tables are imported, not in `decoded_tiles` (georeader's import chains stay <= 6)."""
    return decoded_tiles.TABLE.forget(tile_cache_id) + range_cache.CACHE.forget(tile_cache_id)


# -- local files, in the calling thread ---------------------------------------
def reads_locally(opened: OpenedFile, level: Level) -> bool:
    """True when a window can be read without the event loop: a local file whose
    tiles imagecodecs decodes and that has no mask IFD.

    Measured on the 8192x8192 DEFLATE benchmark (64 chunks of 1024, threaded
    scheduler, 2 cores): fetching each chunk's tiles through the I/O loop costs
    ~1.5 ms of thread hand-offs per chunk, 0.24 s in all against 0.17 s for
    `os.pread` in the task's own thread (rioxarray lock=False: 0.17 s). Remote
    stores always go through the loop, where concurrency pays.
    """
    fmt = level.fmt
    return (
        opened.location.is_local
        and opened.layout.route == routes.NATIVE
        and fmt is not None
        and fmt.decoder == "imagecodecs"
        and level.mask_ifd is None
    )


def fetch_local(opened: OpenedFile, level: Level, inside: Window, url: str) -> Fetched:
    """A `reads_locally` window's tiles by `os.pread` in the calling thread (no event loop)."""
    present, sparse = plan_tiles(level, inside, url)
    fmt: Any = level.fmt  # plan_tiles checked it is there
    fd = opened.local_fd()
    offsets = level.tile_offsets
    counts = level.tile_byte_counts
    nx = -(-level.width // fmt.tile_width)
    fetched = Fetched(sparse=sparse)
    planar = fmt.planar == 2
    for tx, ty in present:
        try:
            if planar:
                data: Any = [
                    os.pread(fd, int(counts[i]), int(offsets[i]))
                    for i in level.tile_indices(tx, ty)
                ]
            else:
                i = ty * nx + tx
                data = os.pread(fd, int(counts[i]), int(offsets[i]))
        except OSError as exc:
            raise map_store_error(exc, url, f"reading tile ({tx}, {ty})") from exc
        check_length(level, counts, tx, ty, data, url)
        fetched.raw.append((tx, ty, data))
    return fetched


# -- tile bytes through the per-process range cache ------------------------
def cacheable(opened: OpenedFile, level: Level) -> bool:
    """Remote, pixel-interleaved tiles imagecodecs decodes: their bytes go through
    `range_cache` (local files are pread; planar and Rust-decoded tiles keep async-tiff's path)."""
    fmt = level.fmt
    return (
        range_cache.CACHE.capacity > 0
        and not opened.location.is_local
        and fmt is not None
        and fmt.decoder == "imagecodecs"
        and fmt.planar != 2
    )


def tile_ranges(level: Level, tiles: Sequence[Tile]) -> list[tuple[int, int]]:
    """(offset, length) in the file of each tile's bytes (pixel-interleaved files)."""
    fmt: Any = level.fmt  # native levels only (the fetch planned their tiles)
    nx = -(-level.width // fmt.tile_width)
    index = []
    for tx, ty in tiles:  # a loop: no comprehension call on the per-chunk path
        index.append(ty * nx + tx)
    return list(
        zip(level.tile_offsets[index].tolist(), level.tile_byte_counts[index].tolist(), strict=True)
    )


async def fetch_cached(
    opened: OpenedFile, level: Level, tiles: list[Tile], prefetch_budget: int | None = None,
    retry: RetryPolicy | None = None,
) -> list[Any] | None:
    """The tiles' bytes through the range cache; None when a read-ahead is over its budget.

    Stores Python calls are asked through `range_cache.fetch_runs` (the one guarded GET,
    with `retry`); async-tiff's native stores through its `fetch_tiles`.
    """
    if not tiles:
        return []
    ranges = tile_ranges(level, tiles)
    store = opened.store
    fetch: range_cache.Fetch
    if hasattr(store, "get_range_async"):
        fetch = functools.partial(range_cache.fetch_runs, store, opened.key, ranges, retry=retry)
    else:  # async-tiff's native stores

        async def fetch(indices: list[int]) -> list[Any]:
            got = await settled(level.data_ifd.fetch_tiles([tiles[i] for i in indices]))
            return [t.compressed_bytes for t in got]

    return await range_cache.CACHE.get(
        opened.tile_cache_id, ranges, fetch, prefetch_budget=prefetch_budget
    )


async def prefetch_window(
    opened: OpenedFile, level: Level, window: tuple[int, int, int, int], *, budget: int,
    retry: RetryPolicy | None = None,
) -> bool:
    """Start fetching a window's tiles into the range cache, for a read that is likely next.

    `window`: (col_off, row_off, width, height) in the level's pixels. Returns False
    (fetching nothing) where a read would not use the cache, or when the read-ahead bytes
    no read has used yet would exceed `budget`. Errors are left to the read that needs the
    tiles: it fetches again.
    """
    if (
        not cacheable(opened, level)
        or opened.layout.route != routes.NATIVE
        or level.mask_ifd is not None
    ):
        return False
    col_off, row_off, width, height = window
    c0, r0 = max(col_off, 0), max(row_off, 0)
    c1, r1 = min(col_off + width, level.width), min(row_off + height, level.height)
    if c1 <= c0 or r1 <= r0:
        return False
    try:
        tiles, _ = plan_tiles(level, Window(c0, r0, c1 - c0, r1 - r0), opened.location.url)
        fetched = await fetch_cached(opened, level, tiles, prefetch_budget=budget, retry=retry)
    except Exception:  # noqa: BLE001 - a failed read-ahead costs nothing but its bytes
        return False
    return fetched is not None


async def fetch_tiles(ifd: Any, xy: list[Tile]) -> list[Any] | None:
    """Fetch tiles in one async-tiff call: ranges less than 1 MiB apart become one request.

    Measured against one concurrent request per tile on the S3 test server with
    50 ms latency: the same time for single COGs (2.22-2.31 s either way) and
    slower for mosaics (1.56 s with 474 requests against 1.29 s with 118):
    fewer, larger requests win on this store (and cost less on a paid one).
    """
    if not xy:
        return None
    return await settled(ifd.fetch_tiles(xy))


def check_length(
    level: Level, counts: np.ndarray, tx: int, ty: int, data: Any, url: str, what: str = ""
) -> None:
    """A tile's bytes must be as long as its byte count: stores clamp ranges at the end
    of the object, so a truncated file would otherwise decode a short tile."""
    fmt: Any = level.fmt  # native levels only (the fetch planned their tiles)
    nx = -(-level.width // fmt.tile_width)
    ntiles = nx * -(-level.height // fmt.tile_height)
    parts = data if isinstance(data, list) else [data]
    for band, part in enumerate(parts):
        expected = int(counts[ty * nx + tx + band * ntiles])
        if len(part) != expected:
            raise TileDecodeError(
                f"{url}: level {level.index} {what}tile ({tx}, {ty}): {len(part)} of its "
                f"{expected} bytes exist; the file is truncated"
            )
