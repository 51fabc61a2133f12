"""Real STAC items (tests/stac/corpus/items, origins in ORIGINS.md) loaded by daskcog and by
odc-stac with the same keywords, on local COGs that match each item's metadata.

Each case says what it exercises. A case that does not agree yet is an xfail whose reason
names the issue-17 item that fixes it; a deliberate difference is its own test below,
asserting daskcog's behaviour and saying why.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.stac import StacError
from tests.stac.corpus.harness import (
    Case,
    differences,
    gdal_reference,
    load_both,
    materialise_case,
)

pytest.importorskip("odc.stac")
pytest.importorskip("pystac")


CASES: list[Case] = [
    Case(
        "es-v0-s2-stac-cfg", ("es-v0-sentinel-s2-l2a-cogs",), ("B04", "B11"),
        {"bands": ["B04", "B11"], "stac_cfg": {
            "sentinel-s2-l2a-cogs": {"assets": {"*": {"data_type": "uint16", "nodata": 0}}}}},
        dtype={"B04": "uint16", "B11": "uint16"}, file_nodata={"B04": 0, "B11": 0},
        exercises="Earth Search v0 (STAC 1.0.0-beta.1): no raster:bands (stac_cfg gives the "
        "data type), 10 m and 20 m assets",
    ),
    Case(
        "es-v1-s2-common-names", ("es-v1-sentinel-2-l2a",), ("red", "scl", "visual"),
        {"bands": ["red", "scl"]},
        exercises="Earth Search v1: common name `red` on `red` and the 3-band `visual`",
    ),
    Case(
        "es-c1-s2-common-names", ("es-v1-sentinel-2-c1-l2a",), ("red", "nir08", "visual"),
        {"bands": ["red", "nir08"]},
        exercises="Earth Search collection 1: common names, 10 m + 20 m",
    ),
    Case(
        "es-v1-cop-dem", ("es-v1-cop-dem-glo-30",), ("data",), {"bands": ["data"]},
        exercises="Copernicus DEM (Earth Search): float32, EPSG:4326, west edge past -180",
    ),
    Case(
        "pc-s2-keys", ("pc-sentinel-2-l2a",), ("B04", "SCL"), {"bands": ["B04", "SCL"]},
        exercises="Planetary Computer Sentinel-2 with raster:bands: uint16 beside uint8",
    ),
    Case(
        "pc-s2-common-names", ("pc-sentinel-2-l2a",), ("B04", "B03", "visual"),
        {"bands": ["red", "green"]},
        exercises="Planetary Computer Sentinel-2: `red` on B04 and the 3-band visual",
    ),
    Case(
        "pc-s2-two-tiles-fused", ("pc-sentinel-2-l2a", "pc-sentinel-2-l2a"), ("B04", "SCL"),
        {"bands": ["red", "SCL"], "bbox": (-148.0, 60.4, -147.0, 61.0)},
        shift={1: (54_900.0, -36_600.0)},
        exercises="Planetary Computer Sentinel-2 and a copy moved half a tile south-east: "
        "two overlapping items of one time step fused (nodata 0 holes filled by the other)",
    ),
    Case(
        "pc-landsat", ("pc-landsat-c2-l2",), ("red", "nir08", "qa_pixel"),
        {"bands": ["red", "nir08", "qa_pixel"]},
        exercises="Landsat C2 L2: nodata 0 and 1, scale/offset, item-level proj:*",
    ),
    Case(
        "pc-s1-rtc", ("pc-sentinel-1-rtc",), ("vv", "vh"), {"bands": ["vv", "vh"]},
        exercises="Sentinel-1 RTC: float32 with nodata -32768",
    ),
    Case(
        "pc-naip", ("pc-naip",), ("image",),
        {"bands": ["red"], "stac_cfg": {"naip": {"assets": {"image": {"data_type": "uint8"}}}}},
        dtype={"image": "uint8"},
        exercises="NAIP: common names of one 4-band asset, eo:bands only (no raster:bands)",
    ),
    Case(
        "pc-cop-dem", ("pc-cop-dem-glo-30",), ("data",), {"bands": ["data"]},
        dtype={"data": "float32"},
        exercises="Copernicus DEM (Planetary Computer): no raster:bands, 10:1 pixels",
    ),
    Case(
        "pc-modis-file-nodata", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
        {"bands": ["250m_16_days_NDVI"]}, file_nodata={"250m_16_days_NDVI": -3000},
        exercises="MODIS 13Q1 h35v10: sinusoidal WKT, nodata -3000 only in the file",
    ),
    Case(
        "pc-modis-antimeridian-4326", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
        {"bands": ["250m_16_days_NDVI"], "crs": "EPSG:4326", "resolution": 0.05,
         "bbox": (178.0, -16.0, 179.0, -14.0)},
        file_nodata={"250m_16_days_NDVI": -3000},
        exercises="MODIS h35v10 reaching past 180 degrees, loaded to EPSG:4326",
    ),
    Case(
        "pc-modis-headers", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
        {"bands": ["250m_16_days_NDVI"], "stac_cfg": {"ignore_proj": True}},
        file_nodata={"250m_16_days_NDVI": -3000},
        exercises="MODIS without proj:* (stac_cfg ignore_proj): grids and nodata from the "
        "headers read on the client, the same answer as with proj:*",
    ),
    Case(
        "pc-3dep-compound-crs", ("pc-3dep-lidar-dsm",), ("data",), {"bands": ["data"]},
        dtype={"data": "float32"}, file_nodata={"data": -9999},
        exercises="3DEP lidar DSM: PROJJSON compound CRS (NAD83 / UTM 11N + NAVD88)",
    ),
    Case(
        "pc-worldcover-roles", ("pc-esa-worldcover",), ("map", "input_quality"),
        {"bands": ["map", "input_quality.1"]},
        exercises="ESA WorldCover: band 1 of a 3-band asset with role `metadata`",
    ),
    Case(
        "pc-worldcover-default-bands", ("pc-esa-worldcover",), ("map", "input_quality"), {},
        exercises="ESA WorldCover, no bands=: every GeoTIFF asset but thumbnails and "
        "overviews, role `metadata` included (odc-stac's default set)",
    ),
    Case(
        "pc-nicfi", ("pc-planet-nicfi-analytic",), ("data",), {"bands": ["red", "nir"]},
        exercises="Planet NICFI: EPSG:3857, 5 raster:bands beside 4 eo:bands",
    ),
    Case(
        "dea-ard-file-nodata", ("dea-ga_ls8c_ard_3",), ("nbart_red", "oa_fmask"),
        {"bands": ["nbart_red", "oa_fmask"], "stac_cfg": {"assets": {
            "nbart_red": {"data_type": "int16"}, "oa_fmask": {"data_type": "uint8"}}}},
        dtype={"nbart_red": "int16", "oa_fmask": "uint8"},
        file_nodata={"nbart_red": -999, "oa_fmask": 0},
        exercises="DEA Landsat ARD (STAC 1.0.0-beta.2): nodata only in the files",
    ),
    Case(
        "usgs-landsat-stac-cfg", ("usgs-landsat-c2l2-sr",), ("red", "nir08"),
        {"bands": ["red", "nir08"], "stac_cfg": {"landsat-c2l2-sr": {"assets": {
            "*": {"data_type": "uint16", "nodata": 0}}}}},
        dtype={"red": "uint16", "nir08": "uint16"}, file_nodata={"red": 0, "nir08": 0},
        exercises="USGS Landsat C2 L2 (landsatlook, STAC 1.0.0): no raster:bands, item-level "
        "proj:*, stac_cfg for the data type",
    ),
    Case(
        "pc-io-lulc-nodata-only", ("pc-io-lulc-9-class",), ("data",),
        {"bands": ["data"], "stac_cfg": {"io-lulc-9-class": {"assets": {
            "*": {"data_type": "uint8"}}}}},
        dtype={"data": "uint8"},
        exercises="Impact Observatory LULC (UTM 60N, east edge on 180): raster:bands with "
        "nodata 0 and no data type",
    ),
    Case(
        "stactools-s2-180-utm", ("stactools-sentinel2-T01KAB",), ("red", "scl"),
        {"bands": ["red", "scl"]},
        exercises="Sentinel-2 T01KAB (stactools, proj v1.1) across 180 degrees, native grid",
    ),
    Case(
        "stactools-s2-180-4326", ("stactools-sentinel2-T01KAB",), ("red",),
        {"bands": ["red"], "crs": "EPSG:4326", "resolution": 0.01,
         "bbox": (179.3, -17.2, 179.8, -16.3)},
        exercises="Sentinel-2 T01KAB to EPSG:4326, east of the antimeridian",
    ),
    Case(
        "stactools-s2-projv2", ("stactools-sentinel2-T01WCP-projv2",), ("red",),
        {"bands": ["red"]},
        exercises="stactools Sentinel-2 with projection v2 (`proj:code`)",
    ),
    Case(
        "ga-lidar-float-file-nodata", ("ga-lidar-dem",), ("dem",), {"bands": ["dem"]},
        file_nodata={"dem": -9999},
        exercises="GA lidar DEM: float32 (item property data_type), nodata -9999 in the file",
    ),
]

XFAIL: dict[str, str] = {}
"""Case id -> the issue-17 item that will fix its disagreement (none left)."""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus-cogs")


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=XFAIL[case.id], strict=False)] if case.id in XFAIL else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("given", ["dicts", "pystac"])
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_equals_odc_stac(case: Case, given: str, folder: Path) -> None:
    """Item dicts (JSON, a search's items_as_dicts) and pystac Items (read through their
    attributes, not to_dict()) load the same, equal to odc-stac's load."""
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load, pystac_items=given == "pystac")
    assert differences(ours, theirs) == []


