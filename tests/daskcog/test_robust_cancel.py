"""A chunk whose scene read fails leaves nothing running behind it (errors="raise").

Real parts only: COGs served by the project's range server (benchmarks/servers, its own
process, a latency per request), a STAC load over them where one item's file does not
exist. The failing scene's header request fails after one round trip; its siblings in the
same batch are then still reading (header, then tiles, then decoding through `offload`).
Before this was fixed the chunk raised and left them running on the I/O loop: each later
handed its decode to a queue nobody drained, so it stayed pending for ever, holding its
arrays, until the garbage collector printed "Task was destroyed but it is pending".

Checked after the compute raised: the error is the failing scene's (typed, naming its
URL), no task of the chunk is left on the I/O loop, no job is left on an offload queue,
and nothing is logged when the garbage is collected. errors="nodata" still records the
failure and mosaics the other scenes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import daskcog
from benchmarks import bench_stac
from benchmarks.servers import RangeServer
from daskcog.mosaics import chunk_task
from daskcog.runtime import failures, read_ahead
from daskcog.runtime.io_loop import io_loop, run_sync
from daskcog.runtime.reader_cache import CACHE
from georeader import assemble_window, fetch_native
from georeader.errors import GeoreaderError
from georeader.io import RANGE_CACHE

RES = bench_stac.RES
SIZE = 512  # one tile per scene
LATENCY_MS = 150
OPTIONS = {"client_options": {"allow_http": True}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RangeServer, list[dict]]]:
    """Four scenes side by side on one date; the second one's file is missing."""
    root = tmp_path_factory.mktemp("robust-cancel")
    scenes = []
    for c in range(4):
        rel = f"s{c}.tif"
        x0, y0 = 512_000.0 + c * SIZE * RES, 5_120_000.0
        if c != 1:
            bench_stac.write_scene(root / rel, "EPSG:32633", x0, y0, seed=c, size=SIZE)
        scenes.append((rel, "EPSG:32633", x0, y0))
    with RangeServer(root, latency_ms=LATENCY_MS) as server:
        items = bench_stac.items_for("r", server.url_for("").rstrip("/"), scenes, size=SIZE)
        yield server, items


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    daskcog.cache_clear()
    RANGE_CACHE.clear()
    read_ahead.clear()
    failures.clear_failures()
    yield
    daskcog.cache_clear()
    RANGE_CACHE.clear()
    read_ahead.clear()
    failures.clear_failures()


def _loop_tasks() -> list[asyncio.Task]:
    """The I/O loop's tasks other than the one asking."""
    async def others() -> list[asyncio.Task]:
        me = asyncio.current_task()
        return [t for t in asyncio.all_tasks() if t is not me]

    return asyncio.run_coroutine_threadsafe(others(), io_loop()).result(5)


def _chunk_tasks() -> list[asyncio.Task]:
    """Tasks running a chunk's own coroutines (daskcog.mosaics / daskcog.stac: the chunk, its
    mosaics and scene reads); not the fire-and-forget read-ahead, nor the header opens and
    tile fetches other chunks may join (georeader's and the reader cache's: no one
    chunk's, they end on their own, which the test checks separately)."""
    def own(task: asyncio.Task) -> bool:
        module = getattr(task.get_coro(), "cr_frame", None)
        name = module.f_globals.get("__name__", "") if module is not None else ""
        return name.startswith(("daskcog.mosaics.chunk_task", "daskcog.mosaics.masks",
                                "daskcog.stac"))

    return [t for t in _loop_tasks() if own(t)]


def _queued_jobs() -> int:
    """Jobs waiting on any offload queue of this process (`run_here`'s)."""
    gc.collect()
    return sum(
        obj._queue.qsize() for obj in gc.get_objects() if isinstance(obj, chunk_task._Jobs)
    )


def _load(items: list[dict], **kw: object):  # noqa: ANN202
    return daskcog.load(items, groupby="solar_day", chunks=4 * SIZE, crs="EPSG:32633",
                        resolution=RES, **OPTIONS, **kw)


def _compute(array) -> np.ndarray:  # noqa: ANN001
    with dask.config.set(scheduler="threads", num_workers=2):
        return np.asarray(array.data.compute())


