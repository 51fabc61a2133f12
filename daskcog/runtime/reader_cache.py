"""Per-process cache of opened COG headers, so each worker fetches a header once.

Contract:
* keyed by (URL, store options), without a signed URL's query or signer (a
  re-signed URL reuses its header; the cached store takes the newest token);
  LRU-bounded (dask.config `daskcog.reader-cache-size`, 256; see `runtime.settings`);
* concurrent opens of one key share a single in-flight open (without this, the
  first wave of tasks opens a header up to `nthreads` times per worker); the open is
  no one waiter's: a cancelled waiter (a failed chunk's sibling read, which the chunk
  cancels) stops waiting, the open goes on for the others;
* failures are not cached (the next task retries the open);
* every overview level and band subset reuses the base file's header;
* after a fork (pid change) the cache starts empty: obstore I/O inherited
  across fork hangs;
* `cache_info()` tells opens, hits, joins of in-flight opens, evictions, size.

In-flight opens are `concurrent.futures.Future`s, so tasks on different event
loops (the I/O thread, a distributed worker's loop) can share them.

The cache knows georeader through two public functions only: one that opens a
header (`georeader.open_file`) and one that makes a reader over a header
(`AsyncGeoTIFFReader.from_opened`, an `AsyncGeoData`). Tests pass a fake pair
(tests/daskcog/fake_reader.py) to check the contract above without files.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any

from daskcog.runtime import process_state, settings
from georeader import AsyncGeoTIFFReader, OpenedFile, open_file, open_store
from georeader.io import (
    SIGNING_OPTIONS,
    Location,
    RetryPolicy,
    canonical_json,
    forget_signed_stores,
    identity_options,
)


@dataclass
class CacheInfo:
    opens: int = 0
    """Headers fetched (successful or not)."""
    hits: int = 0
    joins: int = 0
    """Requests that waited for another task's in-flight open."""
    failures: int = 0
    evictions: int = 0
    size: int = 0
    maxsize: int = 0
    """The bound now (`daskcog.reader-cache-size` unless the cache was given its own)."""
    pid: int = 0
    tables: dict[str, Any] = field(default_factory=dict)
    """`daskcog.cache_info()` only: what every registered per-process piece holds (the
    reader cache's own counters are the fields above)."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def cache_key(url: str, store_options: dict[str, Any]) -> tuple[str, str]:
    """The cache's key: the URL and the identity part of the options as canonical JSON."""
    if not SIGNING_OPTIONS.isdisjoint(store_options):
        open_store(url, **store_options)  # hand the newest token / signer to the cached store
    return (url, canonical_json(identity_options(store_options)))


OpenHeader = Callable[..., Awaitable[Any]]
"""`await open_header(url, **store_options)` -> a header (georeader: an `OpenedFile`); `url`
is what `opened` was given: a URL, or the `Location` a caller parsed once."""
MakeReader = Callable[..., Any]
"""`make_reader(header, overview_level=, bands=)` -> an `AsyncGeoData` reader (no I/O)."""


async def _open_header(
    url: str | Location, *, retry: RetryPolicy | None = None, **store_options: Any
) -> OpenedFile:
    return await open_file(url, retry=retry or default_retry(), **store_options)


def default_retry() -> RetryPolicy:
    """The retry policy of a call that gives none: georeader's default reader policy."""
    return AsyncGeoTIFFReader.retry


