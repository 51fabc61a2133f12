"""A STAC load's last reader of a file releases its tiles (daskcog/mosaics/scene_uses.py).

Behaviour only (bytes held and sent, values; never time): after a load of revisits the
range cache and the decoded-tile table hold nothing of its files, the server sent the same
bytes as with the release off (no tile fetched twice), the values are the same, and a
second compute of the same array reads correctly again.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

import daskcog
from benchmarks import bench_stac
from benchmarks.servers import RangeServer
from daskcog.mosaics import scene_uses
from daskcog.mosaics.scene_uses import SceneUses
from daskcog.mosaics.warp_plans import PLANS
from daskcog.runtime import read_ahead
from georeader.io import RANGE_CACHE
from georeader.process_state import info

RES = bench_stac.RES
SIZE = 1024
DATES = ["2024-06-01T10:00:00Z", "2024-06-06T10:00:00Z", "2024-06-11T10:00:00Z"]
OPTIONS = {"client_options": {"allow_http": True}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("release")
    scenes, dates = [], []
    for d, date in enumerate(DATES):
        for c in range(2):  # two overlapping scenes side by side, one of them in zone 34
            rel = f"d{d}/s{c}.tif"
            crs = "EPSG:32633" if c == 0 else "EPSG:32634"
            x0, y0 = (700_000.0, 5_000_000.0) if c == 0 else (265_000.0, 5_000_500.0)
            bench_stac.write_scene(root / rel, crs, x0, y0, seed=10 * d + c, size=SIZE)
            scenes.append((rel, crs, x0, y0))
            dates.append(date)
    with RangeServer(root) as server:
        items = bench_stac.items_for("r", server.url_for("").rstrip("/"), scenes, size=SIZE,
                                     dates=dates)
        yield server, items


def _fresh() -> None:
    PLANS.clear()
    daskcog.cache_clear()
    RANGE_CACHE.clear()
    read_ahead.clear()
    scene_uses.USES.clear()


def _load(items: list[dict]):  # noqa: ANN202
    return daskcog.load(items, groupby="solar_day", chunks=512, crs="EPSG:32633",
                        resolution=RES, **OPTIONS).data


def _decoded_bytes() -> int:
    return int(info()["georeader.decoded_tiles"].size_bytes)


def test_released_after_the_load_same_bytes_and_values(served) -> None:  # noqa: ANN001
    server, items = served
    with dask.config.set({"daskcog.release-read-tiles": False}):
        _fresh()
        server.reset()
        reference = _load(items).compute(scheduler="threads", num_workers=4)
        kept = server.stats().bytes_sent
        assert RANGE_CACHE.info().size_bytes > 0  # the LRU alone keeps them
    _fresh()
    server.reset()
    data = _load(items)
    assert data.numblocks[0] == 3 and data.numblocks[2] * data.numblocks[3] > 4
    got = data.compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(got, reference)
    assert server.stats().bytes_sent == kept  # no tile fetched twice
    assert RANGE_CACHE.info().size_bytes == 0
    assert RANGE_CACHE.info().forgotten_bytes > 0
    assert _decoded_bytes() == 0
    assert scene_uses.USES.info()["released"] == len(items)
    # the zone-34 scene's revisits were warped through plans, dropped with its last file
    plans = PLANS.info()
    assert plans["made"] > 0 and plans["hits"] > 0
    assert plans["plans"] == 0 and plans["bytes"] == 0
    # computed again: a new pass, its tiles fetched as the first time (headers cached)
    # and released again
    tiles = RANGE_CACHE.info().fetched_bytes
    again = data.compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(again, reference)
    assert RANGE_CACHE.info().fetched_bytes == 2 * tiles
    assert RANGE_CACHE.info().size_bytes == 0
    assert scene_uses.USES.info()["released"] == 2 * len(items)


def test_part_of_a_load_releases_nothing_it_may_need(served) -> None:  # noqa: ANN001
    """A slice's windows are not whole chunks: no count goes down, the LRU keeps the
    bytes, the values are the whole load's."""
    _, items = served
    _fresh()
    whole = _load(items).compute(scheduler="threads", num_workers=4)
    _fresh()
    part = _load(items)[:, :, 100:700, 50:900].compute(scheduler="threads", num_workers=4)
    np.testing.assert_array_equal(part, whole[:, :, 100:700, 50:900])


def test_plans_forgotten_by_tag() -> None:
    from daskcog.mosaics.warp_plans import Plan, PlanTable

    table = PlanTable()

    def make() -> Plan:
        return Plan.from_picks(np.arange(16, dtype=np.float32).reshape(4, 4))

    assert table.plan("k1", True, make, tag="g1") is not None
    assert table.plan("k2", True, make, tag="g1") is not None
    assert table.plan("k3", True, make, tag="g2") is not None
    assert table.plan("k4", True, make) is not None  # no tag: only the LRU drops it
    assert table.forget("g1") == 2
    assert table.info()["plans"] == 2
    assert table.forget("g1") == 0
    table.plan("k3", True, make, tag="g2")
    assert table.info()["hits"] == 1  # k3 kept


def test_counts_down_and_starts_a_new_pass() -> None:
    uses = SceneUses()
    builds = []

    def build():  # noqa: ANN202
        builds.append(1)
        return {"a": 2, "b": 1}, {}, {}, 3

    uses.done("x", 0, ["a", "b"], build)
    assert uses.released == 1  # b: its one chunk is done
    uses.done("x", 1, ["a"], build)
    assert uses.released == 2 and len(builds) == 1
    uses.done("x", 0, ["a", "b"], build)  # chunk 0 again: a new pass
    assert len(builds) == 2 and uses.released == 3
    uses.done("x", 7, ["a"], build)  # not a chunk of the table: ignored
    assert uses.released == 3
    none = SceneUses()
    none.done("y", 0, ["a"], lambda: None)  # too large: no table, nothing released
    assert none.released == 0
