"""A small thread-safe LRU mapping for process-global caches.

A long-running worker may open millions of URLs; every per-process table keyed
by URL (header sizes, stores) must hold a bounded amount, dropping the least
recently used entry first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A mapping of at most `maxsize` entries; reads refresh an entry's age."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, maxsize)
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            if key not in self._data:
                return default
            self._data.move_to_end(key)
            return self._data[key]

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def get_or_set(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or `make()` stored (made outside the lock; first one kept)."""
        found = self.get(key)
        if found is not None:
            return found
        value = make()
        with self._lock:
            value = self._data.setdefault(key, value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
            return value

    def drop_where(self, predicate: Callable[[K], bool]) -> None:
        """Forget every entry whose key matches."""
        with self._lock:
            for key in [k for k in self._data if predicate(k)]:
                del self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
