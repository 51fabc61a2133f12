"""Cloud-free composites: `daskcog.load(..., mask=Mask(...), method="median", groupby="all")`
against a numpy reference built from rasterio reads of the same files (issue 22).

The reference: every item's data asset read with rasterio and placed on the load's grid, its
quality band read with rasterio and repeated onto the grid (nearest: the grids' pixel edges
coincide), the data pixel kept where it is not nodata and the mask says clear, then numpy's
nanmedian / nanquantile / nanmean / count over the items of each step. Integer inputs: equal
exactly; float outputs of a median of integers are exact too (float64 middle values rounded
once to float32, as numpy then a cast does)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import daskcog
from daskcog.mosaics.masks import Mask, MaskError
from daskcog.stac.items.item_dicts import StacError, StacItemError
from tests.stac import season


@pytest.fixture(scope="module")
def s2_items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return season.s2_season(tmp_path_factory.mktemp("s2"), dates=7, size=160, seed=4)


@pytest.fixture(scope="module")
def landsat_items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return season.landsat_season(tmp_path_factory.mktemp("landsat"), dates=5, size=96)


def _grid(stack) -> tuple[tuple[float, ...], tuple[int, int]]:
    t = stack.transform
    return (t.a, t.b, t.c, t.d, t.e, t.f), (stack.height, stack.width)


def _clear(items: list[dict], masks: list[Mask], transform, shape) -> np.ndarray:
    """(item, y, x): True where every mask says clear (rasterio reads, nearest)."""
    out = np.ones((len(items), *shape), dtype=bool)
    for k, item in enumerate(items):
        for m in masks:
            values, inside = season.read_on_grid(item["assets"][m.asset]["href"], transform,
                                                 shape)
            nodata = item["assets"][m.asset]["raster:bands"][0].get("nodata")
            ok = inside & (values != nodata if nodata is not None else True)
            if m.drop is not None:
                ok &= ~np.isin(values, m.drop)
            elif m.keep is not None:
                ok &= np.isin(values, m.keep)
            else:
                ok &= (values.astype(np.uint64) & np.uint64(sum(1 << b for b in m.bits))) == 0
            out[k] &= ok
    return out


def _layers(items: list[dict], band: str, clear: np.ndarray, transform, shape) -> np.ndarray:
    """(item, y, x) float64 values of `band`, NaN where nodata, outside or not clear."""
    out = np.full((len(items), *shape), np.nan)
    for k, item in enumerate(items):
        values, inside = season.read_on_grid(item["assets"][band]["href"], transform, shape)
        ok = inside & (values != 0) & clear[k]
        out[k][ok] = values[ok]
    return out


def _reduce(layers: np.ndarray, method) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if method == "median":
            return np.nanmedian(layers, axis=0)
        if method == "mean":
            return np.nanmean(layers, axis=0)
        if method == "count":
            return np.sum(~np.isnan(layers), axis=0).astype(float)
        if method in ("min", "max"):
            return getattr(np, f"nan{method}")(layers, axis=0)
        q = method.q if isinstance(method, daskcog.Quantile) else float(method[1:]) / 100
        return np.nanquantile(layers, q, axis=0)


def _expected(items, bands, masks, method, stack) -> np.ndarray:
    transform, shape = _grid(stack)
    clear = _clear(items, masks, transform, shape)
    out = []
    for band in bands:
        value = _reduce(_layers(items, band, clear, transform, shape), method)
        fill = 0.0
        out.append(np.where(np.isnan(value), fill, value))
    return np.stack(out).astype(stack.dtype)


SCL = Mask("SCL", drop=list(season.SCL_DROP))


@pytest.mark.parametrize("method", ["median", "p25", daskcog.Quantile(0.9), "mean", "count",
                                    "min", "max"], ids=str)
def test_s2_composite_equals_numpy_over_rasterio_reads(s2_items, method) -> None:
    bands = ["B02", "B03", "B04"]
    stack = daskcog.load(s2_items, bands=bands, mask=SCL, method=method, groupby="all",
                         chunks=64)
    assert stack.shape[:2] == (1, 3)
    got = stack.data.compute(scheduler="threads")[0]
    expected = _expected(s2_items, bands, [SCL], method, stack)
    if method == "mean":  # a running float64 sum: within rounding of numpy's pairwise sum
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)
    # the mask mattered: without it some pixels differ
    plain = daskcog.load(s2_items, bands=bands, method=method, groupby="all", chunks=64)
    assert (plain.data.compute()[0] != got).any()


def test_keep_classes(s2_items) -> None:
    mask = Mask("SCL", keep=[4, 5])
    stack = daskcog.load(s2_items, bands=["B04"], mask=mask, method="median", groupby="all",
                         chunks=80)
    np.testing.assert_array_equal(stack.data.compute()[0],
                                  _expected(s2_items, ["B04"], [mask], "median", stack))


def test_landsat_bits_and_several_masks(landsat_items) -> None:
    bits = Mask("qa_pixel", bits=list(season.QA_BITS))
    stack = daskcog.load(landsat_items, bands=["red", "nir"], mask=bits, method="median",
                         groupby="all", chunks=48)
    np.testing.assert_array_equal(
        stack.data.compute()[0], _expected(landsat_items, ["red", "nir"], [bits], "median", stack)
    )
    # two masks on the same band combine: a pixel is clear only where both say so
    both = [bits, Mask("qa_pixel", bits=[8])]
    stack = daskcog.load(landsat_items, bands=["red"], mask=both, method="p75", groupby="all",
                         chunks=48)
    np.testing.assert_array_equal(
        stack.data.compute()[0], _expected(landsat_items, ["red"], both, "p75", stack)
    )


@pytest.mark.parametrize("groupby", ["time", "solar_day", "id", None])
def test_masks_with_every_groupby(s2_items, groupby) -> None:
    """One step per item here: each step is that item's masked values (count: 0 or 1)."""
    stack = daskcog.load(s2_items, bands=["B03"], mask=SCL, method="max", groupby=groupby,
                         chunks=64)
    assert len(stack.steps.keys) == len(s2_items)
    got = stack.data.compute()
    for k in range(len(s2_items)):
        np.testing.assert_array_equal(
            got[k], _expected(s2_items[k : k + 1], ["B03"], [SCL], "max", stack)
        )


