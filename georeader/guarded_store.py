"""The obspec store async-tiff reads through: head bytes from memory, bounded concurrency.

* `head`: the header walk (`ifd_chain`) fetched the object's first bytes to
  check its IFD chain; async-tiff's own first request asks for the same range,
  so it is answered from memory (no second request), and the bytes are then
  dropped (`release`).
* `limit`: a semaphore shared by every object of a store bounds the requests in
  flight (`max_concurrency`), for origins that refuse bursts.

Wraps stores that Python can call (obstore's, `PathStore`, any obspec object);
async-tiff's Rust-native stores cannot be wrapped (their requests never reach Python).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any


class GuardedStore:
    """obspec `get_range_async` / `get_ranges_async` over another store."""

    def __init__(self, store: Any, key: str, head: bytes, limit: asyncio.Semaphore | None = None) -> None:
        self.store = store
        self._key = key
        self._head: bytes | None = head
        self._whole = False
        self._limit = limit

    def mark_whole(self) -> None:
        """The head is the whole object (it came back shorter than asked)."""
        self._whole = True

    def release(self) -> None:
        """Forget the head bytes (after the open)."""
        self._head = None

    def _from_head(self, path: str, start: int, stop: int) -> bytes | None:
        head = self._head
        if head is None or path != self._key:
            return None
        if stop <= len(head) or (self._whole and start < len(head)):
            return head[start:stop]
        return None

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._limit is None:
            yield
            return
        async with self._limit:
            yield

    async def get_range_async(
        self, path: str, *, start: int, end: int | None = None, length: int | None = None
    ) -> Any:
        stop = end if end is not None else start + (length or 0)
        cached = self._from_head(path, start, stop)
        if cached is not None:
            return cached
        async with self._slot():
            return await self.store.get_range_async(path, start=start, end=stop)

    async def get_ranges_async(
        self,
        path: str,
        *,
        starts: Sequence[int],
        ends: Sequence[int] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> Any:
        if ends is None:
            ends = [s + n for s, n in zip(starts, lengths or [], strict=True)]
        cached = [self._from_head(path, s, e) for s, e in zip(starts, ends, strict=True)]
        if all(c is not None for c in cached):
            return cached
        async with self._slot():
            return await self.store.get_ranges_async(path, starts=list(starts), ends=list(ends))
