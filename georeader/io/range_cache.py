"""A bounded per-process cache of fetched tile bytes, shared by concurrent reads and read-ahead.

Why: a tile that two windows need (a chunk edge that cuts through a tile, a mosaic's
scenes read on another grid, two fan-out windows side by side) was fetched once per
window; and a read-ahead (`AsyncGeoTIFFReader.prefetch_window`) needs somewhere to
leave bytes for the read that comes next. Entries are keyed by (header, offset, length):
a tile is a byte range of the file one opened header describes (`OpenedFile.tile_cache_id`),
so a file re-opened after a change never gets the old bytes.

Bounds, so nothing grows without limit:
* `capacity` bytes of entries (LRU; entries still in flight are never evicted, so a
  burst can exceed it until they land). `Settings.tile_cache_bytes`, 128 MiB; 0 turns
  the cache off (every read fetches its own tiles, as before).
* read-ahead bytes not yet used by a read stay under the budget the caller gives
  (`get(..., prefetch_budget=...)` refuses the whole prefetch rather than part of it).

In-flight entries are `concurrent.futures.Future`s, so reads on different event
loops (the I/O thread, a user's loop) share them. A failed fetch drops its entries:
the next read (or the retry layer) fetches again. A fetch is no one reader's: a reader
cancelled while waiting (the reader that started it, or one that joined) stops waiting,
the fetch goes on for the others (it used to be cancelled for all).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from georeader.io.guarded_get import GuardedStore
from georeader.io.retry import RetryPolicy
from georeader.process_state import register, settings

Key = tuple[str, int, int]
Fetch = Callable[[list[int]], Awaitable[Sequence[Any]]]
"""Fetch the ranges at these indices (of the list given to `get`); their bytes, in order."""


@dataclass
class RangeCacheInfo:
    fetched_bytes: int = 0
    """Bytes fetched from the store through the cache (reads and read-ahead)."""
    hit_bytes: int = 0
    """Bytes a read found in the cache or in flight (fetched by someone else)."""
    prefetched_bytes: int = 0
    prefetch_used_bytes: int = 0
    prefetch_wasted_bytes: int = 0
    """Read-ahead bytes evicted (or cleared) before any read used them."""
    forgotten_bytes: int = 0
    """Bytes dropped by `forget` (their file's last read was done) rather than by the LRU."""
    prefetch_refused: int = 0
    unused_prefetch_bytes: int = 0
    size_bytes: int = 0
    entries: int = 0
    capacity: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_FILLING: set[asyncio.Future[None]] = set()  # fetches in flight (kept from the GC)


class _Entry:
    __slots__ = ("future", "landed", "size", "unused_prefetch")

    def __init__(self, size: int, prefetch: bool) -> None:
        self.future: Future[Any] = Future()
        self.future.set_running_or_notify_cancel()  # a waiter's cancel cancels only it
        self.size = size
        self.unused_prefetch = prefetch
        self.landed = False


class RangeCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._entries: dict[Key, _Entry] = {}
        self._sources: dict[str, set[Key]] = {}  # each header's keys, for `forget`
        # landed entries in LRU order, the only ones eviction looks at (a scan over entries
        # in flight cost more than the fetch in a 200-window fan-out): used ones first,
        # read-ahead bytes no read has used yet last
        self._used: OrderedDict[Key, None] = OrderedDict()
        self._spare: OrderedDict[Key, None] = OrderedDict()
        self._size = 0
        self.unused_prefetch_bytes = 0
        """Read-ahead bytes (landed or in flight) no read has used yet (a plain attribute:
        read-ahead reads it once per chunk)."""
        self._info = RangeCacheInfo(capacity=self.capacity)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    async def get(
        self, source: str, ranges: Sequence[tuple[int, int]], fetch: Fetch, *,
        prefetch_budget: int | None = None,
    ) -> list[Any] | None:
        """The bytes of each (offset, length) of `source` (a header's `tile_cache_id`), fetching
        only what no one has or is fetching.

        With `prefetch_budget` this is a read-ahead: it fetches what is missing and returns
        [] once that landed (without waiting for ranges someone else is fetching), or does
        nothing and returns None when the unused read-ahead bytes would exceed the budget.
        """
        prefetch = prefetch_budget is not None
        waits: list[_Entry] = []
        missing: list[int] = []
        fresh: list[_Entry] = []
        with self._lock:
            if prefetch_budget is not None:
                need = 0
                for off, n in ranges:
                    if (source, off, n) not in self._entries:
                        need += n
                if need == 0:
                    return []
                if self.unused_prefetch_bytes + need > prefetch_budget:
                    self._info.prefetch_refused += 1
                    return None
            for i, (off, n) in enumerate(ranges):
                key = (source, off, n)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = _Entry(n, prefetch)
                    self._sources.setdefault(source, set()).add(key)
                    self._size += n
                    missing.append(i)
                    fresh.append(entry)
                    if prefetch:
                        self.unused_prefetch_bytes += n
                        self._info.prefetched_bytes += n
                else:
                    if not prefetch:
                        self._info.hit_bytes += n
                        if entry.unused_prefetch:
                            self._use(key, entry)
                    if entry.landed:
                        (self._spare if entry.unused_prefetch else self._used).move_to_end(key)
                waits.append(entry)
        if missing:  # no one reader's: a cancelled first reader leaves it to the others
            filling = asyncio.ensure_future(self._fill(source, ranges, missing, fresh, fetch))
            _FILLING.add(filling)
            filling.add_done_callback(_FILLING.discard)
            await asyncio.shield(filling)
        if prefetch:
            return []
        out: list[Any] = []
        for e in waits:  # a loop, not a comprehension: no function call per read (Python 3.11)
            future = e.future
            out.append(future.result() if future.done() else await asyncio.wrap_future(future))
        return out

    async def _fill(self, source: str, ranges: Sequence[tuple[int, int]], missing: list[int],
                    fresh: list[_Entry], fetch: Fetch) -> None:
        try:
            datas = await fetch(missing)
        except BaseException as exc:
            with self._lock:
                for i, entry in zip(missing, fresh, strict=True):
                    off, n = ranges[i]
                    if self._entries.get((source, off, n)) is entry:
                        self._drop((source, off, n), wasted=False)
            for entry in fresh:
                entry.future.set_exception(exc)
                entry.future.exception()  # retrieved: each waiter re-raises it itself
            raise
        with self._lock:
            for i, entry in zip(missing, fresh, strict=True):
                self._info.fetched_bytes += entry.size
                key = (source, *ranges[i])
                if self._entries.get(key) is entry:  # not cleared meanwhile
                    entry.landed = True
                    (self._spare if entry.unused_prefetch else self._used)[key] = None
            self._evict()
        for entry, data in zip(fresh, datas, strict=True):
            entry.future.set_result(data)

    def _use(self, key: Key, entry: _Entry) -> None:
        entry.unused_prefetch = False
        self.unused_prefetch_bytes -= entry.size
        self._info.prefetch_used_bytes += entry.size
        if entry.landed:
            self._spare.pop(key, None)
            self._used[key] = None

    def _drop(self, key: Key, *, wasted: bool) -> None:
        entry = self._entries.pop(key)
        keys = self._sources.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._sources[key[0]]
        self._used.pop(key, None)
        self._spare.pop(key, None)
        self._size -= entry.size
        if entry.unused_prefetch:
            self.unused_prefetch_bytes -= entry.size
            if wasted:
                self._info.prefetch_wasted_bytes += entry.size

    def _evict(self) -> None:
        """Landed entries go, least recently used first, until the cache fits (lock held).

        Read-ahead bytes no read has used yet go last: they are younger in use than
        their place in the LRU order says (evicting them first wasted 20 % of the bytes
        of a read-ahead `.sum()`). Entries in flight never go.
        """
        for order in (self._used, self._spare):
            while self._size > self.capacity and order:
                key = next(iter(order))
                self._drop(key, wasted=True)

    def forget(self, source: str) -> int:
        """Drop the landed entries of one header (`tile_cache_id`): its caller knows no
        read will ask for them again (a load whose last chunk reading a scene is done,
        `daskcog.stac.load_graph`), so they need not wait for the LRU to push them out.
        Entries in flight stay (their waiters get them). Returns the bytes dropped."""
        with self._lock:
            keys = self._sources.get(source)
            if not keys:
                return 0
            dropped = 0
            for key in list(keys):
                entry = self._entries[key]
                if entry.landed:
                    dropped += entry.size
                    self._drop(key, wasted=True)
            self._info.forgotten_bytes += dropped
            return dropped

    def info(self) -> RangeCacheInfo:
        with self._lock:
            out = RangeCacheInfo(**asdict(self._info))
            out.unused_prefetch_bytes, out.size_bytes = self.unused_prefetch_bytes, self._size
            out.entries = len(self._entries)
            return out

    def clear(self) -> None:
        """Forget every landed entry (in-flight fetches finish for their waiters) and the
        counters."""
        with self._lock:
            self._reset()

    def after_fork(self) -> None:
        """In a forked child: bytes in flight in the parent never arrive here, and the
        lock may be held by a thread that does not exist here."""
        self._lock = threading.Lock()
        self._reset()

    def resize(self, capacity: int) -> None:
        """A new bound in bytes (entries past it go now, least recently used first)."""
        with self._lock:
            self.capacity = capacity
            self._evict()


RUN_GAP = 4096
"""Bytes between two tiles that one request may read over (GDAL's tile leaders, padding)."""


async def fetch_runs(
    store: Any, key: str, ranges: Sequence[tuple[int, int]],
    indices: Sequence[int] | None = None, *, retry: RetryPolicy | None = None,
) -> list[Any]:
    """Tiles that follow each other in the file come in one request, all requests at once.

    `indices`: fetch only these of `ranges` (what `RangeCache.get` asks for; bind the
    rest with `functools.partial`). A `GuardedStore` is asked through its one guarded GET
    with `retry`; any other obspec store through `get_range_async`.

    Not async-tiff's merge of ranges less than 1 MiB apart: its gap bytes are other
    tiles, fetched again by the chunk that needs them (a 16-scene mosaic read 1.29x the
    distinct bytes it asked for with that merge and the tile cache off; 1.15x with the
    cache; see benchmarks/RESULTS.md). Tiles at most `RUN_GAP` bytes apart (a tile
    row of a COG: GDAL puts a 4-byte size before and 4 bytes after each tile) are still
    one request, so a chunk costs no more round trips.
    """
    wanted = list(ranges) if indices is None else list(map(ranges.__getitem__, indices))
    runs: list[list[Any]] = []  # [start, stop, member positions in `wanted`]
    for i in sorted(range(len(wanted)), key=wanted.__getitem__):
        off, n = wanted[i]
        if runs and 0 <= off - runs[-1][1] <= RUN_GAP:
            runs[-1][1] = off + n
            runs[-1][2].append(i)
        else:
            runs.append([off, off + n, [i]])
    guarded = isinstance(store, GuardedStore)
    requests = []
    for start, stop, _ in runs:
        requests.append(
            store.get(key, start, stop, retry)
            if guarded
            else store.get_range_async(key, start=start, end=stop)
        )
    bufs = await asyncio.gather(*requests)
    out: list[Any] = [None] * len(wanted)
    for (start, _, members), buf in zip(runs, bufs, strict=True):
        view = memoryview(buf)
        for i in members:
            off, n = wanted[i]
            out[i] = view[off - start : off - start + n]
    return out


CACHE = RangeCache(settings().tile_cache_bytes)
register(
    "georeader.range_cache", info=CACHE.info, clear=CACHE.clear, after_fork=CACHE.after_fork,
    on_settings=lambda old, new: CACHE.resize(new.tile_cache_bytes),
)