def test_solar_day_steps_with_two_items_a_day(tmp_path: Path) -> None:
    import datetime as dt

    items = season.s2_season(tmp_path, dates=4, size=96, seed=9, days=0)
    for k, item in enumerate(items):  # two passes a day, an hour apart
        when = dt.datetime(2024, 7, 1 + k // 2, 9 + k % 2, 0)
        item["properties"]["datetime"] = when.isoformat() + "Z"
    stack = daskcog.load(items, bands=["B02"], mask=SCL, method="median", groupby="solar_day",
                         chunks=64)
    assert len(stack.steps.keys) == 2
    got = stack.data.compute()
    for step in range(2):
        np.testing.assert_array_equal(
            got[step], _expected(items[2 * step : 2 * step + 2], ["B02"], [SCL], "median",
                                 stack)
        )


def test_mask_band_is_output_only_when_asked(s2_items) -> None:
    stack = daskcog.load(s2_items[:2], bands=["B04", "SCL"], mask=SCL, groupby="id", chunks=64)
    assert list(stack.bands) == ["B04", "SCL"]
    scl = stack.data.compute()[:, 1]
    # the SCL band itself is masked by its own rule: no dropped class is left
    assert not np.isin(scl, [1, 3, 8, 9, 10]).any()
    assert list(daskcog.load(s2_items[:2], bands=["B04"], mask=SCL).bands) == ["B04"]


def test_mask_is_read_with_nearest_whatever_resampling(s2_items) -> None:
    """resampling="bilinear" for the data on a 15 m grid (every scene warped): the mask is
    the SCL band read with nearest on the same grid; the masked data equal the unmasked
    bilinear data where that SCL is clear and are the fill elsewhere."""
    opts = {"resolution": 15, "groupby": "id", "chunks": 64}
    stack = daskcog.load(s2_items[:3], bands=["B04"], mask=SCL, resampling="bilinear", **opts)
    assert stack.spec.masks[0].spec.resampling == "nearest"
    masked = stack.data.compute()[:, 0]
    plain = daskcog.load(s2_items[:3], bands=["B04"], resampling="bilinear", **opts)
    plain = plain.data.compute()[:, 0]
    scl = daskcog.load(s2_items[:3], bands=["SCL"], resampling="nearest", **opts)
    scl = scl.data.compute()[:, 0]
    clear = ~np.isin(scl, season.SCL_DROP)
    np.testing.assert_array_equal(masked[clear], plain[clear])
    assert (masked[~clear] == 0).all() and (plain[~clear] != 0).any()


def test_each_items_mask_is_read_once_per_chunk(s2_items, monkeypatch) -> None:
    from daskcog.mosaics import masks

    calls: list[tuple[int, tuple]] = []
    real = masks.read_scene

    async def counting(spec, index, bands, window):
        calls.append((index, window))
        return await real(spec, index, bands, window)

    monkeypatch.setattr(masks, "read_scene", counting)
    stack = daskcog.load(s2_items, bands=["B02", "B03", "B04"], mask=SCL, method="median",
                         groupby="all", chunks=64)
    stack.data.compute(scheduler="sync")
    assert calls and len(calls) == len(set(calls))  # three assets, one mask read each


def test_masks_are_frozen_hashable_values() -> None:
    from dask.base import tokenize

    m = daskcog.Mask("SCL", drop=[3, 0, 3])
    assert m.drop == (0, 3) and m == Mask("SCL", drop=(0, 3))
    assert hash(m) == hash(Mask("SCL", drop=[0, 3]))
    assert tokenize(m) == tokenize(Mask("SCL", drop=[0, 3])) != tokenize(Mask("SCL", keep=[0, 3]))
    with pytest.raises(AttributeError):
        m.asset = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, MaskError, "exactly one"),
        ({"drop": [1], "keep": [2]}, MaskError, "exactly one"),
        ({"drop": []}, MaskError, "names nothing"),
        ({"bits": [64]}, MaskError, "outside"),
        ({"drop": ["cloud"]}, TypeError, "integers"),
        ({"drop": "8"}, TypeError, "list of integers"),
        ({"keep": [1.5]}, TypeError, "integers"),
        ({"drop": [1], "band": 0}, TypeError, "band"),
    ],
)
def test_mask_errors_at_call_time(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        Mask("SCL", **kwargs)


def test_load_errors_name_what_to_fix(s2_items, landsat_items) -> None:
    with pytest.raises(TypeError, match="Mask"):
        daskcog.load(s2_items, bands=["B04"], mask="SCL")
    with pytest.raises(StacError, match="'cloud'"):
        daskcog.load(s2_items, bands=["B04"], mask=Mask("cloud", drop=[1]))
    items = [dict(it, assets=dict(it["assets"])) for it in s2_items[:3]]
    del items[1]["assets"]["SCL"]
    with pytest.raises(StacItemError, match="item S2_01 .* 'SCL'"):
        daskcog.load(items, bands=["B04"], mask=SCL)
    with pytest.raises(MaskError, match="integer band"):
        float_items = [dict(it, assets=dict(it["assets"])) for it in s2_items[:1]]
        scl = dict(float_items[0]["assets"]["SCL"], **{"raster:bands": [{"data_type": "float32"}]})
        float_items[0]["assets"]["SCL"] = scl
        daskcog.load(float_items, bands=["B04"], mask=Mask("SCL", bits=[1]))


def test_keys_differ_with_masks(s2_items) -> None:
    a = daskcog.load(s2_items, bands=["B04"], mask=SCL, groupby="all", method="median")
    b = daskcog.load(s2_items, bands=["B04"], mask=Mask("SCL", drop=[0]), groupby="all",
                     method="median")
    c = daskcog.load(s2_items, bands=["B04"], mask=SCL, groupby="all", method="median")
    assert a.data.name != b.data.name and a.data.name == c.data.name


def test_explain_states_what_a_median_holds_and_counts_mask_reads(s2_items) -> None:
    median = daskcog.load(s2_items, bands=["B02", "B03"], mask=SCL, method="median",
                          groupby="all", chunks=64)
    plan = median.explain()
    chunk = max(plan.chunks, key=lambda c: c.held)
    # at most every scene's part of the chunk, both bands, uint16: 2 bytes a value
    assert 0 < chunk.held <= len(s2_items) * 64 * 64 * 2 * 2
    assert plan.held_bytes == chunk.held
    assert "hold at most" in str(plan)
    assert daskcog.load(s2_items, bands=["B02", "B03"], mask=SCL, method="mean",
                        groupby="all", chunks=64).explain().held_bytes == 0
    plain = daskcog.load(s2_items, bands=["B02", "B03"], method="median", groupby="all",
                         chunks=64).explain()
    # one SCL read per item and chunk on top of the two bands' reads
    assert sum(c.scenes for c in plan.chunks) == sum(c.scenes for c in plain.chunks) * 3 // 2
    assert plan.files == plain.files + len(s2_items)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_composite_within_one_ulp_of_numpy(s2_items, dtype: str) -> None:
    """Values loaded as floats (dtype=): the median of float32 / float64 values, within one
    ulp of numpy's nanmedian over float64 (exact here: middle values averaged in float64)."""
    stack = daskcog.load(s2_items, bands=["B03", "B04"], mask=SCL, method="median",
                         groupby="all", chunks=64, dtype=dtype)
    got = stack.data.compute()[0]
    assert got.dtype == np.dtype(dtype)
    expected = _expected(s2_items, ["B03", "B04"], [SCL], "median", stack)
    np.testing.assert_array_max_ulp(got, expected, maxulp=1)


def test_a_failed_mask_read_is_no_data_with_errors_nodata(s2_items, tmp_path: Path) -> None:
    """The mask of one item cannot be read: with errors="nodata" that item's scenes count as
    having no valid pixel (the failure is recorded); with errors="raise" the compute fails."""
    import copy

    broken = copy.deepcopy(s2_items)
    broken[2]["assets"]["SCL"]["href"] = str(tmp_path / "missing" / "SCL.tif")
    kw = {"bands": ["B04"], "mask": SCL, "method": "median", "groupby": "all", "chunks": 64}
    got = daskcog.load(broken, errors="nodata", **kw).data.compute()
    without = daskcog.load(s2_items[:2] + s2_items[3:], **kw)
    np.testing.assert_array_equal(got, without.data.compute())
    with pytest.raises(Exception, match="missing"):
        daskcog.load(broken, **kw).data.compute()


def test_all_cloudy_pixels_are_the_fill_without_declared_nodata(s2_items) -> None:
    """Integer data whose metadata states no nodata keep each file's nodata pixels as they
    are (odc-stac's rule), but a pixel that every scene has under a cloud is the fill, never
    a cloudy scene's value."""
    import copy

    items = copy.deepcopy(s2_items[:2])
    for item in items:
        item["assets"]["B04"]["raster:bands"][0].pop("nodata")
    stack = daskcog.load(items, bands=["B04"], mask=SCL, method="first", groupby="all",
                         chunks=64)
    got = stack.data.compute()[0, 0]
    transform, shape = _grid(stack)
    clear = _clear(items, [SCL], transform, shape)
    cloudy_everywhere = ~clear.any(axis=0)
    assert cloudy_everywhere.any()
    assert (got[cloudy_everywhere] == 0).all()


def _parquet(items: list[dict], path: Path) -> Path:
    sga = pytest.importorskip("stac_geoparquet.arrow")
    sga.to_parquet(sga.parse_stac_items_to_arrow(items).read_all(), str(path))
    return path


@pytest.mark.parametrize("groupby", ["all", "time"])
def test_stac_geoparquet_masks_equal_the_items(s2_items, landsat_items, tmp_path: Path,
                                                groupby: str) -> None:
    """A stac-geoparquet file masks its rows as the items are masked (each chunk task reads
    the rows' mask assets beside their data)."""
    for items, bands, mask in ((s2_items, ["B02", "B04"], SCL),
                               (landsat_items, ["red"], Mask("qa_pixel", bits=[1, 3, 4]))):
        path = _parquet(items, tmp_path / f"{items[0]['id']}.parquet")
        kw = {"bands": bands, "mask": mask, "method": "median", "groupby": groupby,
              "chunks": 48}
        expected = daskcog.load(items, **kw)
        got = daskcog.load(str(path), **kw)
        assert got.data.name != daskcog.load(str(path), **{**kw, "mask": None}).data.name
        np.testing.assert_array_equal(got.data.compute(), expected.data.compute())


def test_stac_geoparquet_mask_errors_at_call_time(s2_items, tmp_path: Path) -> None:
    import copy

    items = copy.deepcopy(s2_items[:3])
    del items[1]["assets"]["SCL"]
    path = _parquet(items, tmp_path / "lacking.parquet")
    with pytest.raises(StacItemError, match="S2_01 has no asset 'SCL'"):
        daskcog.load(str(path), bands=["B04"], mask=SCL)
    with pytest.raises(StacError, match="'cloud'"):
        daskcog.load(str(path), bands=["B04"], mask=Mask("cloud", drop=[1]))


def _hrefs(items: list[dict], key: str) -> list[str]:
    return [i["assets"][key]["href"] for i in items]


def test_mosaic_and_stack_with_mask_files_equal_the_load(s2_items) -> None:
    """daskcog.mosaic / daskcog.stack of URL lists, each source's mask file given by
    mask_sources=: the same pixels as the STAC load on the same grid."""
    load = daskcog.load(s2_items, bands=["B04"], mask=SCL, method="median", groupby="all",
                        chunks=64)
    urls = _hrefs(s2_items, "B04")
    scl = {"SCL": lambda url: url.replace("B04.tif", "SCL.tif")}
    mos = daskcog.mosaic(urls, like=load[0], method="median", mask=SCL, mask_sources=scl,
                         chunks=64)
    np.testing.assert_array_equal(mos.data.compute(), load.data.compute()[0])
    per_item = daskcog.load(s2_items, bands=["B04"], mask=SCL, method="first", groupby="id",
                            chunks=64)
    st = daskcog.stack(urls, like=per_item[0], mask=SCL,
                       mask_sources={"SCL": _hrefs(s2_items, "SCL")}, chunks=64)
    np.testing.assert_array_equal(st.data.compute(), per_item.data.compute())
    plain = daskcog.mosaic(urls, like=load[0], method="median", chunks=64)
    assert mos.data.name != plain.data.name


def test_mosaic_mask_errors(s2_items) -> None:
    urls = _hrefs(s2_items, "B04")
    with pytest.raises(TypeError, match="mask_sources"):
        daskcog.mosaic(urls, mask=SCL)
    with pytest.raises(TypeError, match="no source for \\['SCL'\\]"):
        daskcog.mosaic(urls, mask=SCL, mask_sources={"scl": lambda u: u})
    with pytest.raises(TypeError, match="without mask"):
        daskcog.mosaic(urls, mask_sources={"SCL": lambda u: u})
    with pytest.raises(daskcog.mosaics.mosaic.MosaicError, match="2 files for 7"):
        daskcog.mosaic(urls, mask=SCL, mask_sources={"SCL": _hrefs(s2_items, "SCL")[:2]})
    with pytest.raises(TypeError):
        daskcog.stack(urls, mask=SCL, mask_sorces={"SCL": _hrefs(s2_items, "SCL")})