def test_a_failed_scene_leaves_no_sibling_read_behind(
    served: tuple[RangeServer, list[dict]], caplog: pytest.LogCaptureFixture,
) -> None:
    server, items = served
    missing = server.url_for("s1.tif")
    earlier = set(_loop_tasks())  # another test's, if any: not this chunk's
    array = _load(items)
    assert array.data.numblocks[-2:] == (1, 1)  # one chunk: the four scenes are one batch
    caplog.set_level(logging.ERROR, logger="asyncio")
    with pytest.raises(GeoreaderError) as info:
        _compute(array)
    assert missing in str(info.value)
    assert isinstance(info.value, FileNotFoundError | OSError)
    # nothing of the chunk runs on: at once, and still after the siblings' reads would
    # have reached their decode (a few round trips)
    assert _chunk_tasks() == []
    time.sleep(4 * LATENCY_MS / 1000)
    deadline = time.monotonic() + 5
    while set(_loop_tasks()) - earlier and time.monotonic() < deadline:  # read-ahead ends
        time.sleep(0.05)
    assert set(_loop_tasks()) - earlier == set()
    assert _queued_jobs() == 0
    del info, array
    gc.collect()
    assert not [r for r in caplog.records if "destroyed but it is pending" in r.getMessage()]


def test_two_failing_scenes_raise_the_first_failure_and_log_nothing(
    served: tuple[RangeServer, list[dict]], caplog: pytest.LogCaptureFixture,
) -> None:
    """Two missing files in one batch: the first failure raises (as `asyncio.gather` gave
    it: completion order), and the other's error, nobody's, is not logged as "never
    retrieved" (it was, before: only the reads still running were marked)."""
    server, items = served
    gone = [dict(item) for item in items]
    gone[3] = {**items[3], "assets": {"data": {**items[3]["assets"]["data"],
                                                "href": server.url_for("also-missing.tif")}}}
    caplog.set_level(logging.ERROR, logger="asyncio")
    with pytest.raises(GeoreaderError) as info:
        _compute(_load(gone))
    named = [u for u in (server.url_for("s1.tif"), server.url_for("also-missing.tif"))
             if u in str(info.value)]
    assert len(named) == 1
    assert _chunk_tasks() == []
    del info
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()
                or "destroyed but it is pending" in r.getMessage()]


def test_errors_nodata_still_mosaics_the_other_scenes(
    served: tuple[RangeServer, list[dict]],
) -> None:
    server, items = served
    array = _load(items, errors="nodata")
    got = _compute(array)
    whole = _compute(_load([items[0], items[2], items[3]]))
    np.testing.assert_array_equal(got, whole)
    report = daskcog.failure_report(array)
    assert [f.url for f in report] == [server.url_for("s1.tif")]
    assert _chunk_tasks() == []


def test_offload_after_the_chunk_finished_fails_at_once() -> None:
    """A task that outlives its chunk (started in the chunk's context) and then offloads:
    its job is not run and it gets an error, instead of waiting for ever."""
    late: list[asyncio.Task] = []
    ran: list[int] = []

    async def straggler() -> int:
        await asyncio.sleep(0.05)
        return await chunk_task.offload(lambda: ran.append(1) or 1)

    async def chunk() -> int:
        late.append(asyncio.ensure_future(straggler()))
        return await chunk_task.offload(lambda: 2)

    assert chunk_task.run_here(chunk()) == 2
    got = asyncio.run_coroutine_threadsafe(
        asyncio.wait_for(asyncio.shield(late[0]), 5), io_loop()
    )
    with pytest.raises(RuntimeError, match="chunk task"):
        got.result(6)
    assert ran == []
    assert _queued_jobs() == 0


def test_a_cancelled_reader_cancels_no_open_or_fetch_another_joined(
    served: tuple[RangeServer, list[dict]],
) -> None:
    """What makes cancelling a chunk's sibling reads safe: a header open and a tile fetch
    other readers joined go on when the reader that started them is cancelled, and so do
    they when a joiner is cancelled (before, the shared future was cancelled for all)."""
    server, _ = served
    url = server.url_for("s0.tif")
    window = Window(0, 0, SIZE, SIZE)

    async def joined(start: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        first = asyncio.ensure_future(start())
        await asyncio.sleep(0.02)  # the first one is in flight
        second, third = asyncio.ensure_future(start()), asyncio.ensure_future(start())
        await asyncio.sleep(0.02)
        first.cancel()
        third.cancel()
        got = await asyncio.wait_for(second, 10)
        await asyncio.wait([first, third])
        return first.cancelled() and third.cancelled(), got

    async def run() -> tuple[bool, bool, Any, Any]:
        opens_cancelled, opened = await joined(lambda: CACHE.opened(url, OPTIONS))
        level = opened.levels[0]
        fetches_cancelled, fetched = await joined(
            lambda: fetch_native(opened, level, window, url)
        )
        return opens_cancelled, fetches_cancelled, opened, fetched

    opens_cancelled, fetches_cancelled, opened, fetched = run_sync(run())
    assert opens_cancelled and fetches_cancelled
    values = assemble_window(opened, opened.levels[0], (1,), window, window, 0, fetched).values
    with rasterio.open(server.root / "s0.tif") as src:
        np.testing.assert_array_equal(values, src.read(window=window))
    assert RANGE_CACHE.info().hit_bytes > 0  # the fetch was joined, not made twice
