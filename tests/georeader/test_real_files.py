"""AsyncGeoTIFFReader against rasterio on the shared real-world files (../shared/testdata/real).

Every file is opened with `AsyncGeoTIFFReader.open(path)`. Files with GCPs only must be
refused with `NoGeoreferenceError` naming the file (no affine grid to place them on);
files without GeoKeys read like rasterio reads them (identity transform, no CRS, a
`NotGeoreferencedWarning`); every other file must read, at every overview level and for
every window of `helpers.window_set`, exactly what `RasterioReader` reads (YCbCr JPEG: within the
tolerance stated in `helpers`). Metadata is checked against rasterio and against
`expected_rasterio.json` (written with rasterio 1.4.4 when the files were collected).

Without the folder (a fresh clone) every test here is one skipped case whose
reason is `tests.conftest.REAL_MISSING`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import CRS
from rasterio.windows import Window

from georeader import AsyncGeoTIFFReader, NoGeoreferenceError, RasterioReader
from georeader.geo.windows import clip_window, window_bounds, window_from_bounds, window_transform
from tests.conftest import REAL_MISSING, real_expected, real_files
from tests.georeader.helpers import FULL_READ_BUDGET, assert_matches, level_bytes, run, window_set

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

EXPECTED = real_expected()


def _facts(path: Path) -> dict:
    assert path.name in EXPECTED, f"{path.name} is missing from expected_rasterio.json"
    return EXPECTED[path.name]


def _refused(path: Path) -> bool:
    """GCPs only: the manifest's unreadable-by-design files (no affine grid). Files without
    GeoKeys are read like rasterio reads them (issue 18)."""
    facts = _facts(path)
    return int(facts.get("gcps") or 0) > 0


def _is_ycbcr_jpeg(path: Path) -> bool:
    facts = _facts(path)
    return facts.get("photometric") == "ycbcr" and "JPEG" in str(facts.get("compression"))


DECODER_DIVERGES = {
    "cogeotiff_bigendian_ycbcr_jpeg_nogeo.tif": (
        "a 64 x 64 image in one 256 x 256 YCbCr JPEG tile with a sharp synthetic colour edge: "
        "async-tiff's JPEG decoder upsamples chroma differently from GDAL's libjpeg there "
        "(max 119 DN at the edge, mean 2.6); refused before issue 18 (no GeoKeys), so never "
        "compared"
    )
}


def _pixel_params() -> list:
    """`real_params()` with the files whose decoder is known to diverge marked xfail."""
    params = []
    for param in real_params():
        path = param.values[0]
        reason = DECODER_DIVERGES.get(path.name) if path is not None else None
        if reason is not None:
            param = pytest.param(path, id=path.stem, marks=pytest.mark.xfail(reason=reason))
        params.append(param)
    return params


def real_params(kind: str = "readable") -> list:
    """One param per real file of `kind` ("readable", "refused", "all"), or one skipped case."""
    files = real_files()
    if not files:
        return [
            pytest.param(None, id="real-files-missing", marks=pytest.mark.skip(reason=REAL_MISSING))
        ]
    if kind == "readable":
        files = [f for f in files if not _refused(f)]
    elif kind == "refused":
        files = [f for f in files if _refused(f)]
    return [pytest.param(f, id=f.stem) for f in files]


def _fill_for(dtype: np.dtype, nodata: float | None) -> float | int:
    """A fill value different from the nodata value and from 0."""
    if np.issubdtype(dtype, np.floating):
        return -3.5
    fill = -3 if np.issubdtype(dtype, np.signedinteger) else 3
    return fill + 1 if nodata is not None and fill == nodata else fill


def _levels(reader: AsyncGeoTIFFReader) -> range:
    return range(reader.overview_count + 1)


# -- the folder -------------------------------------------------------------------------------
def test_missing_folder_gives_one_skipped_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tests.conftest

    monkeypatch.setattr(tests.conftest, "REAL_DIR", tmp_path / "absent")
    for kind in ("readable", "refused", "all"):
        params = real_params(kind)
        assert len(params) == 1
        (mark,) = params[0].marks
        assert mark.name == "skip" and mark.kwargs["reason"] == REAL_MISSING


def test_real_folder_is_complete() -> None:
    files = real_files()
    if not files:
        pytest.skip(REAL_MISSING)
    names = {f.name for f in files}
    assert names == set(EXPECTED), (
        f"folder and expected_rasterio.json disagree: {names ^ set(EXPECTED)}"
    )
    assert len(files) == 32


# -- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", real_params("refused"))
def test_files_without_georeference_are_refused(path: Path) -> None:
    with pytest.raises(NoGeoreferenceError) as info:
        run(AsyncGeoTIFFReader.open(path))
    assert path.name in str(info.value)
    assert isinstance(info.value, ValueError)


# -- metadata ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", real_params())
def test_metadata_matches_rasterio_and_manifest(path: Path) -> None:
    facts = _facts(path)
    reader = run(AsyncGeoTIFFReader.open(path))

    assert reader.shape == (facts["count"], facts["height"], facts["width"])
    assert str(reader.dtype) == facts["dtype"]
    nodata = facts["nodata"]
    if nodata is None:
        assert reader.nodata is None
    else:
        assert reader.nodata is not None
        assert reader.nodata == nodata or (math.isnan(nodata) and math.isnan(reader.nodata))
    if facts["crs"] is None:
        assert reader.crs is None
        assert tuple(reader.transform)[:6] == (1, 0, 0, 0, 1, 0)
    else:
        assert reader.crs == CRS.from_user_input(facts["crs"])
    assert tuple(reader.block_shape) == tuple(facts["block"])
    assert reader.overview_count == len(facts["overviews"])

    # route: striped files go through GDAL; YCbCr JPEG is the only inexact layout
    expected_route = "native" if facts["tiled"] else "rasterio"
    assert reader.layout.route == expected_route, reader.layout.describe()
    assert reader.layout.exact == (not _is_ycbcr_jpeg(path)), reader.layout.describe()

    for level in _levels(reader):
        ours = reader.overview(level)
        with RasterioReader(path, overview_level=level) as ref:
            label = f"{path.name} level {level}"
            assert ours.overview_level == level
            assert ours.shape == ref.shape, label
            assert ours.dtype == ref.dtype, label
            assert ours.crs == ref.crs, label
            assert ours.block_shape == tuple(ref.block_shape), label
            if ref.crs is None and level > 0:
                continue  # GDAL gives ungeoreferenced overviews a garbage transform
            assert tuple(ours.transform)[:6] == tuple(ref.transform)[:6], label
            assert ours.res == pytest.approx(ref.res, rel=1e-12), label
            # rasterio's bounds are (left, bottom, right, top) taken literally from the
            # transform (bottom > top for south-up files); ours are always ordered
            left, b, r, t = ref.bounds
            assert ours.bounds == pytest.approx(
                (min(left, r), min(b, t), max(left, r), max(b, t)), rel=1e-12
            )
            assert ours.fill_value_default == ref.fill_value_default or (
                math.isnan(ours.fill_value_default) and math.isnan(ref.fill_value_default)
            )
            if level == 0:
                assert ours.overview_count == ref.overview_count


# -- pixels -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", _pixel_params())
def test_every_level_and_window_matches_rasterio(path: Path) -> None:
    exact = not _is_ycbcr_jpeg(path)

    async def check() -> list[str]:
        reader = await AsyncGeoTIFFReader.open(path)
        assert reader.layout.exact == exact
        measured = []
        for level in _levels(reader):
            ours = reader.overview(level)
            with RasterioReader(path, overview_level=level) as ref:
                windows = window_set(
                    ours.width, ours.height, ours.block_shape, count=ours.count, dtype=ours.dtype
                )
                for name, window in windows.items():
                    label = f"{path.name} level {level} {name} {window}"
                    got = await ours.read_window(window)
                    want = ref.read_window(window)
                    assert got.transform == want.transform, label
                    assert got.transform == window_transform(window, ours.transform), label
                    assert got.crs == want.crs, label
                    d = assert_matches(got.values, want.values, exact=exact, label=label)
                    if d is not None:
                        measured.append(f"level {level} {name}: {d}")
                    # boundless padding holds the fill value
                    inside = clip_window(window, ours.width, ours.height)
                    if inside is not None and inside != window:
                        pad = np.ones(got.values.shape[1:], bool)
                        r0, c0 = (
                            int(inside.row_off - window.row_off),
                            int(inside.col_off - window.col_off),
                        )
                        pad[r0 : r0 + int(inside.height), c0 : c0 + int(inside.width)] = False
                        fill = ours.fill_value_default
                        padded = got.values[:, pad]
                        assert np.all((padded == fill) | (np.isnan(padded) & np.isnan(fill))), label
        return measured

    measured = run(check())
    if not exact:
        assert measured, "YCbCr JPEG reads came back identical to GDAL: update the tolerance notes"
        print(f"\n{path.name} (YCbCr JPEG, vs rasterio):\n  " + "\n  ".join(measured))


@pytest.mark.parametrize("path", _pixel_params())
def test_masked_pixels_get_the_fill_value(path: Path) -> None:
    """Where rasterio's masked read masks (nodata, internal mask, alpha), we give the fill value."""
    facts = _facts(path)
    exact = not _is_ycbcr_jpeg(path)

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        fill = _fill_for(reader.dtype, reader.nodata)
        for level in _levels(reader):
            ours = reader.overview(level)
            window = next(
                iter(
                    window_set(
                        ours.width,
                        ours.height,
                        ours.block_shape,
                        count=ours.count,
                        dtype=ours.dtype,
                    ).values()
                )
            )
            got = (await ours.read_window(window, fill_value=fill)).values
            opts = {"OVERVIEW_LEVEL": level - 1} if level else {}
            with rasterio.open(path, **opts) as src:
                masked = src.read(window=window, masked=True)
            mask = np.ma.getmaskarray(masked)
            label = f"{path.name} level {level} {window}"
            assert np.all(got[mask] == fill), f"{label}: masked pixels not filled with {fill}"
            assert_matches(got[~mask], np.asarray(masked.data)[~mask], exact=exact, label=label)
            if level == 0 and window == Window(0, 0, ours.width, ours.height):
                # the manifest's valid fraction (rasterio's dataset mask), so the check above is
                # not vacuous: per-dataset masks (mask IFD, alpha) are band 1's mask (an alpha
                # band itself is never masked); with nodata a pixel is invalid in every band
                per_dataset = "per_dataset" in facts["mask_flags"]
                invalid = mask[0] if per_dataset else mask.all(axis=0)
                valid_fraction = 1 - invalid.mean()
                assert valid_fraction == pytest.approx(facts["valid_mask_fraction"], abs=1e-9), (
                    label
                )
                if facts["valid_mask_fraction"] < 1:
                    assert mask.any()

    run(check())


