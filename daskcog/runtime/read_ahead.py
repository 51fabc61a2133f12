"""Read-ahead: while a chunk task waits for its tiles, fetch the tiles of the chunks likely next.

Why: a Dask worker runs at most `nthreads` chunk tasks at once, and each holds its
thread through a full round trip, so on a 50 ms store 64 chunks on 8 threads need
8 round trips in sequence however fast the rest is. The I/O loop has no such limit:
it can have the next chunks' requests in flight while the current ones decode.

Which chunks come next: Dask's order is not row-major (a `.sum()` walks the grid
backwards in 2 x 2 blocks, following its reduction tree), but it is spatially local
on every scheduler. So each chunk read asks for its nearest neighbours on the chunk
grid that this process has not read or requested yet, nearest first, and stops at
the byte budget. Each chunk is read ahead at most once per process (a bounded set of
chunk indices per array), so a finished compute leaves nothing behind to fetch.

Bounds: read-ahead bytes no read has used yet stay under dask.config's
`daskcog.readahead-bytes` (16 MiB; 0 turns read-ahead off), enforced by georeader's
range cache, which holds the bytes (`georeader.range_cache`, its own capacity).
Read-ahead applies only to remote files read through that cache, and only to windows
that are whole chunks of the array's grid (a sliced array's sub-windows are read as
asked).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.config

from daskcog.runtime import process_state, settings
from georeader import prefetch_window
from georeader.io import RANGE_CACHE

BUDGET: int | None = None
"""A fixed budget in bytes (tests); None: dask.config's `daskcog.readahead-bytes`, read at
each chunk in the process that reads, so `dask.config.set` takes effect at once."""
RADIUS = 2
"""Neighbours up to this many chunks away (Chebyshev) are candidates."""



@dataclass(frozen=True)
class ChunkGrid:
    """A regular chunk grid in the level's pixels: a few ints whatever the chunk count (the
    chunks of an array; a mosaic's output grid, a georeferenced raster, is `mosaics.grid.Grid`).

    Chunks of `row_step` x `col_step` from (`row_off`, `col_off`), the last ones cut at
    `height` / `width` (what `chunking.tile_chunks` makes; other grids get no read-ahead).
    """

    row_off: int
    col_off: int
    row_step: int
    col_step: int
    height: int
    width: int

    @classmethod
    def from_chunks(
        cls, row_off: int, col_off: int, rows: Sequence[int], cols: Sequence[int]
    ) -> ChunkGrid | None:
        def regular(sizes: Sequence[int]) -> bool:
            return (
                len(sizes) > 0 and all(s == sizes[0] for s in sizes[:-1]) and sizes[-1] <= sizes[0]
            )

        if not (regular(rows) and regular(cols)):
            return None
        return cls(row_off, col_off, rows[0], cols[0], sum(rows), sum(cols))

    @property
    def shape(self) -> tuple[int, int]:
        return (-(-self.height // self.row_step), -(-self.width // self.col_step))

    def index(self, row_off: int, col_off: int, height: int, width: int) -> tuple[int, int] | None:
        """(i, j) of the chunk that is exactly this window, or None (once per chunk: plain
        arithmetic, no further call)."""
        i, ri = divmod(row_off - self.row_off, self.row_step)
        j, rj = divmod(col_off - self.col_off, self.col_step)
        if ri or rj or i < 0 or j < 0:
            return None
        r0, c0 = i * self.row_step, j * self.col_step
        if r0 >= self.height or c0 >= self.width:
            return None
        if (height, width) != (min(self.row_step, self.height - r0),
                               min(self.col_step, self.width - c0)):
            return None
        return i, j

    def window(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(col_off, row_off, width, height) of chunk (i, j)."""
        r0, c0 = i * self.row_step, j * self.col_step
        return (self.col_off + c0, self.row_off + r0, min(self.col_step, self.width - c0),
                min(self.row_step, self.height - r0))

    def neighbours(self, i: int, j: int, radius: int = RADIUS) -> list[tuple[int, int]]:
        """Chunks around (i, j), nearest ring first, within the grid."""
        ni, nj = -(-self.height // self.row_step), -(-self.width // self.col_step)
        out = []
        for di, dj in _OFFSETS if radius == RADIUS else _offsets(radius):
            a, b = i + di, j + dj
            if 0 <= a < ni and 0 <= b < nj:
                out.append((a, b))
        return out


def _offsets(radius: int) -> list[tuple[int, int]]:
    """(di, dj) of the chunks within `radius`, ring by ring, each ring by Manhattan distance
    then position (the order `neighbours` gives)."""
    cells = [(di, dj) for di in range(-radius, radius + 1) for dj in range(-radius, radius + 1)
             if (di, dj) != (0, 0)]
    return sorted(cells, key=lambda d: (max(abs(d[0]), abs(d[1])), abs(d[0]) + abs(d[1]), d))


_OFFSETS = _offsets(RADIUS)


class Requested:
    """Per process: which chunks of which array were read or read ahead already."""

    def __init__(self, arrays: int | None = None) -> None:
        """`arrays`: arrays remembered (LRU); None: dask.config's `daskcog.readahead-arrays`."""
        self._arrays = arrays
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, set[tuple[int, int]]] = OrderedDict()

    def claim(self, array: str, chunks: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """Mark `chunks` as requested; return those nobody had requested before, in order."""
        with self._lock:
            seen = self._seen.get(array)
            if seen is None:
                seen = self._seen[array] = set()
                bound = (
                    settings.get_int("readahead-arrays") if self._arrays is None else self._arrays
                )
                while len(self._seen) > bound:
                    self._seen.popitem(last=False)
            self._seen.move_to_end(array)
            new = []
            for c in chunks:  # a loop: no comprehension call once per chunk
                if c not in seen:
                    new.append(c)
                    seen.add(c)
            return new

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (a thread of the parent may have held it)."""
        self._lock = threading.Lock()
        self._seen.clear()

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"arrays": len(self._seen), "chunks": sum(map(len, self._seen.values()))}

    def release(self, array: str, chunk: tuple[int, int]) -> None:
        """A read-ahead that was refused: the chunk may be asked for again."""
        with self._lock:
            seen = self._seen.get(array)
            if seen is not None:
                seen.discard(chunk)


REQUESTED = Requested()
process_state.register(
    "daskcog.read-ahead", info=REQUESTED.info, clear=REQUESTED.clear,
    after_fork=REQUESTED.after_fork,
)


def budget_bytes() -> int:
    """Read-ahead bytes not yet used that this process may hold (0: read-ahead off)."""
    return settings.get_int("readahead-bytes") if BUDGET is None else BUDGET


def clear() -> None:
    """Forget which chunks were requested (the bytes are the range cache's)."""
    REQUESTED.clear()


_tasks: set[asyncio.Future[Any]] = set()  # read-ahead tasks in flight (kept from the GC)


def start(
    opened: Any, level: Any, grid: ChunkGrid, array: str, window: tuple[int, int, int, int],
    retry: Any = None,
) -> None:
    """Claim `window`'s chunk (col_off, row_off, width, height) and start read-ahead of its
    unrequested neighbours on this loop (georeader's `prefetch_window` over the same header).

    Runs once per remote chunk: the budget is read from dask.config here (no helper call),
    the rest is plain arithmetic.
    """
    budget = BUDGET
    if budget is None:
        budget = int(dask.config.get("daskcog.readahead-bytes"))
    if budget <= 0 or RANGE_CACHE.unused_prefetch_bytes >= budget:
        return
    col_off, row_off, width, height = window
    here = grid.index(row_off, col_off, height, width)
    if here is None:
        return
    REQUESTED.claim(array, [here])
    for ij in REQUESTED.claim(array, grid.neighbours(*here)):
        task = asyncio.ensure_future(
            prefetch_window(opened, level, grid.window(*ij), budget=budget, retry=retry)
        )
        _tasks.add(task)
        task.add_done_callback(functools.partial(_done, array, ij))


def _done(array: str, ij: tuple[int, int], task: asyncio.Future[Any]) -> None:
    _tasks.discard(task)
    if task.cancelled() or task.exception() is not None or not task.result():
        REQUESTED.release(array, ij)  # refused or failed: a later read may ask again