def test_corpus_has_ten_collections() -> None:
    from tests.stac.corpus.harness import raw_item

    collections = {raw_item(n).get("collection") or n for c in CASES for n in c.items}
    assert len(collections) >= 10, collections


# -- deliberate differences -------------------------------------------------------------------
def test_no_data_type_in_metadata_reads_the_files_type(folder: Path) -> None:
    """Earth Search v0 states no data type. odc-stac then loads float32 (its default for
    unknown bands, NaN for the file's nodata); daskcog reads one header per asset key and
    keeps the file's type (uint16 here): no silent widening, and `stac_cfg` or `dtype=`
    give odc-stac's result when wanted."""
    case = Case("es-v0-header-dtype", ("es-v0-sentinel-s2-l2a-cogs",), ("B04",),
                {"bands": ["B04"]}, dtype={"B04": "uint16"}, file_nodata={"B04": 0})
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
    assert theirs["B04"].dtype == "float32"
    assert ours["B04"].dtype == "uint16"


def test_naip_band_without_raster_bands_loads(folder: Path) -> None:
    """NAIP states four eo:bands but no raster:bands: odc-stac counts one band and fails
    on `nir` (band 4); daskcog takes the band count from eo:bands and loads it."""
    import pystac
    from odc.stac import load as odc_load

    import daskcog

    case = Case("naip-nir", ("pc-naip",), ("image",), {"bands": ["nir"]},
                dtype={"image": "uint8"})
    items = materialise_case(case, folder)
    with pytest.raises(KeyError):
        odc_load([pystac.Item.from_dict(it) for it in items], bands=["nir"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = daskcog.load(items, bands=["nir"]).to_dataset().compute()
    assert list(ours.data_vars) == ["nir"]
    assert int(ours["nir"].max()) > 0


def test_beta_eo_band_indices_load(folder: Path) -> None:
    """USGS Landsat in STAC 1.0.0-beta.2 lists eo:bands once on the item and gives each asset
    indices into it (issue 17 item 10). pystac's EO extension (so odc-stac) fails on them
    with an AttributeError; daskcog resolves the indices and loads `SR_B4` by its name."""
    import pystac
    import rasterio
    from odc.stac import load as odc_load

    import daskcog

    case = Case("usgs-beta", ("usgs-landsat-c2l2-sr-1.0.0-beta.2",), ("SR_B4.TIF",),
                {"bands": ["SR_B4"]}, dtype={"SR_B4.TIF": "uint16"})
    items = materialise_case(case, folder)
    with pytest.raises(AttributeError):
        odc_load([pystac.Item.from_dict(it) for it in items], bands=["SR_B4"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = daskcog.load(items, bands=["SR_B4"]).to_dataset().compute()
    with rasterio.open(items[0]["assets"]["SR_B4.TIF"]["href"]) as src:
        assert (ours["SR_B4"].values[0] == src.read(1)).all()


def test_multi_band_asset_by_key_gives_every_band(folder: Path) -> None:
    """An asset key names all its bands in daskcog (`input_quality.1` .. `.3`); odc-stac
    gives band 1 only under the key. Kept: no band of what was asked for is dropped
    silently (README, differences from odc-stac)."""
    import daskcog

    case = Case("worldcover-key", ("pc-esa-worldcover",), ("input_quality",),
                {"bands": ["input_quality"]})
    items = materialise_case(case, folder)
    ours = daskcog.load(items, bands=["input_quality"]).to_dataset()
    assert list(ours.data_vars) == [f"input_quality.{i}" for i in (1, 2, 3)]


def test_alias_tie_between_single_band_assets_is_refused(folder: Path) -> None:
    """`rededge` names rededge1, rededge2 and rededge3 (one band each) on Earth Search:
    odc-stac picks `rededge1` by sorting the keys; daskcog refuses the guess and names the
    candidates (a different band is a silently different answer). The single-band over
    multi-band rule (issue 17 item 8) is odc-stac's and is followed: see the common-name
    corpus cases."""
    import daskcog
    from daskcog.stac import BandError

    items = materialise_case(
        Case("es-rededge", ("es-v1-sentinel-2-l2a",), ("rededge1",)), folder
    )
    with pytest.raises(BandError, match="rededge1.*rededge2.*rededge3"):
        daskcog.load(items, bands=["rededge"])


def test_pystac_item_built_in_code_loads(folder: Path) -> None:
    """A pystac Item built in code keeps `datetime` on the object until `to_dict()`
    (issue 17 item 11): the load takes it from there, and equals odc-stac's."""
    import pystac
    from odc.stac import load as odc_load

    import daskcog

    (done,) = materialise_case(
        Case("in-code", ("pc-sentinel-1-rtc",), ("vv",), {"bands": ["vv"]}), folder
    )
    when = pystac.Item.from_dict(done).datetime
    item = pystac.Item(
        done["id"], done["geometry"], done["bbox"], when,
        {k: v for k, v in done["properties"].items() if k != "datetime"},
        stac_extensions=done["stac_extensions"],
    )
    item.add_asset("vv", pystac.Asset.from_dict(done["assets"]["vv"]))
    assert "datetime" not in item.properties
    ours = daskcog.load([item], bands=["vv"]).to_dataset().compute()
    theirs = odc_load([item], bands=["vv"])
    # the same instants; the unit may differ (pandas 3 gives odc-stac datetime64[us], we give [ns])
    np.testing.assert_array_equal(
        ours.time.values.astype("datetime64[ns]"), theirs.time.values.astype("datetime64[ns]")
    )
    assert differences(ours, theirs) == []


@pytest.mark.parametrize(
    "bbox",
    [(179.3, -17.2, 180.0, -16.3), (-180.0, -17.2, -179.75, -16.3)],
    ids=["east-of-180", "west-of-180"],
)
def test_tile_across_180_equals_gdal_up_to_the_antimeridian(folder: Path, bbox) -> None:
    """Sentinel-2 T01KAB reaches from 179.24 E to 179.72 W. Both sides of 180 degrees load
    the tile, equal to GDAL's warp of the file (issue 17 item 1): the footprint runs across
    the antimeridian and every chunk on either side finds it. odc-stac leaves the pixels
    between about 179.86 E and 180 empty (its footprint stops short of the line), so
    GDAL is the reference here."""
    import daskcog

    case = Case("s2-180-gdal", ("stactools-sentinel2-T01KAB",), ("red",))
    items = materialise_case(case, folder)
    stack = daskcog.load(items, bands=["red"], crs="EPSG:4326", resolution=0.01, bbox=bbox,
                         chunks=16)
    got = stack.data.compute()[0, 0]
    expected = gdal_reference(items[0]["assets"]["red"]["href"], "EPSG:4326",
                              stack.transform, got.shape, 0)
    assert (expected != 0).sum() > 100
    assert (got != expected).mean() < 0.01


def test_file_only_nodata_is_kept_and_never_reported_as_zero(folder: Path) -> None:
    """MODIS 13Q1 states no nodata; its files say -3000 (issue 17 item 2). The -3000
    pixels come back as -3000 (as odc-stac returns them) and no nodata is declared: a
    value is never turned into another (0) and 0 is never claimed as nodata."""
    import daskcog

    case = Case("modis-own", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
                file_nodata={"250m_16_days_NDVI": -3000})
    items = materialise_case(case, folder)
    stack = daskcog.load(items, bands=["250m_16_days_NDVI"])
    var = stack.to_dataset()["250m_16_days_NDVI"]
    assert "nodata" not in var.attrs
    assert stack.nodata is None
    values = var.values
    assert (values == -3000).sum() > 100
    import rasterio

    with rasterio.open(items[0]["assets"]["250m_16_days_NDVI"]["href"]) as src:
        assert (values[0] == src.read(1)).all()  # the file as it is: -3000 and real zeros


def test_file_nodata_pixels_are_filled_by_the_next_item(folder: Path) -> None:
    """Two MODIS items of one time step, each with a -3000 hole in its file (the second at
    half the resolution): a hole of the first is filled by the second (the file's nodata
    is not data), pixels missing in both keep -3000. The reference is each pixel centre
    looked up in the files (the coarse file's pixels hold 2 x 2 output pixels: no ties).
    odc-stac agrees but for a few pixels on the rim of the first file's hole, where it
    keeps -3000 though the second file has data there."""
    import copy

    import numpy as np
    import rasterio

    import daskcog

    first = materialise_case(
        Case("modis-a", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
             file_nodata={"250m_16_days_NDVI": -3000}), folder)[0]
    second = copy.deepcopy(materialise_case(
        Case("modis-b", ("pc-modis-13Q1-061",), ("250m_16_days_NDVI",),
             file_nodata={"250m_16_days_NDVI": -3000}, target=20), folder)[0])
    second["id"] += "-coarse"
    ours = daskcog.load([first, second], bands=["250m_16_days_NDVI"]).to_dataset().compute()
    got = ours["250m_16_days_NDVI"].values[0]
    xs, ys = np.meshgrid(ours.x.values, ours.y.values)
    expected = np.full(got.shape, -3000, dtype=got.dtype)
    for item in (second, first):  # the first item has priority: written last
        with rasterio.open(item["assets"]["250m_16_days_NDVI"]["href"]) as src:
            data = src.read(1)
            t = src.transform
            cols = np.floor((xs - t.c) / t.a).astype(int)
            rows = np.floor((ys - t.f) / t.e).astype(int)
            values = data[rows, cols]
        expected = np.where(values != -3000, values, expected)
    np.testing.assert_array_equal(got, expected)
    assert (got == -3000).sum() > 0


def test_float_file_nodata_becomes_nan(folder: Path) -> None:
    """A float asset without stated nodata (GA lidar, -9999 in the file): NaN, declared
    as the nodata (odc-stac fills NaN too and leaves the attribute out)."""
    import math

    import daskcog

    items = materialise_case(
        Case("lidar-nan", ("ga-lidar-dem",), ("dem",), file_nodata={"dem": -9999}), folder
    )
    var = daskcog.load(items, bands=["dem"]).to_dataset()["dem"]
    assert math.isnan(var.attrs["nodata"])
    values = var.values
    assert (values == -9999).sum() == 0
    assert 100 < __import__("numpy").isnan(values).sum() < values.size


# -- odc-stac's keywords: stac_cfg, per-band resampling, callable groupby --------------------
def test_stac_cfg_aliases_equal_odc_stac(folder: Path) -> None:
    """stac_cfg's aliases name an asset (or "asset.N") for a new band name."""
    case = Case("cfg-alias", ("pc-sentinel-2-l2a",), ("B04", "SCL"),
                {"bands": ["rouge", "classes"], "stac_cfg": {"sentinel-2-l2a": {
                    "aliases": {"rouge": "B04", "classes": "SCL"}}}})
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
    assert list(ours.data_vars) == ["rouge", "classes"]
    assert differences(ours, theirs) == []


@pytest.mark.parametrize(
    "cfg, match",
    [
        ([("assets", {})], "must be a dict"),
        ({"sentinel-2-l2a": {"assets": {"B04": {"data_type": "uint77"}}}}, "uint77"),
        ({"sentinel-2-l2a": {"dims": {"wavelength": 3}}}, "dims"),
        ({"*": {"assets": {"*": {"nodata": 0, "scale": 2}}}}, "scale"),
    ],
)
def test_stac_cfg_that_cannot_be_read_is_a_type_error(folder: Path, cfg, match) -> None:
    import daskcog
    from daskcog.stac.items.bands import StacConfigError

    items = materialise_case(Case("cfg-bad", ("pc-sentinel-2-l2a",), ("B04",)), folder)
    with pytest.raises(StacConfigError, match=match) as caught:
        daskcog.load(items, bands=["B04"], stac_cfg=cfg)
    assert isinstance(caught.value, TypeError)


def test_per_band_resampling(folder: Path) -> None:
    """odc-stac's {band: method, "*": default}: each asset is read with its band's method,
    exactly as a load of that band alone with that method."""
    import numpy as np

    import daskcog

    case = Case("resampling", ("pc-sentinel-2-l2a",), ("B04", "SCL"))
    items = materialise_case(case, folder)
    grid = {"crs": "EPSG:4326", "resolution": 0.01, "bbox": (-148.5, 60.6, -147.2, 61.2)}
    both = daskcog.load(items, bands=["B04", "SCL"],
                        resampling={"B04": "bilinear", "*": "nearest"}, **grid)
    got = both.data.compute()[0]
    alone = [
        daskcog.load(items, bands=[band], resampling=method, **grid).data.compute()[0, 0]
        for band, method in (("B04", "bilinear"), ("SCL", "nearest"))
    ]
    np.testing.assert_array_equal(got[0], alone[0])
    np.testing.assert_array_equal(got[1], alone[1])
    nearest = daskcog.load(items, bands=["B04"], **grid).data.compute()[0, 0]
    assert (nearest != got[0]).any()
    with pytest.raises(TypeError, match="B99"):
        daskcog.load(items, bands=["B04"], resampling={"B99": "bilinear"})


def _by_collection(item, parsed, idx):
    return (item.collection_id, parsed.nominal_datetime.date(), idx >= 0)


def _by_solar_date(item, parsed, idx):
    return (parsed.solar_date.date(), parsed.collection.name != "")


@pytest.mark.parametrize("groupby, steps", [(_by_collection, 2), (_by_solar_date, 1)])
def test_odc_stac_groupby_callable_equals_odc_stac(folder: Path, groupby, steps) -> None:
    """A groupby with odc-stac's signature (item, parsed, idx): Earth Search's v1 and
    collection-1 items of one overpass, grouped as odc-stac groups them."""
    items = [
        materialise_case(Case(f"gb-{n}", (n,), ("red",)), folder)[0]
        for n in ("es-v1-sentinel-2-l2a", "es-v1-sentinel-2-c1-l2a")
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, {"bands": ["red"], "groupby": groupby})
    assert ours.sizes["time"] == steps
    assert differences(ours, theirs) == []


def test_item_dict_groupby_callable_still_works(folder: Path) -> None:
    import daskcog

    items = [
        materialise_case(Case(f"gb1-{n}", (n,), ("red",)), folder)[0]
        for n in ("es-v1-sentinel-2-l2a", "es-v1-sentinel-2-c1-l2a")
    ]
    stack = daskcog.load(items, bands=["red"], groupby=lambda item: item["collection"])
    assert stack.shape[0] == 2


def test_explain_counts_a_tile_across_180_on_the_west_side(folder: Path) -> None:
    """`explain` measures a footprint across the antimeridian on the chunk's side of it."""
    import daskcog

    items = materialise_case(Case("explain-180", ("stactools-sentinel2-T01KAB",), ("red",)),
                             folder)
    stack = daskcog.load(items, bands=["red"], crs="EPSG:4326", resolution=0.01,
                         bbox=(-180.0, -17.2, -179.75, -16.3))
    plan = stack.explain()
    assert plan.files == 1
    assert sum(c.bytes for c in plan.chunks) > 0


def test_stac_geoparquet_load_declares_nodata_as_the_items_load(folder: Path) -> None:
    """A stac-geoparquet file of the MODIS item loads with the same nodata rule as the
    item (issue 17 item 2): -3000 kept, no nodata declared."""
    sga = pytest.importorskip("stac_geoparquet.arrow")
    import numpy as np

    import daskcog

    key = "250m_16_days_NDVI"
    items = materialise_case(
        Case("gp-modis", ("pc-modis-13Q1-061",), (key,), file_nodata={key: -3000}), folder
    )
    path = folder / "gp-modis.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    from_items = daskcog.load(items, bands=[key])
    from_file = daskcog.load(str(path), bands=[key])
    assert from_file.nodata is None
    assert "nodata" not in from_file.to_dataset()[key].attrs
    np.testing.assert_array_equal(from_file.data.compute(), from_items.data.compute())


@pytest.mark.parametrize("bbox", [(179.3, -17.2, 180.0, -16.3), (-180.0, -17.2, -179.75, -16.3)])
def test_stac_geoparquet_finds_a_tile_across_180(folder: Path, bbox) -> None:
    """The stac-geoparquet rows a chunk reads are chosen by bbox: an item whose bbox runs
    across 180 degrees (west > east) is found from either side (issue 17 item 1)."""
    sga = pytest.importorskip("stac_geoparquet.arrow")
    import numpy as np

    import daskcog

    items = materialise_case(Case("gp-180", ("stactools-sentinel2-T01KAB",), ("red",)), folder)
    path = folder / "gp-180.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    grid = {"bands": ["red"], "crs": "EPSG:4326", "resolution": 0.01, "bbox": bbox}
    from_items = daskcog.load(items, **grid).data.compute()
    from_file = daskcog.load(str(path), **grid).data.compute()
    assert (from_items != 0).sum() > 100
    np.testing.assert_array_equal(from_file, from_items)


def test_stac_cfg_star_entry_applies_to_items_without_a_collection(folder: Path) -> None:
    """DEA's ARD item has no `collection`. odc-stac reads only the single-collection form
    `{"assets": ...}` for it and ignores a `"*"` entry (float32 then); daskcog applies the
    `"*"` entry, which is what it says: every collection."""
    cfg = {"*": {"assets": {"nbart_red": {"data_type": "int16"}}}}
    case = Case("cfg-star", ("dea-ga_ls8c_ard_3",), ("nbart_red",),
                {"bands": ["nbart_red"], "stac_cfg": cfg}, dtype={"nbart_red": "int16"},
                file_nodata={"nbart_red": -999})
    items = materialise_case(case, folder)
    assert "collection" not in items[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
    assert theirs["nbart_red"].dtype == "float32"
    assert ours["nbart_red"].dtype == "int16"


def test_tile_across_180_without_a_region_spans_the_globe_as_odc_stac(folder: Path) -> None:
    """Without a region, odc-stac's grid for a tile across 180 degrees (T01KAB) in EPSG:4326
    runs from -180 to 180; daskcog picks the same grid, and one chunk spanning it gets
    the tile's pixels at both ends, equal to GDAL's warp (issue 17 item 1)."""
    import pystac
    from odc.stac import load as odc_load

    import daskcog

    items = materialise_case(Case("s2-180-world", ("stactools-sentinel2-T01KAB",), ("red",)),
                             folder)
    grid = {"bands": ["red"], "crs": "EPSG:4326", "resolution": 0.05}
    stack = daskcog.load(items, chunks={"x": -1, "y": -1}, **grid)
    theirs = odc_load([pystac.Item.from_dict(it) for it in items], **grid)
    assert stack.shape[2:] == theirs["red"].shape[1:]
    got = stack.data.compute()[0, 0]
    expected = gdal_reference(items[0]["assets"]["red"]["href"], "EPSG:4326",
                              stack.transform, got.shape, 0)
    west, east = (expected[:, : got.shape[1] // 2] != 0), (expected[:, got.shape[1] // 2 :] != 0)
    assert west.sum() > 10 and east.sum() > 10
    assert (got != expected).sum() <= 2  # GDAL approximate-transformer ties at most


def test_no_outside_warning_for_a_region_west_of_180(folder: Path) -> None:
    """A bbox just west of -180 meets T01KAB's footprint (stored east of 180): no
    OutsideItemsWarning saying the result is all nodata, and it is not."""
    import daskcog
    from daskcog.stac.output_grid import OutsideItemsWarning

    items = materialise_case(Case("s2-180-warn", ("stactools-sentinel2-T01KAB",), ("red",)),
                             folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutsideItemsWarning)
        stack = daskcog.load(items, bands=["red"], crs="EPSG:4326", resolution=0.01,
                             bbox=(-180.0, -17.2, -179.75, -16.3))
    assert (stack.data.compute() != 0).sum() > 100


def test_item_level_data_type_needs_no_header(folder: Path) -> None:
    """GA's lidar item states `data_type` in its properties, not on the asset: odc-stac reads
    it there, and so does daskcog, without opening a header on the client."""
    import daskcog
    from daskcog.stac import HeaderFallbackWarning

    items = materialise_case(
        Case("lidar-props", ("ga-lidar-dem",), ("dem",), file_nodata={"dem": -9999}), folder
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeaderFallbackWarning)
        stack = daskcog.load(items, bands=["dem"])
    assert stack.dtype == "float32"


def test_stac_cfg_for_an_asset_keeps_what_it_does_not_say(folder: Path) -> None:
    """io-lulc states nodata 0 (no data type). A stac_cfg entry for the asset key giving
    only the data type: odc-stac drops the metadata's nodata (the entry replaces the whole
    band description); daskcog replaces only what the entry says, and keeps nodata 0."""
    cfg = {"io-lulc-9-class": {"assets": {"data": {"data_type": "uint8"}}}}
    case = Case("cfg-key", ("pc-io-lulc-9-class",), ("data",),
                {"bands": ["data"], "stac_cfg": cfg}, dtype={"data": "uint8"})
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
    assert "nodata" not in theirs["data"].attrs
    assert ours["data"].attrs["nodata"] == 0


def test_an_overview_asset_asked_for_by_key_loads(folder: Path) -> None:
    """Earth Search collection-1's `preview` GeoTIFF has role `overview`: left out of the
    default band set (as in odc-stac), loaded when asked for by its key (issue 17 item 9);
    odc-stac refuses the key ("No such band/alias")."""
    import pystac
    from odc.stac import load as odc_load

    import daskcog

    items = materialise_case(
        Case("preview", ("es-v1-sentinel-2-c1-l2a",), ("preview", "red"),
             dtype={"preview": "uint8"}), folder
    )
    with pytest.raises(ValueError, match="preview"):
        odc_load([pystac.Item.from_dict(it) for it in items], bands=["preview"])
    asked = daskcog.load(items, bands=["preview"]).to_dataset().compute()
    assert list(asked.data_vars) == ["preview.1", "preview.2", "preview.3"]
    assert int(asked["preview.1"].max()) > 0
    default = daskcog.load(items).band_names
    assert "red" in default and not any(b.startswith("preview") for b in default)


def test_float_output_of_an_integer_file_keeps_real_zeros(folder: Path) -> None:
    """MODIS NDVI (int16, -3000 in the file only) loaded with dtype="float32": the file's
    nodata pixels become NaN and real zeros stay 0, as in odc-stac (the read used to fill
    with 0 and count every 0 as nodata)."""
    import numpy as np

    key = "250m_16_days_NDVI"
    case = Case("modis-float", ("pc-modis-13Q1-061",), (key,),
                {"bands": [key], "dtype": "float32"}, file_nodata={key: -3000})
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
    assert differences(ours, theirs) == []
    assert (ours[key].values == 0).sum() > 0
    assert np.isnan(ours[key].values).sum() > 100


def test_rio_stac_item_loads_as_odc_stac(folder: Path) -> None:
    """rio-stac's `create_stac_item` builds a pystac Item in code: its datetime stays on the
    object until `to_dict()` (issue 17 item 11). It loads, equal to odc-stac's load."""
    rio_stac = pytest.importorskip("rio_stac")
    import datetime as dt

    from odc.stac import load as odc_load

    import daskcog

    (done,) = materialise_case(
        Case("rio-stac", ("pc-sentinel-1-rtc",), ("vv",), {"bands": ["vv"]}), folder
    )
    href = done["assets"]["vv"]["href"]
    item = rio_stac.create_stac_item(
        href.removeprefix("file://"), input_datetime=dt.datetime(2025, 3, 11, 4, 42, 40),
        asset_name="vv", asset_href=href, with_proj=True, with_raster=True,
    )
    assert "datetime" not in item.properties
    ours = daskcog.load([item], bands=["vv"]).to_dataset().compute()
    theirs = odc_load([item], bands=["vv"])
    assert differences(ours, theirs) == []


@pytest.mark.parametrize("case_id", ["es-v0-s2-stac-cfg", "cfg-alias"])
def test_stac_cfg_on_stac_geoparquet_equals_items(case_id: str, folder: Path,
                                                  tmp_path: Path) -> None:
    """stac_cfg reaches a stac-geoparquet load (the data type of items without raster:bands,
    aliases) as it reaches the items (was a TypeError)."""
    sga = pytest.importorskip("stac_geoparquet.arrow")
    alias = Case("cfg-alias", ("pc-sentinel-2-l2a",), ("B04", "SCL"),
                 {"bands": ["rouge", "classes"], "stac_cfg": {"sentinel-2-l2a": {
                     "aliases": {"rouge": "B04", "classes": "SCL"}}}})
    case = alias if case_id == "cfg-alias" else next(c for c in CASES if c.id == case_id)
    items = [dict(it) for it in materialise_case(case, folder)]
    path = tmp_path / "items.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = daskcog.load(items, chunks=256, **case.load)
        got = daskcog.load(path, chunks=256, **case.load)
    assert (got.shape, got.dtype, got.band_names) == (expected.shape, expected.dtype,
                                                      expected.band_names)
    np.testing.assert_array_equal(got.data.compute(), expected.data.compute())


def test_stac_cfg_ignore_proj_on_stac_geoparquet_is_refused(folder: Path, tmp_path: Path) -> None:
    sga = pytest.importorskip("stac_geoparquet.arrow")
    case = next(c for c in CASES if c.id == "es-v0-s2-stac-cfg")
    items = [dict(it) for it in materialise_case(case, folder)]
    path = tmp_path / "items.parquet"
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    with pytest.raises(StacError, match="ignore_proj"):
        daskcog.load(path, bands=["B04"], stac_cfg={"ignore_proj": True})