# -- band selection, fill value ---------------------------------------------------------------
@pytest.mark.parametrize("path", _pixel_params())
def test_band_selection(path: Path) -> None:
    exact = not _is_ycbcr_jpeg(path)

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        count = reader.count
        bands = [count, 1] if count > 1 else [1]
        opened = await AsyncGeoTIFFReader.open(path, bands=bands)
        assert opened.bands == tuple(bands)
        assert opened.count == len(bands)
        for level in sorted({0, reader.overview_count}):
            full = reader.overview(level)
            window = window_set(full.width, full.height, full.block_shape)["unaligned"]
            with RasterioReader(path, overview_level=level, bands=bands) as ref:
                want = ref.read_window(window).values
            for how, sub in (
                ("open(bands=)", opened.overview(level)),
                ("select_bands", reader.select_bands(bands).overview(level)),
                ("overview().select_bands", reader.overview(level).select_bands(bands)),
            ):
                assert sub.shape == (len(bands), full.height, full.width)
                got = (await sub.read_window(window)).values
                assert got.shape[0] == len(bands)
                assert_matches(
                    got, want, exact=exact, label=f"{path.name} level {level} {how} {bands}"
                )
            # a single band of a multi-band file keeps the dataset's mask (alpha / internal mask)
            single = await reader.select_bands([1]).overview(level).read_window(window)
            with RasterioReader(path, overview_level=level, bands=[1]) as ref:
                assert_matches(
                    single.values,
                    ref.read_window(window).values,
                    exact=exact,
                    label=f"{path.name} level {level} band 1 alone",
                )

    run(check())


