"""A relative asset href is relative to the item's own location (its self link), as STAC says
and pystac's `get_absolute_href` and odc-stac read it.

Before, daskcog read "./B02.tif" relative to the process's working directory even when the item
said where it lives: another file, or "not found" naming a path the catalogue never meant.
Without a self link the hrefs stay relative to the working directory, as before
(tests/stac/test_grid_odc.py; odc-stac refuses them)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.stac.items.item_dicts import absolute_hrefs
from tests.stac import season


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return season.s2_season(tmp_path_factory.mktemp("relhref"), dates=1, size=64, seed=3)[0]


def _relative(item: dict, self_href: str | None, prefix: str = "./") -> dict:
    out = copy.deepcopy(item)
    for asset in out["assets"].values():
        path = asset["href"].removeprefix("file://")
        asset["href"] = prefix + os.path.basename(path)
    out["links"] = [] if self_href is None else [{"rel": "self", "href": self_href}]
    return out


def _folder(item: dict) -> Path:
    return Path(item["assets"]["B02"]["href"].removeprefix("file://")).parent


def test_relative_hrefs_follow_the_self_link(item: dict, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import odc.stac
    import pystac

    decoy = tmp_path / "B02.tif"  # what the working directory would have given
    decoy.write_bytes(b"not this file")
    monkeypatch.chdir(tmp_path)
    expected = daskcog.load([item], bands=["B02"], chunks=32).data.compute()
    for self_href in ((_folder(item) / "item.json").as_uri(), str(_folder(item) / "item.json")):
        rel = _relative(item, self_href)
        got = daskcog.load([rel], bands=["B02"], chunks=32).data.compute()
        np.testing.assert_array_equal(got, expected)
    theirs = odc.stac.load([pystac.Item.from_dict(_relative(item, (_folder(item) / "item.json")
                                                             .as_uri()))], bands=["B02"])
    np.testing.assert_array_equal(theirs.B02.values, expected[:, 0])


def test_a_parent_folder_and_an_object_store_link(item: dict) -> None:
    rel = _relative(item, "s3://bucket/catalog/S2_00/items/item.json", prefix="../")
    hrefs = {a["href"] for a in absolute_hrefs(rel)["assets"].values()}
    assert "s3://bucket/catalog/S2_00/B02.tif" in hrefs
    rel = _relative(item, "https://example.com/a/b/item.json?x=1")
    assert absolute_hrefs(rel)["assets"]["B02"]["href"] == "https://example.com/a/b/B02.tif"


def test_absolute_hrefs_are_left_as_they_are(item: dict) -> None:
    same = absolute_hrefs(item)
    assert same is item  # nothing to resolve: no copy


def test_without_a_self_link_the_working_directory_stays(item: dict) -> None:
    """Nothing to resolve against: the hrefs stay as they are (read from the working
    directory, tests/stac/test_grid_odc.py; odc-stac refuses them)."""
    rel = _relative(item, None)
    assert absolute_hrefs(rel) is rel
