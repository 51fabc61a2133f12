"""The output grid on the real-item corpus (tests/stac/corpus), with the grid keywords
odc-stac users pass: a bbox inside the items, an anchor, an explicit CRS and resolution.

For every corpus case and variant, daskcog's grid must be odc-stac's GeoBox and its
coordinates odc-stac's to the last bit (`xr.align(join="exact")`); pixels are compared
where the output grid is the items' own (no resampling) and the case agrees with odc-stac
otherwise (`test_corpus.XFAIL` lists the cases that do not yet, for reasons unrelated to
the grid).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest

import daskcog
from tests.stac.corpus.harness import Case, grid_of, load_both, materialise_case
from tests.stac.test_corpus import CASES, XFAIL

pytest.importorskip("odc.stac")
pytest.importorskip("pystac")
xr = pytest.importorskip("xarray")


def _inner_bbox(items: list[dict]) -> tuple[float, float, float, float]:
    """The middle third of the first item's lon/lat bbox (inside it, off its pixel lines)."""
    west, south, east, north = items[0]["bbox"][:4]
    if east < west:  # across the antimeridian: its east part
        west, east = -180.0, east
    dx, dy = (east - west) / 3, (north - south) / 3
    return (west + dx, south + dy, east - dx, north - dy)


VARIANTS = {
    "bbox": lambda items: {"bbox": _inner_bbox(items)},
    "bbox-anchor-center": lambda items: {"bbox": _inner_bbox(items), "anchor": "center"},
    "lon-lat": lambda items: dict(zip(("lon", "lat"), (
        (_inner_bbox(items)[0], _inner_bbox(items)[2]),
        (_inner_bbox(items)[1], _inner_bbox(items)[3]),
    ), strict=True)),
}


def _usable(case: Case) -> bool:
    return "stac_cfg" not in case.load or "stac_cfg" in inspect.signature(daskcog.load).parameters


def _on_the_items_grid(items: list[dict], case: Case, geobox) -> bool:
    """Whether the output pixels are the finest asset's own (whole-pixel offsets)."""
    from odc.geo.math import extract_anchor

    item = items[0]
    grids = [grid_of(item["assets"][k], item["properties"]) for k in case.assets
             if k in item["assets"] and "proj:transform" in {**item["properties"],
                                                              **item["assets"][k]}]
    if not grids:
        return False
    finest = min(grids, key=lambda g: abs(g[0].a))[0]
    return (abs(finest.a), abs(finest.e)) == (abs(geobox.affine.a), abs(geobox.affine.e)) and \
        extract_anchor(finest) == geobox.anchor


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grid-corpus-cogs")


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if "bbox" not in c.load])
def test_grid_corpus_equals_odc_stac(case: Case, variant: str, folder: Path) -> None:
    if not _usable(case):
        pytest.skip("stac_cfg= not in daskcog.load yet")
    items = materialise_case(case, folder)
    load = {**case.load, **VARIANTS[variant](items)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, load)
    assert ours.odc.geobox == theirs.odc.geobox
    xr.align(ours, theirs, join="exact")
    first = next(iter(theirs.data_vars))
    assert ours[first].dims == theirs[first].dims
    if case.id in XFAIL or not _on_the_items_grid(items, case, ours.odc.geobox):
        return  # (off the items' grid every pixel is a nearest tie: GDAL's, see test_grid_odc)
    for name in theirs.data_vars:
        assert ours[name].dtype == theirs[name].dtype, name
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
