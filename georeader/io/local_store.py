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

from georeader.io.obspec_ranges import ObspecRanges


class PathStore(ObspecRanges):
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

    async def read_range(self, path: str, start: int, end: int) -> bytes:
        return (await asyncio.to_thread(self._read, path, [(start, end)]))[0]

    async def read_ranges(
        self, path: str, starts: Sequence[int], ends: Sequence[int]
    ) -> list[bytes]:
        return await asyncio.to_thread(self._read, path, list(zip(starts, ends, strict=True)))
