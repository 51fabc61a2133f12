"""A store for local files whose names async-tiff's LocalStore cannot address.

async-tiff's (and object_store's) LocalStore percent-encodes '%', '#', '?',
'*', '\\', non-ASCII and control characters in keys, so `café.tif` or
`a%b.tif` are looked up as `caf%C3%A9.tif` / `a%25b.tif` and reported missing
(measured; obstore's own LocalStore refuses control characters). File systems
allow all of them, so such files are read through this minimal obspec store:
`os.pread` of the real path, in a worker thread. Names without such characters
keep the (faster, Rust-driven) native store.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence


class PathStore:
    """obspec `get_range_async` / `get_ranges_async` over files under `root`."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"PathStore({self.root!r})"

    def _read(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        fd = os.open(os.path.join(self.root, path), os.O_RDONLY)
        try:
            return [os.pread(fd, max(end - start, 0), start) for start, end in ranges]
        finally:
            os.close(fd)

    async def get_range_async(
        self, path: str, *, start: int, end: int | None = None, length: int | None = None
    ) -> bytes:
        stop = end if end is not None else start + (length or 0)
        return (await asyncio.to_thread(self._read, path, [(start, stop)]))[0]

    async def get_ranges_async(
        self,
        path: str,
        *,
        starts: Sequence[int],
        ends: Sequence[int] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> list[bytes]:
        if ends is None:
            ends = [s + n for s, n in zip(starts, lengths or [], strict=True)]
        return await asyncio.to_thread(self._read, path, list(zip(starts, ends, strict=True)))
