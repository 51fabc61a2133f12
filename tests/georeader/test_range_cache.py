"""georeader.io.range_cache: shared fetches, the byte bounds, read-ahead accounting, failures.

Pure asyncio with a counting fetch function: no store, no network.
"""

from __future__ import annotations

import asyncio

import pytest

from georeader.io.range_cache import RangeCache, fetch_runs


class Source:
    """A fake byte source that counts what was fetched, and can be told to fail or wait."""

    def __init__(self) -> None:
        self.fetched: list[tuple[int, int]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    def fetcher(self, ranges: list[tuple[int, int]]):  # noqa: ANN201
        async def fetch(indices: list[int]) -> list[bytes]:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                raise OSError("connection reset")
            self.fetched += [ranges[i] for i in indices]
            return [bytes([ranges[i][0] % 256]) * ranges[i][1] for i in indices]

        return fetch


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_concurrent_reads_of_a_shared_tile_fetch_it_once() -> None:
    cache, src = RangeCache(1 << 20), Source()

    async def go() -> list[list[bytes] | None]:
        src.gate = asyncio.Event()
        a = [(0, 10), (100, 10)]
        b = [(100, 10), (200, 10)]  # (100, 10) straddles both windows
        tasks = [asyncio.ensure_future(cache.get("u", r, src.fetcher(r))) for r in (a, b)]
        await asyncio.sleep(0)
        src.gate.set()
        return await asyncio.gather(*tasks)

    got_a, got_b = run(go())
    assert sorted(src.fetched) == [(0, 10), (100, 10), (200, 10)]
    assert got_a[1] == got_b[0] == bytes([100]) * 10
    info = cache.info()
    assert info.fetched_bytes == 30 and info.hit_bytes == 10


def test_lru_keeps_the_cache_within_its_capacity() -> None:
    cache, src = RangeCache(1000), Source()

    async def go() -> None:
        for start in range(0, 5000, 100):
            r = [(start, 100)]
            await cache.get("u", r, src.fetcher(r))

    run(go())
    info = cache.info()
    assert info.size_bytes <= 1000 and info.entries == 10
    # the newest entries stayed: reading them again fetches nothing
    before = len(src.fetched)
    run(cache.get("u", [(4900, 100)], src.fetcher([(4900, 100)])))
    assert len(src.fetched) == before


def test_read_ahead_stays_within_its_budget_and_is_counted_when_used() -> None:
    cache, src = RangeCache(1 << 20), Source()

    async def go() -> tuple[object, object, object]:
        first = await cache.get("u", [(0, 600)], src.fetcher([(0, 600)]), prefetch_budget=1000)
        refused = await cache.get(
            "u", [(1000, 600)], src.fetcher([(1000, 600)]), prefetch_budget=1000
        )
        assert cache.unused_prefetch_bytes == 600
        await cache.get("u", [(0, 600)], src.fetcher([(0, 600)]))  # a read uses it
        again = await cache.get(
            "u", [(1000, 600)], src.fetcher([(1000, 600)]), prefetch_budget=1000
        )
        return first, refused, again

    first, refused, again = run(go())
    assert first == [] and refused is None and again == []
    info = cache.info()
    assert info.prefetched_bytes == 1200 and info.prefetch_used_bytes == 600
    assert info.prefetch_refused == 1 and info.unused_prefetch_bytes == 600
    assert src.fetched == [(0, 600), (1000, 600)]


def test_unused_read_ahead_is_evicted_last_and_counted_as_waste() -> None:
    cache, src = RangeCache(1000), Source()

    async def go() -> None:
        await cache.get("u", [(0, 400)], src.fetcher([(0, 400)]), prefetch_budget=1000)
        for start in range(1000, 3000, 400):  # reads that push the cache over capacity
            await cache.get("u", [(start, 400)], src.fetcher([(start, 400)]))

    run(go())
    info = cache.info()
    assert info.size_bytes <= 1000
    # the read-ahead entry outlived older used entries, until only it was left to evict
    assert info.prefetch_wasted_bytes in (0, 400)
    assert ("u", 0, 400) in cache._entries or info.prefetch_wasted_bytes == 400  # noqa: SLF001


def test_a_failed_fetch_is_not_cached_and_reaches_every_waiter() -> None:
    cache, src = RangeCache(1 << 20), Source()
    r = [(0, 10)]

    async def go() -> list[BaseException | list[bytes] | None]:
        src.fail = True
        src.gate = asyncio.Event()
        tasks = [asyncio.ensure_future(cache.get("u", r, src.fetcher(r))) for _ in range(2)]
        await asyncio.sleep(0)
        src.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(go())
    assert all(isinstance(x, OSError) for x in results)
    assert cache.info().entries == 0
    src.fail, src.gate = False, None
    assert run(cache.get("u", r, src.fetcher(r))) == [b"\x00" * 10]


@pytest.mark.parametrize("capacity", [0])
def test_capacity_zero_means_off(capacity: int) -> None:
    assert not RangeCache(capacity).enabled


def test_tiles_next_to_each_other_come_in_one_request() -> None:
    data = bytes(range(256)) * 40

    class Store:
        def __init__(self) -> None:
            self.calls: list[tuple[int, int]] = []

        async def get_range_async(self, key: str, *, start: int, end: int) -> bytes:
            self.calls.append((start, end))
            return data[start:end]

    store = Store()
    # two tiles 8 bytes apart (GDAL's leader and trailer), one far away, given out of order
    ranges = [(5000, 100), (0, 100), (108, 50)]
    got = run(fetch_runs(store, "k", ranges))
    assert [bytes(g) for g in got] == [data[o : o + n] for o, n in ranges]
    assert sorted(store.calls) == [(0, 158), (5000, 5100)]
