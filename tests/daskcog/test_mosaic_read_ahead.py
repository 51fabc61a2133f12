"""A STAC load's read-ahead (daskcog/mosaics/read_ahead.py) on a real HTTP range server.

Behaviour only (requests, bytes, values; never time: speed is in benchmarks/RESULTS.md):
a chunk task starts fetching the next chunks' tiles into the range cache, so the next
chunk finds them there, the whole load fetches each tile once, and the values are the
ones read without read-ahead.
"""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest

import daskcog
from benchmarks import bench_stac
from benchmarks.servers import RangeServer
from daskcog.mosaics import read_ahead as mosaic_read_ahead
from daskcog.runtime import read_ahead
from georeader.io import RANGE_CACHE

RES = bench_stac.RES
SIZE = 1024  # 2 x 2 tiles of 512 per scene
DATES = ["2024-06-01T10:00:00Z", "2024-06-06T10:00:00Z"]
OPTIONS = {"client_options": {"allow_http": True}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("mosaic-readahead")
    scenes, dates = [], []
    for d, date in enumerate(DATES):
        for c in range(2):  # two scenes side by side, revisited
            rel = f"d{d}/s{c}.tif"
            x0, y0 = 512_000.0 + c * SIZE * RES, 5_120_000.0
            bench_stac.write_scene(root / rel, "EPSG:32633", x0, y0, seed=10 * d + c, size=SIZE)
            scenes.append((rel, "EPSG:32633", x0, y0))
            dates.append(date)
    with RangeServer(root) as server:
        items = bench_stac.items_for("t", server.url_for("").rstrip("/"), scenes, size=SIZE,
                                     dates=dates)
        yield server, items


def _fresh() -> None:
    daskcog.cache_clear()
    RANGE_CACHE.clear()
    read_ahead.clear()


def _settle() -> None:
    """Wait for the read-ahead started on the I/O loop to land (it never blocks a chunk)."""
    deadline = time.monotonic() + 10
    while mosaic_read_ahead._tasks and time.monotonic() < deadline:
        time.sleep(0.01)


def _load(items: list[dict]):  # noqa: ANN202
    return daskcog.load(items, groupby="solar_day", chunks=512, crs="EPSG:32633",
                        resolution=RES, **OPTIONS).data


def test_next_chunks_tiles_are_in_the_range_cache(served) -> None:  # noqa: ANN001
    server, items = served
    with dask.config.set({"daskcog.mosaic-readahead": "off"}):
        _fresh()
        reference = _load(items).compute(scheduler="threads", num_workers=4)
        server.reset()
    _fresh()
    data = _load(items)
    assert data.numblocks[0] == 2 and data.numblocks[2] * data.numblocks[3] > 2
    first = data.blocks[1, 0, 0, 0].compute(scheduler="sync")
    _settle()
    assert RANGE_CACHE.info().prefetched_bytes > 0, "no read-ahead happened"
    server.reset()
    # the chunk beside it on the same step, and the same window on the other step, read
    # with read-ahead off (theirs would ask for their own neighbours): no request at all
    with dask.config.set({"daskcog.mosaic-readahead": "off"}):
        beside = data.blocks[1, 0, 0, 1].compute(scheduler="sync")
        other_step = data.blocks[0, 0, 0, 0].compute(scheduler="sync")
    assert server.stats().requests == 0
    assert RANGE_CACHE.info().prefetch_used_bytes > 0
    np.testing.assert_array_equal(first, reference[1:2, :, :512, :512])
    np.testing.assert_array_equal(beside, reference[1:2, :, :512, 512:1024])
    np.testing.assert_array_equal(other_step, reference[0:1, :, :512, :512])


def test_whole_load_fetches_each_tile_once_and_is_exact(served) -> None:  # noqa: ANN001
    server, items = served
    with dask.config.set({"daskcog.mosaic-readahead": "off"}):
        _fresh()
        server.reset()
        reference = _load(items).compute(scheduler="threads", num_workers=4)
        without = server.stats().bytes_sent
    _fresh()
    server.reset()
    got = _load(items).compute(scheduler="threads", num_workers=4)
    _settle()
    assert RANGE_CACHE.info().prefetched_bytes > 0
    assert RANGE_CACHE.info().prefetch_wasted_bytes == 0
    assert server.stats().bytes_sent <= without
    np.testing.assert_array_equal(got, reference)
