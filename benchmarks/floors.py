"""The physical floor of a latency-bound read, printed next to every reader's time.

A read cannot be faster than the largest of: its round trips in sequence x the
latency, its bytes / the server's bandwidth, its decode CPU / the cores. They can
overlap, so the floor is their maximum, and a reader's distance to it is
`time / floor`. Each term is printed, so a row shows which one binds.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_BANDWIDTH = 1.1e9
"""Bytes/s of benchmarks/servers/range_server.py on this machine (RESULTS.md section 0)."""


@dataclass(frozen=True)
class Floor:
    requests: int
    round_trips: int
    latency_s: float
    bytes: int
    bandwidth: float
    decode_cpu_s: float
    cores: int

    @property
    def latency_term(self) -> float:
        return self.round_trips * self.latency_s

    @property
    def bandwidth_term(self) -> float:
        return self.bytes / self.bandwidth

    @property
    def cpu_term(self) -> float:
        return self.decode_cpu_s / self.cores

    @property
    def seconds(self) -> float:
        return max(self.latency_term, self.bandwidth_term, self.cpu_term)

    def describe(self) -> str:
        return (
            f"floor {self.seconds:.3f} s = max({self.round_trips} round trips x "
            f"{self.latency_s * 1000:.0f} ms = {self.latency_term:.3f} s, "
            f"{self.bytes / 1e6:.1f} MB / {self.bandwidth / 1e9:.1f} GB/s = "
            f"{self.bandwidth_term:.3f} s, "
            f"decode {self.decode_cpu_s:.3f} s CPU / {self.cores} cores = {self.cpu_term:.3f} s); "
            f"{self.requests} requests"
        )


def waves(tasks: int, in_flight: int) -> int:
    """Round trips in sequence when `tasks` each need one and `in_flight` run at once."""
    return math.ceil(tasks / max(1, in_flight))


def decode_cpu(path: Path, windows: list[tuple[int, int, int, int]]) -> float:
    """CPU seconds to read and decode `windows` (col, row, width, height) of a local copy, one
    thread.

    daskcog's own local path (pread + imagecodecs + placement): what any reader must
    at least spend on those pixels here, whatever the store. Best of three.
    """
    import asyncio

    from rasterio.windows import Window

    from georeader import AsyncGeoTIFFReader

    reader = asyncio.run(AsyncGeoTIFFReader.open(str(path)))
    best = math.inf
    for _ in range(3):
        t0 = time.thread_time()
        for c, r, w, h in windows:
            reader.read_window_sync(Window(c, r, w, h))
        best = min(best, time.thread_time() - t0)
    return best


def tiles_needed(path: Path, windows: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """(tiles, bytes) of the distinct full-resolution tiles `windows` touch: what a read must
    fetch."""
    import asyncio

    from rasterio.windows import Window

    from georeader import AsyncGeoTIFFReader
    from georeader.geo import iter_tiles

    reader = asyncio.run(AsyncGeoTIFFReader.open(str(path)))
    th, tw = reader.block_shape
    nx = math.ceil(reader.width / tw)
    counts = reader.levels[0].tile_byte_counts
    tiles = {t for c, r, w, h in windows for t in iter_tiles(Window(c, r, w, h), tw, th)}
    return len(tiles), int(sum(int(counts[ty * nx + tx]) for tx, ty in tiles))


def cores() -> int:
    return os.cpu_count() or 1
