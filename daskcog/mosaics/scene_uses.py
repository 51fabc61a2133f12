"""How many chunk tasks of an array still read each file, per process: the last one releases it.

Why: georeader keeps fetched tile bytes (its range cache, 128 MiB) and decoded tiles (32 MiB)
in LRU tables so that two chunks sharing a tile fetch and decode it once. A load that reads
less than those bounds ends with both tables full of tiles that no chunk will read again:
on the time series of issue 21 (96 scenes, 150 MiB sent) they held 160 MiB at the end, the
largest part of daskcog's peak memory above odc-stac's. The graph knows which chunks read
which scenes, so the chunk task that is the last reader of a file in this process tells
georeader to forget the file's tiles (`georeader.forget_file`) instead of leaving them to
the LRU.

A table per array: for every file, the number of chunk tasks (step, band chunk, y, x) whose
scenes include it, worked out from the same footprint test the chunk tasks use. Each
finished chunk counts its files down; a file at zero is released. A chunk finished a
second time (the array computed again) starts a new pass with fresh counts. Only a hint to
the caches, never to what a read returns: a count too high keeps the LRU's behaviour, one
too low (a file two arrays computed together share) fetches the tiles again. Chunks on
other processes are not seen, so on a cluster a file is released by a worker only when
all its chunks ran there (else the LRU, as before).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import cachetools
import numpy as np

from daskcog.mosaics.warp_plans import PLANS
from daskcog.runtime import process_state, settings
from daskcog.runtime.reader_cache import CACHE
from georeader import forget_file

MAX_ARRAYS = 16
"""Arrays whose counts a process keeps (LRU)."""
MAX_WORK = 50_000_000
"""Tables cost (spatial chunks x scenes) footprint comparisons to build; arrays above this
get none (the LRU alone, as before)."""

Counts = dict[str, int]
"""File URL -> chunk tasks that read it."""


def enabled() -> bool:
    """dask.config's `daskcog.release-read-tiles` (true by default)."""
    return settings.get_bool("release-read-tiles")


def _pass_done() -> None:
    """Every file of an array is released (its last chunks are done): hand the memory the
    pass freed back to the system before Dask joins the chunks into one array (glibc's
    free pages, and the spare pages georeader kept for the next decoded tiles)."""
    process_state.clear("georeader.decoded_tile_slots", "daskcog.source-scratch")
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


Built = tuple[Counts, dict[str, Any], dict[str, Hashable], int]
"""What an array's table is made of: file URL -> chunk tasks that read it, URL -> store
options, URL -> the scene's grid (`warp.grid_tag`), the array's chunk count."""


class _Table:
    __slots__ = ("counts", "done", "grid_files", "grids", "options")

    def __init__(
        self, counts: Counts, options: dict[str, Any], grids: dict[str, Hashable], chunks: int
    ) -> None:
        self.counts = counts
        self.options = options
        self.grids = grids
        self.grid_files: dict[Hashable, int] = {}
        """Per grid: files of it not released yet (its warp plans go with the last)."""
        for url in counts:
            tag = grids.get(url)
            if tag is not None:
                self.grid_files[tag] = self.grid_files.get(tag, 0) + 1
        self.done = np.zeros(chunks, dtype=bool)


class SceneUses:
    """Per-process use counts of each array's files (thread-safe). Its own lock around a
    cachetools LRU of arrays (not a `process_state.Table`): a chunk's count-down reads and
    changes one array's table in one step under that lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: cachetools.LRUCache[Hashable, _Table | None] = cachetools.LRUCache(
            MAX_ARRAYS
        )
        self.released = 0
        """Files released so far (tests, benchmarks)."""

    def done(
        self, array: Hashable, chunk: int, files: Iterable[str],
        build: Callable[[], Built | None],
    ) -> None:
        """Chunk number `chunk` of `array` has read `files` (URLs, once per read scene): count
        them down and release those no other chunk of the array reads, and the warp plans
        of a grid whose files are all released. `build` makes the array's table at its
        first chunk in this process (`Built`), or None (too large: no table)."""
        release: list[tuple[str, dict[str, Any]]] = []
        grids_done: list[Hashable] = []
        with self._lock:
            # a cachetools read refreshes the array's age
            table = self._tables[array] if array in self._tables else self._new(array, build)
            if table is None:
                return
            if not 0 <= chunk < len(table.done):
                return
            if table.done[chunk]:  # computed again: a new pass
                table = self._new(array, build)
                if table is None:
                    return
            table.done[chunk] = True
            counts = table.counts
            for url in files:
                left = counts.get(url)
                if left is None:
                    continue
                if left <= 1:
                    del counts[url]
                    release.append((url, table.options.get(url, {})))
                    tag = table.grids.get(url)
                    if tag is not None:
                        files_left = table.grid_files.get(tag, 0) - 1
                        if files_left <= 0:
                            table.grid_files.pop(tag, None)
                            grids_done.append(tag)
                        else:
                            table.grid_files[tag] = files_left
                else:
                    counts[url] = left - 1
            self.released += len(release)
            finished = bool(release) and not counts
        for url, options in release:
            opened = CACHE.peek(url, options)
            if opened is not None:
                forget_file(opened.tile_cache_id)
        for tag in grids_done:
            PLANS.forget(tag)
        if finished:
            _pass_done()

    def _new(
        self, array: Hashable,
        build: Callable[[], Built | None],
    ) -> _Table | None:
        made = build()
        table = None if made is None else _Table(*made)
        self._tables[array] = table  # past MAX_ARRAYS the least recently used goes
        return table

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"arrays": len(self._tables), "released": self.released}

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self.released = 0

    def after_fork(self) -> None:
        """In a forked child: the lock may be held by a thread that does not exist here."""
        self._lock = threading.Lock()
        self._tables = cachetools.LRUCache(MAX_ARRAYS)
        self.released = 0


USES = SceneUses()
process_state.register(
    "daskcog.scene-uses", info=USES.info, clear=USES.clear, after_fork=USES.after_fork
)
