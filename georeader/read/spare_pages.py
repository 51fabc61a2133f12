"""Arrays in memory that goes back to a pool, not to the system, when the array is freed.

Why: on the benchmark machine the first write to a fresh page costs a minor page fault,
~7 microseconds per 4 KiB (~1.5-2 ms per MiB, counted as system time). A mosaic's read
makes a fresh array per window and per kept tile, frees it a few milliseconds later,
and the next read of the same size faults the same amount in again: glibc hands large
blocks back to the system (its own mappings, or the top of a thread's arena trimmed)
and numpy's large arrays come from there. On a two-zone mosaic of 64 scenes ~half of
the 1.7 GB of pages faulted in were memory just freed (issue 21, benchmarks/RESULTS.md).
The process's allocator settings are its owner's to choose (no `mallopt` here): this
module reuses the pages of the few array kinds the read path makes over and over.

`SparePages.empty(shape, dtype)` returns an array in a private anonymous mapping of a
size class (an eighth of an octave: at most 12.5 % more address space, and a page
never written is never faulted in). When that array and every view of it are freed (a
`weakref.finalize` on the array all its views refer to), the mapping goes to the pool's
spare list, within the pool's bound, and the next array of that size class is written
into its pages, already resident. Past the bound it is unmapped. `clear()` drops every
spare mapping. Private mappings: a forked child writes copy-on-write pages, never the
parent's (and starts with no spare mapping).

The pages of a spare mapping hold the previous array's values: `empty` is `np.empty`,
the caller writes what it reads.
"""

from __future__ import annotations

import math
import mmap
import threading
import weakref
from collections.abc import Callable

import numpy as np

from georeader.process_state import register

MIN_BYTES = 64 << 10
"""Arrays smaller than this are plain `np.empty` (malloc's own pools serve them well, and a
mapping each could exhaust the process's map count)."""


def size_class(nbytes: int) -> int:
    """`nbytes` rounded up to a page and to an eighth of an octave (1, 1.125, 1.25, ... x 2**k)."""
    pages = -(-nbytes // mmap.PAGESIZE)
    if pages <= 8:
        return pages * mmap.PAGESIZE
    step = 1 << (math.frexp(pages)[1] - 4)  # an eighth of the octave `pages` is in
    return -(-pages // step) * step * mmap.PAGESIZE


class SparePages:
    """A pool of private anonymous mappings, by size class, each back in the pool when the
    array made on it is freed. Thread-safe. `spare_bound()` gives the bytes of spare
    mappings it may hold (read at each return)."""

    def __init__(self, name: str, spare_bound: Callable[[], int]) -> None:
        self.name = name
        self._spare_bound = spare_bound
        self._lock = threading.RLock()  # a finalizer may run inside `take` on this thread
        self._spare: dict[int, list[mmap.mmap]] = {}
        self.spare_bytes = 0
        self.made = 0
        self.reused = 0
        register(name, info=self.info, clear=self.clear, after_fork=self._after_fork)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised writable C-contiguous array, in spare pages when there are some."""
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes < MIN_BYTES:
            return np.empty(shape, dtype)
        buffer = self._take(size_class(nbytes))
        flat = np.frombuffer(buffer, dtype, count=count)
        # every view of the array (a reshape, a slice, a transpose) refers to `flat`: once
        # it is freed no array reads the mapping any more, and the next array may use it
        weakref.finalize(flat, self._give, buffer)
        return flat.reshape(shape)

    def _take(self, nbytes: int) -> mmap.mmap:
        with self._lock:
            spare = self._spare.get(nbytes)
            if spare:
                self.spare_bytes -= nbytes
                self.reused += 1
                return spare.pop()
            self.made += 1
        return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def _give(self, buffer: mmap.mmap) -> None:
        nbytes = len(buffer)
        with self._lock:
            if self.spare_bytes + nbytes <= self._spare_bound():
                self._spare.setdefault(nbytes, []).append(buffer)
                self.spare_bytes += nbytes
        # else dropped: unmapped once the dying array has released it (it still refers to
        # it while its finalizer runs, so `close()` would refuse here)

    def clear(self) -> None:
        """Drop every spare mapping (each is unmapped as it is freed)."""
        with self._lock:
            self._spare, self.spare_bytes = {}, 0

    def _after_fork(self) -> None:
        self._lock = threading.RLock()  # the parent's may be held by a thread not here
        self._spare, self.spare_bytes = {}, 0

    def info(self) -> dict[str, int]:
        return {"spare_bytes": self.spare_bytes, "made": self.made, "reused": self.reused}
