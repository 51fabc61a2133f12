"""Real STAC items (tests/stac/corpus/items, origins in ORIGINS.md) loaded by daskcog and by
odc-stac with the same keywords, on local COGs that match each item's metadata.

Each case says what it exercises. A case that does not agree yet is an xfail whose reason
names the issue-17 item that fixes it; a deliberate difference is its own test below,
asserting daskcog's behaviour and saying why.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.stac.corpus.harness import Case, differences, load_both, materialise_case

pytest.importorskip("odc.stac")
pytest.importorskip("pystac")

S2_RED = "a single-band data asset wins over a multi-band visual asset (issue 17 item 8)"
DTYPES = "to_dataset keeps each variable's dtype (issue 17 item 7)"
NODATA = "metadata without nodata, the file has one (issue 17 item 2)"
COMPOUND = "compound CRS in the metadata, horizontal CRS from the reader (issue 17 item 6)"
ANTIMERIDIAN = "footprint across the antimeridian, geographic output (issue 17 item 1)"
BETA_EO = "STAC 1.0.0-beta asset eo:bands as indices (issue 17 item 10)"
ROLES = "an asset asked for by key loads whatever its roles (issue 17 item 9)"
LATLON = "latitude / longitude dims and odc-geo coordinates (issue 17 item 5)"

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
         "bbox": (178.0, -16.0, 180.0, -14.0)},
        file_nodata={"250m_16_days_NDVI": -3000},
        exercises="MODIS h35v10 reaching past 180 degrees, loaded to EPSG:4326",
    ),
    Case(
        "pc-3dep-compound-crs", ("pc-3dep-lidar-dsm",), ("data",), {"bands": ["data"]},
        dtype={"data": "float32"}, file_nodata={"data": -9999},
        exercises="3DEP lidar DSM: PROJJSON compound CRS (NAD83 / UTM 11N + NAVD88)",
    ),
    Case(
        "pc-worldcover-roles", ("pc-esa-worldcover",), ("map", "input_quality"),
        {"bands": ["map", "input_quality"]},
        exercises="ESA WorldCover: an asset with role `metadata` asked for by key",
    ),
    Case(
        "pc-nicfi", ("pc-planet-nicfi-analytic",), ("data",), {"bands": ["red", "nir"]},
        exercises="Planet NICFI: EPSG:3857, 5 raster:bands beside 4 eo:bands",
    ),
    Case(
        "dea-ard-file-nodata", ("dea-ga_ls8c_ard_3",), ("nbart_red", "oa_fmask"),
        {"bands": ["nbart_red", "oa_fmask"], "stac_cfg": {"*": {"assets": {
            "nbart_red": {"data_type": "int16"}, "oa_fmask": {"data_type": "uint8"}}}}},
        dtype={"nbart_red": "int16", "oa_fmask": "uint8"},
        file_nodata={"nbart_red": -999, "oa_fmask": 0},
        exercises="DEA Landsat ARD (STAC 1.0.0-beta.2): nodata only in the files",
    ),
    Case(
        "usgs-beta-eo-indices", ("usgs-landsat-c2l2-sr-1.0.0-beta.2",), ("SR_B4.TIF",),
        {"bands": ["SR_B4"]}, dtype={"SR_B4.TIF": "uint16"},
        exercises="USGS Landsat C2 (STAC 1.0.0-beta.2): asset eo:bands are indices",
    ),
    Case(
        "stactools-s2-180-utm", ("stactools-sentinel2-T01KAB",), ("red", "scl"),
        {"bands": ["red", "scl"]},
        exercises="Sentinel-2 T01KAB (stactools, proj v1.1) across 180 degrees, native grid",
    ),
    Case(
        "stactools-s2-180-4326", ("stactools-sentinel2-T01KAB",), ("red",),
        {"bands": ["red"], "crs": "EPSG:4326", "resolution": 0.01,
         "bbox": (179.3, -17.2, 180.0, -16.3)},
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

STAC_CFG = "the stac_cfg keyword (issue 17 item 13)"
XFAIL: dict[str, str] = {
    "es-v0-s2-stac-cfg": STAC_CFG,
    "es-v1-s2-common-names": DTYPES,
    "es-v1-cop-dem": f"{LATLON}; {NODATA}",
    "pc-s2-keys": DTYPES,
    "pc-naip": STAC_CFG,
    "pc-s2-common-names": S2_RED,
    "pc-cop-dem": f"{LATLON}; {NODATA}",
    "pc-modis-file-nodata": NODATA,
    "pc-modis-antimeridian-4326": f"{ANTIMERIDIAN}; {LATLON}; {NODATA}",
    "pc-3dep-compound-crs": COMPOUND,
    "pc-worldcover-roles": ROLES,
    "pc-nicfi": NODATA,
    "dea-ard-file-nodata": f"{STAC_CFG}; {NODATA}; {DTYPES}",
    "usgs-beta-eo-indices": BETA_EO,
    "stactools-s2-180-utm": DTYPES,
    "stactools-s2-180-4326": f"{ANTIMERIDIAN}; {LATLON}",
    "ga-lidar-float-file-nodata": NODATA,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus-cogs")


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=XFAIL[case.id], strict=False)] if case.id in XFAIL else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_equals_odc_stac(case: Case, folder: Path) -> None:
    items = materialise_case(case, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = load_both(items, case.load)
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