@pytest.mark.parametrize("path", _pixel_params())
def test_fill_value_override(path: Path) -> None:
    exact = not _is_ycbcr_jpeg(path)

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        fill = _fill_for(reader.dtype, reader.nodata)
        for level in sorted({0, reader.overview_count}):
            ours = reader.overview(level)
            with RasterioReader(path, overview_level=level) as ref:
                for name in ("unaligned", "edge", "negative"):
                    window = window_set(ours.width, ours.height, ours.block_shape)[name]
                    got = await ours.read_window(window, fill_value=fill)
                    want = ref.read_window(window, fill_value=fill)
                    assert got.fill_value_default == fill
                    label = f"{path.name} level {level} {name} fill={fill}"
                    assert_matches(got.values, want.values, exact=exact, label=label)
                    if name != "unaligned":  # padded windows: the corner pixel is outside
                        corner = got.values[:, -1, -1] if name == "edge" else got.values[:, 0, 0]
                        assert np.all(corner == fill), label

    run(check())


# -- read_bounds, read_geoslice, load ---------------------------------------------------------
@pytest.mark.parametrize("path", _pixel_params())
def test_read_bounds_geoslice_and_load(path: Path) -> None:
    exact = not _is_ycbcr_jpeg(path)

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        for level in sorted({0, reader.overview_count}):
            ours = reader.overview(level)
            window = clip_window(
                window_set(ours.width, ours.height, ours.block_shape)["unaligned"],
                ours.width,
                ours.height,
            )
            assert window is not None
            label = f"{path.name} level {level} {window}"
            bounds = window_bounds(window, ours.transform)
            assert window_from_bounds(bounds, ours.transform) == window, label
            by_window = await ours.read_window(window)
            by_bounds = await ours.read_bounds(bounds)
            assert (
                by_bounds.transform
                == by_window.transform
                == window_transform(window, ours.transform)
            )
            assert by_bounds.shape == by_window.shape
            assert np.array_equal(
                by_bounds.values, by_window.values, equal_nan=by_window.dtype.kind == "f"
            )
            assert by_bounds.bounds == pytest.approx(bounds, rel=1e-12)
            with RasterioReader(path, overview_level=level) as ref:
                assert_matches(
                    by_bounds.values, ref.read_bounds(bounds).values, exact=exact, label=label
                )
                r0, c0 = int(window.row_off), int(window.col_off)
                sliced = await ours.read_geoslice(
                    slice(r0, r0 + int(window.height)), slice(c0, c0 + int(window.width))
                )
                assert sliced.transform == by_window.transform
                assert np.array_equal(
                    sliced.values, by_window.values, equal_nan=by_window.dtype.kind == "f"
                )
                if level_bytes(ours.count, ours.width, ours.height, ours.dtype) <= FULL_READ_BUDGET:
                    loaded = await ours.load()
                    assert loaded.shape == ours.shape
                    assert loaded.transform == ours.transform
                    assert_matches(
                        loaded.values, ref.load().values, exact=exact, label=f"{label} load()"
                    )

    run(check())
