"""obspec's range methods, written once for the stores georeader makes.

obspec's `get_range_async(path, start=, end=|length=)` and
`get_ranges_async(path, starts=, ends=|lengths=)` give either the (exclusive) end
or the length of each range. `ObspecRanges` turns them into ends and calls the
store's own `read_range` / `read_ranges`; `GuardedStore` (retries, bounded
concurrency, the header bytes) and `PathStore` (local files async-tiff cannot
name) implement only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ObspecRanges:
    """Mixin: obspec's `get_range_async` / `get_ranges_async` over `read_range(s)` on ends."""

    async def read_range(self, path: str, start: int, end: int) -> Any:
        """The bytes of `path` in [start, end)."""
        raise NotImplementedError

    async def read_ranges(self, path: str, starts: Sequence[int], ends: Sequence[int]) -> Any:
        """The bytes of `path` in each [start, end)."""
        raise NotImplementedError

    async def get_range_async(
        self, path: str, *, start: int, end: int | None = None, length: int | None = None
    ) -> Any:
        return await self.read_range(path, start, end if end is not None else start + (length or 0))

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
        return await self.read_ranges(path, starts, ends)
