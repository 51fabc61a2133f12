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

from dataclasses import dataclass
from typing import Any

import numpy as np

from georeader.process_state import Table
from georeader.read import spare_pages

Key = tuple[str, int, int, int]


@dataclass(frozen=True)
class DecodedTilesInfo:
    """What the table holds and how often it answered."""

    size_bytes: int
    capacity: int
    entries: int
    hits: int
    misses: int


class DecodedTiles(Table[Key, np.ndarray]):
    """LRU of decoded tiles bounded by their bytes (`Settings.decoded_tile_bytes`); thread-safe
    (georeader's one LRU, `process_state.Table`)."""

    def __init__(self) -> None:
        super().__init__("georeader.decoded_tiles", lambda s: s.decoded_tile_bytes, size=_nbytes)

    def put(self, key: Key, tile: np.ndarray) -> np.ndarray:
        """Keep `tile` (which the caller hands over: no one else may write it); returns it,
        read-only. A tile larger than the whole bound is not kept."""
        tile.flags.writeable = False
        self[key] = tile
        return tile

    @property
    def size_bytes(self) -> int:
        """Bytes of the tiles held now."""
        return int(self._data.currsize)

    def forget(self, source: str) -> int:
        """Drop the tiles of one header (`tile_cache_id`); returns the bytes dropped."""
        return self.drop_where(lambda key: key[0] == source)

    def info(self) -> DecodedTilesInfo:  # type: ignore[override]
        return DecodedTilesInfo(
            int(self._data.currsize), self.capacity, len(self._data), self.hits, self.misses
        )


MMAP_MIN_BYTES = spare_pages.MIN_BYTES
"""Tiles from this size up are kept in their own mapping (`kept_copy`)."""


def _spare_bound() -> int:
    """Spare pages of dropped tiles kept for the next ones: kept and spare tiles together
    stay within the table's bound plus a quarter of it (tiles dropped while a reader still
    holds them come back when the table is full again: with no margin they were unmapped
    and a two-zone mosaic mapped ~230 fresh tiles instead of ~80; measured, the peak was
    no higher with the margin)."""
    return max(0, TABLE.capacity + TABLE.capacity // 4 - TABLE.size_bytes)


SLOTS = spare_pages.SparePages("georeader.decoded_tile_slots", _spare_bound)
"""Why a kept tile's pages are reused: a fresh mapping costs a page fault per 4 KiB at its
first write, and a two-zone mosaic keeps ~700 tiles of 512 KiB over a load while the table
holds at most 64 (32 MiB): 90k minor faults, ~0.35 s of CPU, for memory the process had
just given back (issue 21, benchmarks/RESULTS.md). daskcog clears the spare pages when a
load's pass is done, before Dask joins the chunks."""


def kept_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A writable array for a tile the table will keep, in its own mapping (see `kept_copy`),
    in a dropped tile's pages when one left some (`SLOTS`): the caller writes every
    element."""
    return SLOTS.empty(shape, dtype)


def kept_copy(tile: np.ndarray) -> np.ndarray:
    """A copy of `tile` in its own anonymous mapping, returned to the system (or to the next
    kept tile, `SLOTS`) when dropped.

    Why not numpy's (malloc's) memory: tiles kept here are freed later, by whichever thread
    evicts them, and glibc keeps such freed blocks in its per-thread arenas. Measured on a
    two-zone mosaic of 64 scenes: kept tiles in malloc'd arrays raised peak RSS by ~150 MiB
    with a 32 MiB table."""
    if tile.nbytes < MMAP_MIN_BYTES:  # small tiles: malloc's own pools serve them well, and
        return tile.copy()  # one mapping each could exhaust the process's map count
    out = SLOTS.empty(tile.shape, tile.dtype)
    out[...] = tile
    return out


def _nbytes(tile: Any) -> int:
    return int(tile.nbytes)


TABLE = DecodedTiles()
