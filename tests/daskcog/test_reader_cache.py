"""The per-process reader cache: shared in-flight opens, no cached failures, LRU, overviews, fork.

The sharing, LRU, overview and fork rules need no pixels: a fake reader that
satisfies georeader's `AsyncGeoData` drives them (tests/daskcog/fake_reader.py);
the rest opens real files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

import pytest

import daskcog
from daskcog.runtime.io_loop import run_sync
from daskcog.runtime.reader_cache import CACHE, ReaderCache, cache_key
from georeader.errors import GeoreaderError, ObjectNotFoundError
from tests.daskcog.fake_reader import fake_cache

FAKE = "https://fake.invalid/{}.tif"


def _uri(path: Path) -> str:
    return Path(path).resolve().as_uri()


def test_concurrent_opens_share_one_inflight_open() -> None:
    url = FAKE.format("multi-tile")
    cache, _ = fake_cache(maxsize=8)

    async def many():
        return await asyncio.gather(*(cache.reader(url, {}) for _ in range(20)))

    readers = asyncio.run(many())
    info = cache.info()
    assert (info.opens, info.joins, info.hits, info.failures) == (1, 19, 0, 0)
    assert info.size == 1
    assert len({id(r.opened_file) for r in readers}) == 1


def test_global_cache_on_the_io_loop(gen_paths) -> None:
    url = _uri(gen_paths["odd-size-nodata"])
    daskcog.cache_clear()

    async def many():
        return await asyncio.gather(*(CACHE.reader(url, {}) for _ in range(20)))

    readers = run_sync(many())
    info = daskcog.cache_info()
    assert (info.opens, info.joins) == (1, 19)
    assert info.pid == os.getpid()
    assert {r.shape for r in readers} == {(1, 333, 191)}
    run_sync(CACHE.reader(url, {}))
    assert daskcog.cache_info().hits == 1


def test_opens_from_many_threads_and_loops_share() -> None:
    """Tasks on different event loops (I/O thread, worker loops) join the same open."""
    url = FAKE.format("mask")
    cache, _ = fake_cache(delay=0.05)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def task() -> None:
        barrier.wait()
        results.append(asyncio.run(cache.opened(url, {})))

    threads = [threading.Thread(target=task) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = cache.info()
    assert info.opens == 1
    assert info.joins + info.hits == 7
    assert len({id(r) for r in results}) == 1


def test_failures_are_not_cached(tmp_path, gen_paths) -> None:
    path = tmp_path / "appears-later.tif"
    url = _uri(path)
    cache = ReaderCache()

    async def many():
        return await asyncio.gather(
            *(cache.reader(url, {}) for _ in range(5)), return_exceptions=True
        )

    errors = asyncio.run(many())
    assert all(isinstance(e, ObjectNotFoundError) for e in errors), errors
    assert all(url in str(e) for e in errors)
    info = cache.info()
    assert (info.opens, info.joins, info.failures, info.size) == (1, 4, 1, 0)

    shutil.copy(gen_paths["multi-tile"], path)
    reader = asyncio.run(cache.reader(url, {}))
    assert reader.shape == (1, 217, 300)
    info = cache.info()
    assert (info.opens, info.failures, info.size) == (2, 1, 1)


def test_lru_bound_evicts_least_recently_used() -> None:
    a, b, c = (FAKE.format(n) for n in ("multi-tile", "odd-size-nodata", "mask"))
    cache, _ = fake_cache(maxsize=2)

    def get(url: str) -> None:
        asyncio.run(cache.opened(url, {}))

    get(a)
    get(b)
    get(a)  # hit: a becomes most recent
    get(c)  # evicts b
    info = cache.info()
    assert (info.opens, info.hits, info.evictions, info.size, info.maxsize) == (3, 1, 1, 2, 2)
    get(a)  # still cached
    assert cache.info().hits == 2
    get(b)  # evicted: opened again, evicts c
    info = cache.info()
    assert (info.opens, info.evictions, info.size) == (4, 2, 2)


def test_evicted_headers_close_their_file_descriptor(gen_paths) -> None:
    """Local reads pread from one descriptor per header; eviction must not leak it."""
    import gc

    from rasterio.windows import Window

    from georeader import AsyncGeoTIFFReader

    cache = ReaderCache(maxsize=1)
    a, b = (_uri(gen_paths[n]) for n in ("multi-tile", "odd-size-nodata"))
    opened_a = asyncio.run(cache.opened(a, {}))
    reader = AsyncGeoTIFFReader.from_opened(opened_a)
    assert reader.reads_locally
    reader.read_window_sync(Window(0, 0, 16, 16))
    fd = opened_a.local_fd()
    os.fstat(fd)  # open
    asyncio.run(cache.opened(b, {}))  # evicts a
    del opened_a, reader
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_store_options_are_part_of_the_key(gen_paths) -> None:
    url = _uri(gen_paths["multi-tile"])
    assert cache_key(url, {"a": 1, "b": {"c": 2}}) == cache_key(url, {"b": {"c": 2}, "a": 1})
    assert cache_key(url, {}) != cache_key(url, {"region": "x"})
    cache = ReaderCache()

    async def both():
        await cache.opened(url, {})
        with pytest.raises(GeoreaderError, match="store options"):  # local files take none
            await cache.opened(url, {"client_options": {"timeout": "30s"}})
        await cache.opened(url, {})

    asyncio.run(both())
    info = cache.info()
    assert (info.opens, info.hits, info.failures, info.size) == (2, 1, 1, 1)


def test_overview_and_band_readers_reuse_the_header() -> None:
    url = FAKE.format("overviews-nan")
    cache, _ = fake_cache(sizes=((300, 217), (150, 109), (75, 55)), count=1)

    async def levels():
        return [
            await cache.reader(url, {}, overview_level=0),
            await cache.reader(url, {}, overview_level=1),
            await cache.reader(url, {}, overview_level=2),
            await cache.reader(url, {}, overview_level=2, bands=[1]),
        ]

    readers = asyncio.run(levels())
    info = cache.info()
    assert (info.opens, info.hits) == (1, 3)
    assert [r.shape for r in readers] == [(1, 217, 300), (1, 109, 150), (1, 55, 75), (1, 55, 75)]
    assert len({id(r.opened_file) for r in readers}) == 1


def test_pid_change_resets() -> None:
    url = FAKE.format("multi-tile")
    cache, _ = fake_cache()
    asyncio.run(cache.opened(url, {}))
    asyncio.run(cache.opened(url, {}))
    assert (cache.info().opens, cache.info().hits) == (1, 1)
    cache.pid = -1  # as if this process were a fork of another
    info = cache.info()
    assert (info.opens, info.hits, info.size, info.pid) == (0, 0, 0, os.getpid())
    cache.pid = -1
    asyncio.run(cache.opened(url, {}))  # the parent's headers are not reused
    info = cache.info()
    assert (info.opens, info.hits, info.size) == (1, 0, 1)


def test_cache_clear_and_info_are_module_functions(gen_paths) -> None:
    daskcog.open(gen_paths["multi-tile"])
    assert daskcog.cache_info().size >= 1
    daskcog.cache_clear()
    info = daskcog.cache_info()
    assert (info.size, info.opens, info.hits) == (0, 0, 0)
    assert set(info.as_dict()) >= {
        "opens",
        "hits",
        "joins",
        "failures",
        "evictions",
        "size",
        "maxsize",
        "pid",
    }


def test_open_errors_are_georeader_errors(tmp_path) -> None:
    before = daskcog.cache_info().failures
    with pytest.raises(GeoreaderError, match="missing.tif"):
        daskcog.open(tmp_path / "missing.tif")
    assert daskcog.cache_info().failures == before + 1


def test_io_loop_restarts_after_a_pid_change(monkeypatch) -> None:
    from daskcog.runtime import io_loop
    async def where() -> int:
        return threading.get_ident()

    first = io_loop.io_loop()
    assert io_loop.io_loop() is first
    thread = run_sync(where())
    state = io_loop._state
    monkeypatch.setattr(io_loop, "_state", (-1, state[1], state[2]))  # as after a fork
    second = io_loop.io_loop()
    assert second is not first
    assert run_sync(where()) != thread
    monkeypatch.setattr(io_loop, "_state", state)  # back to the original loop
    second.call_soon_threadsafe(second.stop)


def test_run_sync_refuses_to_block_its_own_loop() -> None:
    async def inner() -> None:
        coro = asyncio.sleep(0)
        run_sync(coro)

    with pytest.raises(RuntimeError, match="await"):
        run_sync(inner())
