"""A groupby property that no item has is refused, by name.

odc-stac keys every item None then, so all items fall into one step: a misspelt
groupby="solarday" silently mosaics a whole season into one image. daskcog refuses it, as it
already did for a stac-geoparquet file without that column; items of which only some have
the property keep the rule that steps without a key come last."""

from __future__ import annotations

from pathlib import Path

import pytest

import daskcog
from daskcog.mosaics.grouping import GroupbyError
from tests.stac import season


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return season.s2_season(tmp_path_factory.mktemp("gbprop"), dates=3, size=64, seed=5)


def test_a_misspelt_word_is_refused_with_the_word_meant(items: list[dict]) -> None:
    with pytest.raises(GroupbyError, match=r"groupby='solarday' \(did you mean 'solar_day'\?\)"):
        daskcog.load(items, bands=["B02"], groupby="solarday", chunks=32)


def test_a_property_no_item_has_is_refused(items: list[dict]) -> None:
    with pytest.raises(GroupbyError, match=r"'platform'.*no item has that property"):
        daskcog.load(items, bands=["B02"], groupby="platform", chunks=32)


def test_a_property_some_items_have_groups_the_rest_last(items: list[dict]) -> None:
    """(odc-stac 0.5 fails here itself: it sorts None against the strings.)"""
    tagged = [dict(i, properties=dict(i["properties"])) for i in items]
    tagged[0]["properties"]["platform"] = "sentinel-2a"
    tagged[2]["properties"]["platform"] = "sentinel-2a"
    stack = daskcog.load(tagged, bands=["B02"], groupby="platform", chunks=32)
    assert stack.shape[0] == 2
    assert [len(m) for m in stack.steps.members] == [2, 1]


def test_the_same_rule_as_a_stac_geoparquet_file(items: list[dict], tmp_path: Path) -> None:
    sga = pytest.importorskip("stac_geoparquet.arrow")
    path = tmp_path / "items.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    with pytest.raises(GroupbyError, match="'platform'"):
        daskcog.load(str(path), bands=["B02"], groupby="platform", chunks=32)
