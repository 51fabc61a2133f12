"""Read-ahead and the tile-bytes cache on a real HTTP range server: exact, and bytes stay bounded.

Behaviour only (bytes and requests, never time): speed is measured in benchmarks/.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import daskcog
from benchmarks.servers import RangeServer
from daskcog.runtime import read_ahead
from daskcog.runtime.read_ahead import ChunkGrid as Grid
from daskcog.runtime.read_ahead import Requested
from georeader import AsyncGeoTIFFReader
from georeader.io import RANGE_CACHE
from tests.cogfactory import write_benchmark_cog

OPTIONS = {"client_options": {"allow_http": True}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("readahead")
    path = write_benchmark_cog(root / "cog.tif", size=1024, tile=128, compress="deflate",
                               overviews=(), predictor=1)
    with rasterio.open(path) as src:
        reference = src.read()
    reader = asyncio.run(AsyncGeoTIFFReader.open(str(path)))
    counts = reader.levels[0].tile_byte_counts  # row-major, 8 x 8 tiles
    with RangeServer(root) as server:
        yield server, server.url_for("cog.tif"), reference, counts


def test_grid_windows_and_neighbours() -> None:
    grid = Grid.from_chunks(0, 0, (256, 256, 100), (256, 256))
    assert grid is not None and grid.shape == (3, 2)
    assert grid.window(2, 1) == (256, 512, 256, 100)
    assert grid.index(512, 256, 100, 256) == (2, 1)
    assert grid.index(10, 0, 256, 256) is None  # not a chunk of the grid (a sliced read)
    assert grid.neighbours(0, 0, radius=1) == [(0, 1), (1, 0), (1, 1)]
    assert Grid.from_chunks(0, 0, (100, 256), (256,)) is None  # irregular: no read-ahead


def test_each_chunk_is_claimed_once_per_array() -> None:
    seen = Requested(arrays=2)
    assert seen.claim("a", [(0, 0), (0, 1)]) == [(0, 0), (0, 1)]
    assert seen.claim("a", [(0, 1), (1, 1)]) == [(1, 1)]
    seen.release("a", (1, 1))
    assert seen.claim("a", [(1, 1)]) == [(1, 1)]
    seen.claim("b", [(0, 0)])
    seen.claim("c", [(0, 0)])  # bounded: "a" is forgotten
    assert seen.claim("a", [(0, 0)]) == [(0, 0)]


def test_read_ahead_compute_is_exact_and_reads_each_tile_once(served, monkeypatch) -> None:  # noqa: ANN001
    server, url, reference, tile_bytes = served
    monkeypatch.setattr(read_ahead, "BUDGET", 1 << 20)
    RANGE_CACHE.clear()
    # whole tile rows per chunk: each chunk's tiles are one contiguous range in the file
    # (async-tiff merges ranges less than 1 MiB apart, gap bytes included)
    arr = daskcog.open(url, chunks=(1, 256, 1024), **OPTIONS)
    server.reset()
    got = arr.data.compute(scheduler="threads", num_workers=2)
    np.testing.assert_array_equal(got, reference)
    info = RANGE_CACHE.info()
    assert info.prefetched_bytes > 0, "no read-ahead happened"
    assert server.stats().bytes_sent <= 1.05 * int(tile_bytes.sum())  # fetched / needed
    assert info.prefetch_wasted_bytes == 0


def test_read_ahead_bytes_stay_within_budget(served, monkeypatch) -> None:  # noqa: ANN001
    server, url, reference, _ = served
    budget = 100_000
    monkeypatch.setattr(read_ahead, "BUDGET", budget)
    RANGE_CACHE.clear()
    arr = daskcog.open(url, chunks=128, **OPTIONS)
    peak = 0

    def watch(block: np.ndarray) -> np.ndarray:
        nonlocal peak
        peak = max(peak, RANGE_CACHE.unused_prefetch_bytes)
        return block

    got = arr.data.map_blocks(watch, dtype=arr.dtype).compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(got, reference)
    assert 0 < peak <= budget


def test_windows_sharing_a_tile_fetch_it_once(served) -> None:  # noqa: ANN001
    server, url, reference, _ = served
    RANGE_CACHE.clear()

    async def go() -> list[np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(url, **OPTIONS)
        server.reset()
        # both windows cut through the tiles of column 1 (pixels 128-255)
        wins = [Window(64, 0, 128, 128), Window(192, 0, 128, 128)]
        out = await asyncio.gather(*(reader.read_window(w) for w in wins))
        return [g.values for g in out]

    a, b = asyncio.run(go())
    np.testing.assert_array_equal(a, reference[:, 0:128, 64:192])
    np.testing.assert_array_equal(b, reference[:, 0:128, 192:320])
    needed = int(served[3][0:3].sum())  # tiles (0, 0), (1, 0), (2, 0)
    assert server.stats().bytes_sent <= 1.05 * needed


def test_a_reopened_header_never_gets_the_old_headers_tile_bytes(served) -> None:  # noqa: ANN001
    server, url, reference, _ = served
    RANGE_CACHE.clear()

    async def read_once() -> tuple[str, np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(url, **OPTIONS)
        got = await reader.read_window(Window(0, 0, 128, 128))
        return reader.opened_file.tile_cache_id, got.values

    first_id, first = asyncio.run(read_once())
    server.reset()
    second_id, second = asyncio.run(read_once())  # the file could have changed in between
    assert first_id != second_id
    assert server.stats().gets >= 2  # header and tile fetched again, not served from the cache
    np.testing.assert_array_equal(first, reference[:, :128, :128])
    np.testing.assert_array_equal(second, first)
