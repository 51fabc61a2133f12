"""One place for georeader's per-process state: the settings value and the registry.

Why one place: a long-running worker holds caches, pools and tables for its whole
life, and a forked child inherits them half-built (bytes in flight that never land
here, locks held by threads that do not exist here, pools without their threads).
Each piece registers itself here once, with

* `info()`: what it holds now (sizes, bounds, counters), so a user can see it;
* `clear()`: drop what it holds (the next use rebuilds it);
* the fork rule: in a forked child every registered piece is reset (its `after_fork`,
  by default its `clear`), once, through one `os.register_at_fork` hook. No module
  compares `os.getpid()` by hand.

Every table is bounded: `Table` is the one LRU (a `cachetools.LRUCache` behind a
lock, as cachetools' caches are not thread-safe themselves), bounded by entries or by
bytes, its bound read from the settings; the decoded tiles and daskcog's warp plans are
`Table`s too.

`Settings` is georeader's one settings value: a frozen dataclass whose defaults come
from the environment (read here and nowhere else; the `GEOREADER_*` names are kept
for scripts and benchmarks that set them), replaced as a whole by `configure(...)`.
daskcog maps `dask.config` onto it on the client and in each worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import cachetools

from georeader.errors import OptionValueError, UnknownOptionError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    """georeader's per-process settings (bounds, pool sizes, defaults of store calls)."""

    tile_cache_bytes: int = int(_env("GEOREADER_TILE_CACHE_BYTES", str(128 << 20)))
    """Bytes of fetched tile ranges kept and shared between reads (0: no cache)."""
    decoded_tile_bytes: int = int(_env("GEOREADER_DECODED_TILE_BYTES", str(32 << 20)))
    """Bytes of decoded tiles kept, so a tile two windows share is decoded once (0: none;
    `read/decoded_tiles.py`)."""
    header_hints: int = int(_env("GEOREADER_HEADER_HINTS", "65536"))
    """URLs whose learnt header size is remembered (the prefetch hint of the next open)."""
    store_cache_size: int = int(_env("GEOREADER_STORE_CACHE_SIZE", "512"))
    """Stores kept per (base URL, options): a worker may see millions of folders."""
    max_concurrency: int = int(_env("GEOREADER_MAX_CONCURRENCY", "256"))
    """Store calls in flight per store and event loop unless `max_concurrency=` says otherwise.

    256, not 64: a fan-out of 200 windows makes 310 requests, which at 64 in flight cost 5
    round trips (0.345 s at 50 ms) and at 256 two (0.308 s; 512 and 1024: 0.315 / 0.309 s,
    where CPU, not round trips, binds; `benchmarks/bench_fanout.py`). 256 connections stay
    well under a process's usual 1,024 file descriptors."""
    semaphore_table_size: int = 1024
    """(store, event loop) pairs whose in-flight limit is remembered."""
    decode_threads: int = int(_env("GEOREADER_DECODE_THREADS", str(os.cpu_count() or 2)))
    """Threads of the pool that decodes tiles (imagecodecs releases the GIL)."""
    native_stores: bool = _env("GEOREADER_NATIVE_STORES", "0") == "1"
    """Remote header opens and fetches through async-tiff's Rust-native stores."""
    signed_url_margin: float = 2.0
    """Seconds before a signed URL's expiry at which its signer is asked again."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise OptionValueError(
                        f"georeader setting {field.name}={value!r}: use True or False"
                    )
            elif field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise OptionValueError(
                        f"georeader setting {field.name}={value!r}: use a whole number >= 0"
                    )
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise OptionValueError(f"georeader setting {field.name}={value!r}: use a number")


_settings = Settings()


def settings() -> Settings:
    """The settings in force in this process."""
    return _settings


def configure(**changes: Any) -> Settings:
    """Replace some settings (by name; a misspelt name is a TypeError); returns the previous
    value. Registered pieces whose bound changed are resized (a resized cache starts empty)."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(Settings)})
    if unknown:
        names = ", ".join(f.name for f in dataclasses.fields(Settings))
        raise UnknownOptionError(
            f"unknown georeader setting(s) {unknown}; the settings are: {names}"
        )
    return _apply(dataclasses.replace(_settings, **changes))


def _apply(new: Settings) -> Settings:
    global _settings
    old, _settings = _settings, new
    if new != old:
        for entry in list(_registry.values()):
            if entry.on_settings is not None:
                entry.on_settings(old, new)
    return old


@contextlib.contextmanager
def configured(**changes: Any) -> Iterator[Settings]:
    """`configure(**changes)` for the duration of a `with` block, then the previous settings."""
    old = configure(**changes)
    try:
        yield _settings
    finally:
        _apply(old)


@dataclass(frozen=True)
class _Entry:
    info: Callable[[], Any]
    clear: Callable[[], None]
    after_fork: Callable[[], None]
    on_settings: Callable[[Settings, Settings], None] | None


_registry: dict[str, _Entry] = {}


