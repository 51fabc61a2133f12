"""The reader cache and the graph builder driven by a fake reader (no files, no store).

The fake satisfies georeader's `AsyncGeoData` Protocol; what these tests check
needs no pixels: the cache's failure and key rules, and the graph's names, size
and contents. (test_reader_cache.py drives its sharing, LRU and fork rules with
the same fake; test_graph.py checks the graph against real files.)
"""

from __future__ import annotations

import asyncio
import pickle

import pytest
from rasterio.windows import Window

import daskcog
from daskcog.reading import cog_array
from georeader import AsyncGeoData, ObjectNotFoundError, conforms
from tests.daskcog.fake_reader import FakeOpener, fake_cache

URL = "https://fake.invalid/scene.tif"


def test_the_fake_is_an_async_reader() -> None:
    reader = asyncio.run(fake_cache()[0].reader(URL, {}))
    assert conforms(reader, AsyncGeoData)
    assert reader.shape == (2, 4096, 4096)
    assert reader.footprint[0] == (500_000.0, 4_200_000.0)


def test_failures_are_not_cached() -> None:
    cache, opener = fake_cache(missing=[URL])

    async def many():
        return await asyncio.gather(
            *(cache.reader(URL, {}) for _ in range(5)), return_exceptions=True
        )

    errors = asyncio.run(many())
    assert all(isinstance(e, ObjectNotFoundError) and URL in str(e) for e in errors), errors
    assert (cache.info().opens, cache.info().joins, cache.info().failures, cache.info().size) == (
        1,
        4,
        1,
        0,
    )
    opener.missing.clear()  # the object appears
    assert asyncio.run(cache.reader(URL, {})).shape == (2, 4096, 4096)
    assert (cache.info().opens, cache.info().failures, cache.info().size) == (2, 1, 1)


def test_lru_bound_and_store_options_in_the_key() -> None:
    cache, _ = fake_cache(maxsize=2)
    a, b, c = (f"https://fake.invalid/{n}.tif" for n in "abc")

    def get(url: str, **options: object) -> None:
        asyncio.run(cache.opened(url, dict(options)))

    get(a), get(b), get(a), get(c)  # a hit, c evicts b
    info = cache.info()
    assert (info.opens, info.hits, info.evictions, info.size) == (3, 1, 1, 2)
    get(a, region="x")  # other options: another entry
    assert cache.info().opens == 4
    with pytest.raises(ObjectNotFoundError):
        get(a, refuse=True)
    assert cache.info().failures == 1


@pytest.fixture
def fake_graphs(monkeypatch: pytest.MonkeyPatch) -> FakeOpener:
    """daskcog.open over the fake: its header comes from the fake cache."""
    cache, opener = fake_cache()
    monkeypatch.setattr(cog_array, "CACHE", cache)
    return opener


def test_graph_names_are_deterministic_and_differ_with_options(fake_graphs: FakeOpener) -> None:
    a, b = daskcog.open(URL, chunks=512), daskcog.open(URL, chunks=512)
    assert a.data.name == b.data.name and a.data.name.startswith("daskcog-read-")
    others = [
        daskcog.open(URL, chunks=256),
        daskcog.open(URL, chunks=512, overview_level=1),
        daskcog.open(URL, chunks=512, bands=[2]),
        daskcog.open(URL, chunks=512, fill_value=7),
        daskcog.open(URL, chunks=512).isel_window(Window(0, 0, 100, 100)),
        daskcog.open("https://fake.invalid/other.tif", chunks=512),
    ]
    assert len({a.data.name, *(o.data.name for o in others)}) == 7
    assert len(fake_graphs.calls) == 2  # one header per URL, whatever was built


def test_graph_is_constant_size_and_holds_only_plain_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache, _ = fake_cache(tile=(16, 16))
    monkeypatch.setattr(cog_array, "CACHE", cache)
    small = daskcog.open(URL, chunks=2048)
    huge = daskcog.open(URL, chunks=16)
    assert (small.data.npartitions, huge.data.npartitions) == (2 * 2, 256 * 256)
    assert not huge.data.__dask_graph__().layers[huge.data.name].is_materialized()
    blob_small, blob = (pickle.dumps(g.data.__dask_graph__()) for g in (small, huge))
    assert len(blob) < 10_000 and len(blob) - len(blob_small) < 4_000
    for forbidden in (b"FakeReader", b"FakeHeader", b"FakeOpener"):
        assert forbidden not in blob, forbidden
    assert huge.source.tile == (16, 16) and huge.source.url == URL
