"""One set of groupby rules for items, stac-geoparquet rows and daskcog.stack
(`daskcog.mosaics.grouping`, issue 20 item 6).

"id" is odc-stac's: one step per input in input order (odc-stac's `_groupby_id` returns the
item's position). Before, a stac-geoparquet load grouped "id" by the id string (steps in id
order) while item loads grouped by position; these tests load items in an order that is
neither by id nor by time, so the two meanings differ."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.mosaics.grouping import GroupbyError, group
from tests.stac import season


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    items = season.s2_season(tmp_path_factory.mktemp("group"), dates=5, size=64, seed=7)
    order = [3, 0, 4, 1, 2]  # neither by id nor by time
    out = [items[i] for i in order]
    for k, item in enumerate(out):
        item["id"] = f"item-{'edcba'[k]}"  # ids sort against the input order too
    return out


def _times(stack) -> list[np.datetime64]:
    return [np.datetime64(t, "ns") for t in stack.to_xarray().time.values]


def test_id_is_odc_stacs_position_for_items(shuffled) -> None:
    import odc.stac
    import pystac

    ours = daskcog.load(shuffled, bands=["B02"], groupby="id", chunks=64)
    theirs = odc.stac.load([pystac.Item.from_dict(i) for i in shuffled], bands=["B02"],
                           groupby="id", chunks={})
    expected = [np.datetime64(t, "ns") for t in theirs.time.values]
    assert _times(ours) == expected
    when = [np.datetime64(i["properties"]["datetime"][:-1], "ns") for i in shuffled]
    assert expected == when  # input order: neither sorted by time nor by id


def test_id_is_the_row_number_for_stac_geoparquet(shuffled, tmp_path: Path) -> None:
    sga = pytest.importorskip("stac_geoparquet.arrow")
    path = tmp_path / "shuffled.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(shuffled).read_all(), str(path))
    for groupby in ("id", "all", "time"):
        from_items = daskcog.load(shuffled, bands=["B02"], groupby=groupby, chunks=32,
                                  method="max")
        from_rows = daskcog.load(str(path), bands=["B02"], groupby=groupby, chunks=32,
                                 method="max")
        assert _times(from_rows) == _times(from_items), groupby
        np.testing.assert_array_equal(from_rows.data.compute(), from_items.data.compute())


def test_all_is_one_step_of_every_item(shuffled) -> None:
    stack = daskcog.load(shuffled, bands=["B02"], groupby="all", method="count", chunks=64)
    assert stack.shape[0] == 1
    # the step's time: its first item's (sorted by datetime, id: odc-stac's order)
    first = min(i["properties"]["datetime"] for i in shuffled)
    assert _times(stack) == [np.datetime64(first[:-1], "ns")]
    assert int(stack.data.compute().max()) == len(shuffled)


def test_stack_follows_the_same_rules(tmp_path: Path) -> None:
    items = season.s2_season(tmp_path, dates=4, size=64, seed=2)
    urls = [i["assets"]["B02"]["href"] for i in items][::-1]
    # None is "id": one step per source, in the sources' order
    def names(seq):
        return [u.rsplit("/", 2)[-2] for u in seq]

    assert names(daskcog.stack(urls).keys) == names(urls)
    # keys sorted, missing keys last, whatever the sources' order
    s = daskcog.stack(urls, group_by=["b", None, "a", "b"])
    assert list(s.keys) == ["a", "b", None]
    assert [names(u) for u in s.urls] == [names([urls[2]]), names([urls[0], urls[3]]),
                                          names([urls[1]])]
    with pytest.raises(GroupbyError, match="sorted"):
        daskcog.stack(urls, group_by=[1, "a", 1, "a"])


def test_group_rules() -> None:
    t = [dt.datetime(2024, 1, d) for d in (3, 1, 2, 1)]
    g = group(["x", float("nan"), "x", "y"], t, ["d", "c", "b", "a"])
    assert g.keys[:2] == ("x", "y") and g.members == ((2, 0), (3,), (1,))
    kept = group(["x", None, "x", "y"], t, ["d", "c", "b", "a"], preserve_original_order=True)
    assert kept.members == ((0, 2), (3,), (1,))
    assert group([2, 1, 2], None, None).members == ((1,), (0, 2))
    with pytest.raises(GroupbyError):
        group([1, "a"], None, None)