class ReaderCache:
    """The cache of one process; `CACHE` below is the one daskcog uses.

    `pid` is the process its contents belong to: when that is not this process
    (a fork), the cache starts empty at its next use.
    """

    def __init__(
        self,
        maxsize: int | None = None,
        *,
        open_header: OpenHeader = _open_header,
        make_reader: MakeReader = AsyncGeoTIFFReader.from_opened,
    ) -> None:
        self._maxsize = maxsize
        self.open_header = open_header
        self.make_reader = make_reader
        self._lock = threading.Lock()
        self._reset()

    @property
    def maxsize(self) -> int:
        """The LRU bound: the one given, else dask.config's `daskcog.reader-cache-size` now."""
        return settings.get_int("reader-cache-size") if self._maxsize is None else self._maxsize

    def _reset(self) -> None:
        self.pid = os.getpid()
        self._done: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._inflight: dict[tuple[str, str], Future[Any]] = {}
        self._info = CacheInfo(maxsize=self.maxsize, pid=self.pid)

    def _check_pid(self) -> None:
        if self.pid != os.getpid():
            self._reset()

    async def opened(
        self, url: str | Location, store_options: dict[str, Any], *,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """The opened header of `url`, fetching it at most once at a time per process (a
        `Location` parsed once by the caller is handed to the opener as it is).

        `retry` is the caller's policy (its spec's) for the header fetch; None: the default.
        """
        key = cache_key(url if isinstance(url, str) else url.url, store_options)
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            pending = self._inflight.get(key)
            if pending is None:
                owner = True
                pending = self._inflight[key] = Future()
                pending.set_running_or_notify_cancel()  # a waiter's cancel cancels only it
                self._info.opens += 1
            else:
                owner = False
                self._info.joins += 1
        if owner:  # the open is no one waiter's: cancelling the first one leaves it running
            opening = asyncio.ensure_future(
                self._open(key, pending, url, store_options, retry)
            )
            _OPENING.add(opening)
            opening.add_done_callback(_OPENING.discard)
        return await asyncio.wrap_future(pending)

    async def _open(
        self, key: tuple[str, str], pending: Future[Any], url: str | Location,
        store_options: dict[str, Any], retry: RetryPolicy | None,
    ) -> None:
        try:
            opened = await (
                self.open_header(url, **store_options)
                if retry is None
                else self.open_header(url, retry=retry, **store_options)
            )
        except BaseException as exc:
            with self._lock:
                self._info.failures += 1
                self._inflight.pop(key, None)
            pending.set_exception(exc)
            pending.exception()  # mark retrieved: the waiters re-raise it themselves
            return
        with self._lock:
            self._inflight.pop(key, None)
            self._done[key] = opened
            maxsize = self.maxsize
            while len(self._done) > maxsize:
                self._done.popitem(last=False)
                self._info.evictions += 1
        pending.set_result(opened)

    def peek(self, url: str, store_options: dict[str, Any]) -> Any:
        """The cached header of `url` if this process has it (no I/O, no event loop)."""
        return self.peek_key(cache_key(url, store_options))

    def peek_key(self, key: tuple[str, str]) -> Any:
        """`peek` by a `cache_key` worked out once (a chunk task's array-like holds it).

        Once per chunk: `_hit`'s steps written out here (no further call)."""
        with self._lock:
            if self.pid != os.getpid():
                self._reset()
            hit = self._done.get(key)
            if hit is not None:
                self._done.move_to_end(key)
                self._info.hits += 1
            return hit

    def _hit(self, key: tuple[str, str]) -> Any:
        """A cached header, counted as a hit (call with the lock held)."""
        self._check_pid()
        hit = self._done.get(key)
        if hit is not None:
            self._done.move_to_end(key)
            self._info.hits += 1
        return hit

    async def reader(
        self,
        url: str,
        store_options: dict[str, Any],
        *,
        overview_level: int = 0,
        bands: Sequence[int] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """A reader of one level and band subset, over the (cached) header of `url`; its
        reads (and the header fetch, if cold) retry per `retry` (None: the default)."""
        opened = await self.opened(url, store_options, retry=retry)
        reader = self.make_reader(opened, overview_level=overview_level, bands=bands)
        if retry is not None:
            reader.retry = retry
        return reader

    def info(self) -> CacheInfo:
        with self._lock:
            self._check_pid()
            self._info.size = len(self._done)
            self._info.maxsize = self.maxsize
            return CacheInfo(**asdict(self._info))

    def clear(self) -> None:
        with self._lock:
            self._reset()


_OPENING: set[asyncio.Future[None]] = set()  # opens in flight (kept from the GC)
CACHE = ReaderCache()
process_state.register("daskcog.reader-cache", info=CACHE.info, clear=CACHE.clear)


def cache_info() -> CacheInfo:
    """This process's reader-cache counters, with `tables`: what every registered
    per-process cache, pool and table (daskcog's and georeader's) holds."""
    out = CACHE.info()
    out.tables = process_state.info()
    return out


def cache_clear() -> None:
    """Clear every registered per-process cache and table of this process (headers, byte
    ranges, stores, failure records, ...), and the tokens and signers of signed URLs."""
    process_state.clear()
    forget_signed_stores()