def register(
    name: str,
    *,
    info: Callable[[], Any],
    clear: Callable[[], None],
    after_fork: Callable[[], None] | None = None,
    on_settings: Callable[[Settings, Settings], None] | None = None,
) -> None:
    """Register a per-process cache, pool or table under `name` (re-registering replaces).

    `after_fork` (default `clear`) runs in a forked child before anything else uses the
    piece; `on_settings(old, new)` runs when `configure` changes the settings."""
    _registry[name] = _Entry(info, clear, after_fork or clear, on_settings)


def register_function_cache(name: str, function: Any) -> None:
    """Register a `functools.lru_cache`-wrapped function (bounded by its `maxsize`; pure
    values, so a forked child may keep them)."""
    register(name, info=lambda: function.cache_info()._asdict(), clear=function.cache_clear,
             after_fork=lambda: None)


def registered() -> tuple[str, ...]:
    """The names of the registered pieces."""
    return tuple(_registry)


def info() -> dict[str, Any]:
    """What each registered piece holds now, by name."""
    return {name: entry.info() for name, entry in list(_registry.items())}


def clear(*names: str) -> None:
    """Clear the named pieces (all without names); an unknown name is a KeyError."""
    for name in names or tuple(_registry):
        _registry[name].clear()


def _after_fork_in_child() -> None:
    for entry in list(_registry.values()):
        entry.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True)
class TableInfo:
    """A table's size and bound, and how often it answered."""

    size: int
    maxsize: int
    hits: int = 0
    misses: int = 0
    size_bytes: int = 0
    """The sum of its entries' sizes, for a table bounded by a size function (else 0)."""


class Table(Generic[K, V]):
    """A bounded, thread-safe LRU mapping; its bound is a setting.

    The one LRU of both packages (header hints, stores, semaphores, decoded tiles, warp
    plans): a `cachetools.LRUCache` behind a lock, as cachetools' caches are not
    thread-safe themselves. Bounded by its number of entries, or, with `size`, by the sum
    of `size(value)` (bytes): an entry larger than the whole bound is not kept. Reads
    refresh an entry's age; past the bound the least recently used entries go. The bound
    is `bound(settings())` (0: keep nothing), re-read (and the table emptied) when the
    settings change, or when `check_bound()` finds it changed (a bound from elsewhere,
    e.g. dask.config). `get` counts hits and misses.

    With a `name`, the table registers itself in the registry (`info()`, `clear()`, empty
    in a forked child); without, its owner registers it (with an `info` of its own)."""

    def __init__(
        self, name: str | None, bound: Callable[[Settings], int], *,
        size: Callable[[V], int] | None = None,
    ) -> None:
        self.name = name
        self._bound = bound
        self._size = size
        self._reset()
        if name is not None:
            register(name, info=self.info, clear=self.clear, after_fork=self._reset,
                     on_settings=self._resize)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._make(self._bound(_settings))

    def _make(self, capacity: int) -> None:
        self.capacity = capacity  # entries, or the sum of sizes (0: nothing is kept)
        self._data: cachetools.LRUCache[K, V] = cachetools.LRUCache(
            max(1, capacity), getsizeof=self._size
        )
        self.hits = self.misses = 0

    def _resize(self, old: Settings, new: Settings) -> None:
        if self._bound(old) != self._bound(new):
            self._reset()

    def check_bound(self) -> int:
        """Re-read the bound; a changed bound empties the table. Returns the bound."""
        bound = self._bound(_settings)
        if bound != self.capacity:
            with self._lock:
                self._make(bound)
        return bound

    @property
    def maxsize(self) -> int:
        return int(self._data.maxsize)

    def get(self, key: K, default: V | None = None, *, count: bool = True) -> V | None:
        """The value, or `default`. A hit counts either way; a miss only with `count`."""
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self.hits += 1
                return found
            if count:
                self.misses += 1
            return default

    def __setitem__(self, key: K, value: V) -> None:
        if self._size is not None and self._size(value) > self.capacity:
            return  # larger than the whole bound: not kept
        with self._lock:
            self._data[key] = value

    def get_or_set(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or `make()` stored (made outside the lock; first one kept)."""
        found = self.get(key)
        if found is not None:
            return found
        value = make()
        too_large = self._size is not None and self._size(value) > self.capacity
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                return found
            if not too_large:
                self._data[key] = value
            return value

    def pop(self, key: K) -> V | None:
        """Forget `key`; its value, or None."""
        with self._lock:
            return self._data.pop(key, None)

    def drop_where(self, predicate: Callable[[K], bool]) -> int:
        """Forget every entry whose key matches; returns the sum of their sizes (with a size
        function, else their number)."""
        dropped = 0
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                value = self._data.pop(key)
                dropped += 1 if self._size is None else self._size(value)
        return dropped

    def clear(self) -> None:
        """Forget every entry, and the counts."""
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def info(self) -> TableInfo:
        size_bytes = int(self._data.currsize) if self._size is not None else 0
        return TableInfo(len(self._data), self.maxsize, self.hits, self.misses, size_bytes)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
