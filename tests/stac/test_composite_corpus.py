"""Composites with masks on real STAC items (tests/stac/corpus: Earth Search v0 / v1 / c1 and
Planetary Computer Sentinel-2, stactools T01KAB across 180, Planetary Computer and USGS Landsat
C2 L2), local COGs written to each item's metadata, three copies moved apart as three dates:
`daskcog.load(..., mask=Mask(...), method=m, groupby="all")` against odc-stac's way (load the
bands and the mask asset, `where(clear & band != nodata)`, reduce over time) on odc-stac's grid."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest

import daskcog
from tests.stac.corpus.harness import Case, materialise_case

pytest.importorskip("odc.stac")

SCL_DROP = [0, 1, 3, 8, 9, 10]
QA_BITS = [1, 2, 3, 4]
SHIFT = {1: (60.0, -40.0), 2: (-20.0, 100.0)}
NO_TYPE = ("usgs-landsat-c2l2-sr", "es-v0-sentinel-s2-l2a-cogs")  # metadata states no data type
CASES = [
    ("es-v1-sentinel-2-l2a", ("red", "green", "blue"), "scl", "classes"),
    ("es-v1-sentinel-2-c1-l2a", ("red", "green", "blue"), "scl", "classes"),
    ("pc-sentinel-2-l2a", ("B04", "B03", "B02"), "SCL", "classes"),
    ("es-v0-sentinel-s2-l2a-cogs", ("B04", "B03", "B02"), "SCL", "classes"),
    ("stactools-sentinel2-T01KAB", ("red", "green", "blue"), "scl", "classes"),
    ("pc-landsat-c2-l2", ("red", "green", "blue"), "qa_pixel", "bits"),
    # no nodata in file or metadata, loaded as float: its real zeros (9 pixels) stay 0
    ("usgs-landsat-c2l2-sr", ("red", "green", "blue"), "qa_pixel", "bits"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("composite-corpus")


def _odc_way(ds, bands, mask_asset, kind, method):
    m = ds[mask_asset]
    if kind == "classes":
        clear = ~m.isin(SCL_DROP)
    else:
        clear = (m.fillna(0).astype("int64") & sum(1 << b for b in QA_BITS)) == 0
    clear = clear & m.notnull()
    if m.attrs.get("nodata") is not None:
        clear = clear & (m != m.attrs["nodata"])
    out = {}
    for b in bands:
        v = ds[b]
        ok = clear if v.attrs.get("nodata") is None else clear & (v != v.attrs["nodata"])
        if method == "count":
            out[b] = ok.sum("time").values.astype("float64")
        else:
            kept = v.where(ok).astype("float64")
            out[b] = (kept.median("time") if method == "median" else kept.mean("time")).values
    return out


@pytest.mark.parametrize("method", ["median", "mean", "count"])
@pytest.mark.parametrize(("name", "bands", "mask_asset", "kind"), CASES)
def test_masked_composite_equals_odc_stac_way(name, bands, mask_asset, kind, method, folder):
    import pystac
    from odc.stac import load as odc_load

    case = Case(
        f"composite-{name}", (name, name, name), (*bands, mask_asset), shift=SHIFT, target=60,
        dtype={b: "uint16" for b in (*bands, mask_asset)} if name in NO_TYPE else {},
    )
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = odc_load(
            [pystac.Item.from_dict(copy.deepcopy(i)) for i in items],
            bands=[*bands, mask_asset], groupby="id", resampling="nearest",
        ).compute()
        mask = (
            daskcog.Mask(mask_asset, drop=SCL_DROP) if kind == "classes"
            else daskcog.Mask(mask_asset, bits=QA_BITS)
        )
        ours = daskcog.load(
            items, bands=list(bands), mask=mask, method=method, groupby="all", dtype="float64",
            geobox=ds.odc.geobox,
        ).to_dataset().compute()
    theirs = _odc_way(ds, bands, mask_asset, kind, method)
    for b in bands:
        got = np.asarray(ours[b].values).squeeze()
        want = theirs[b]
        if method == "count":
            np.testing.assert_array_equal(got, want, err_msg=b)
        else:  # no clear view: odc-stac's NaN, ours the fill (the band's nodata, or NaN)
            fill = ours[b].attrs.get("nodata", np.nan)
            got = np.where(np.isnan(want) & ((got == fill) | np.isnan(got)), np.nan, got)
            np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True, err_msg=b)
