"""A bounded per-process table of decoded tiles: a tile that several windows need is decoded once.

Why: a window's edge rarely falls on a tile edge, so a tile under the border of two output
chunks is read by both; the range cache already fetches its bytes once, but each window
decoded them again (a time series of revisits across two UTM zones: 792 decodes for 384
distinct tiles, ~0.5 s of CPU; benchmarks/RESULTS.md, issue 21).

Keys are (header, level, tile column, tile row): the header's `tile_cache_id` names one
opened header of one file (a file re-opened after a change gets a new id, so its old pixels
are never served), and a tile is decoded with all its samples (the band subset is taken
after assembly), so the band subset is not part of the key. Values are read-only arrays
(`writeable=False`): a caller copies out of them (`assemble.place_tile`) and cannot change
a cached tile. Bound: `Settings.decoded_tile_bytes` bytes (LRU by bytes; 0 turns the table
off), registered as "georeader.decoded_tiles" (`info()`, `clear()`, emptied in a forked child).
"""

from __future__ import annotations

import mmap
import threading
from dataclasses import dataclass
from typing import Any

import cachetools
import numpy as np

from georeader.io.range_cache import CACHE as RANGE_CACHE
from georeader.process_state import Settings, register, settings

Key = tuple[str, int, int, int]


@dataclass(frozen=True)
class DecodedTilesInfo:
    """What the table holds and how often it answered."""

    size_bytes: int
    capacity: int
    entries: int
    hits: int
    misses: int


class DecodedTiles:
    """LRU of decoded tiles bounded by their bytes; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self._reset(capacity)

    def _reset(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._data: cachetools.LRUCache[Key, np.ndarray] = cachetools.LRUCache(
            max(1, capacity), getsizeof=_nbytes
        )
        self.hits = self.misses = 0

    def get(self, key: Key, *, count: bool = True) -> np.ndarray | None:
        """The tile, or None. A hit counts either way; a miss only with `count` (the fetch
        step looks first, the decode step looks again and counts the miss it decodes)."""
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self.hits += 1
            elif count:
                self.misses += 1
            return found

    def put(self, key: Key, tile: np.ndarray) -> np.ndarray:
        """Keep `tile` (which the caller hands over: no one else may write it); returns it,
        read-only. A tile larger than the whole bound is not kept."""
        tile.flags.writeable = False
        if tile.nbytes <= self.capacity:
            with self._lock:
                self._data[key] = tile
        return tile

    def forget(self, source: str) -> int:
        """Drop the tiles of one header (`tile_cache_id`); returns the bytes dropped."""
        with self._lock:
            keys = [key for key in self._data if key[0] == source]
            dropped = 0
            for key in keys:
                dropped += int(self._data.pop(key).nbytes)
            return dropped

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def info(self) -> DecodedTilesInfo:
        return DecodedTilesInfo(
            int(self._data.currsize), self.capacity, len(self._data), self.hits, self.misses
        )


MMAP_MIN_BYTES = 64 << 10
"""Tiles from this size up are kept in their own mapping (`kept_copy`)."""


def kept_copy(tile: np.ndarray) -> np.ndarray:
    """A copy of `tile` in its own anonymous mapping, returned to the system when dropped.

    Why not numpy's (malloc's) memory: tiles kept here are freed later, by whichever thread
    evicts them, and glibc keeps such freed blocks in its per-thread arenas. Measured on a
    two-zone mosaic of 64 scenes: kept tiles in malloc'd arrays raised peak RSS by ~150 MiB
    with a 32 MiB table."""
    if tile.nbytes < MMAP_MIN_BYTES:  # small tiles: malloc's own pools serve them well, and
        return tile.copy()  # one mapping each could exhaust the process's map count
    buffer = mmap.mmap(-1, tile.nbytes)
    out = np.frombuffer(buffer, tile.dtype, count=tile.size).reshape(tile.shape)
    out[...] = tile
    return out


def forget_file(tile_cache_id: str) -> int:
    """Forget one opened file's tiles, fetched (the range cache) and decoded (this table),
    when its caller knows that no read in this process will ask for them again: a STAC
    load's chunk tasks call it once the last chunk that reads the file is done
    (`daskcog.stac.load_graph`). Without it the bytes stay until the LRU bounds push
    them out, so a load that sends less than the bounds ends with both tables full (the
    time series of issue 21: 128 + 32 MiB). Returns the bytes dropped."""
    return TABLE.forget(tile_cache_id) + RANGE_CACHE.forget(tile_cache_id)


def _nbytes(tile: Any) -> int:
    return int(tile.nbytes)


def _on_settings(old: Settings, new: Settings) -> None:
    if old.decoded_tile_bytes != new.decoded_tile_bytes:
        TABLE._reset(new.decoded_tile_bytes)


TABLE = DecodedTiles(settings().decoded_tile_bytes)
register(
    "georeader.decoded_tiles", info=TABLE.info, clear=TABLE.clear,
    after_fork=lambda: TABLE._reset(TABLE.capacity), on_settings=_on_settings,
)
