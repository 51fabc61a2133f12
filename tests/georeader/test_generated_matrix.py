"""AsyncGeoTIFFReader against rasterio on every generated layout (tests.cogfactory).

Files: `spec_matrix("full")` (every dtype x codec x interleave x predictor x validity
mode, with odd sizes, non-square tiles, overviews, plain-GTiff and COG layouts,
big-endian and sparse files) and `special_specs()`, written once per session into
the `tiff_cache` fixture.

Every spec is read at every overview level through three windows (the full level,
an unaligned window crossing tiles and the invalid areas, an edge window reaching
past the right and bottom edges) and compared with `RasterioReader`. Each case is
classified:

* match             identical to rasterio (floats: NaN == NaN)
* tolerance         YCbCr JPEG within helpers.YCBCR_MAX_ABS / YCBCR_MEAN_ABS
* expected-error    a GeoreaderError subclass listed in EXPECTED_ERRORS for that spec
* unexpected-error  anything else raised
* silently-wrong    returned pixels that differ from rasterio

and the last two must never happen. `test_matrix_summary` (last in this file) adds
the counts up over the whole matrix and asserts zero silently-wrong cases.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from georeader import AsyncGeoTIFFReader, GeoreaderError, RasterioReader
from georeader.header.route import NATIVE, RASTERIO
from tests.cogfactory import TiffSpec, cached_tiff, expected_pixels, spec_matrix, special_specs
from tests.georeader.helpers import (
    YCBCR_MAX_ABS,
    YCBCR_MEAN_ABS,
    diff,
    run,
    same_pixels,
    window_set,
)

pytestmark = pytest.mark.filterwarnings(
    r"ignore:Use `@` matmul instead of `\*` mul operator:PendingDeprecationWarning"  # affine 3
)

MATRIX = spec_matrix("full")
SPECIALS = special_specs()
NAN = float("nan")
REGRESSIONS = {
    # LERC keeps NaN as a validity mask inside the blob: async-tiff returned 0 there
    "lerc_f32_pixel_nan": TiffSpec(dtype="float32", count=3, compress="lerc", nodata=NAN),
    "lerc_f64_nan_overviews": TiffSpec(
        dtype="float64", compress="lerc", nodata=NAN, overviews=(2,)
    ),
    "lerc_f32_nan_big_endian": TiffSpec(dtype="float32", compress="lerc", nodata=NAN, endian="big"),
    # libtiff stores a uint8 alpha band as the LERC mask: async-tiff failed to decode it
    "lerc_rgba_u8": TiffSpec(
        dtype="uint8", count=4, compress="lerc", alpha=True, photometric="RGB"
    ),
    "lerc_gray_alpha_u8": TiffSpec(dtype="uint8", count=2, compress="lerc", alpha=True),
    # gray + alpha: async-geotiff only recognised alpha after RGB, pixels came back unmasked
    "gray_alpha_u8": TiffSpec(dtype="uint8", count=2, compress="none", alpha=True),
    "gray_alpha_u16_lerc": TiffSpec(dtype="uint16", count=2, compress="lerc", alpha=True),
}
ALL_SPECS: list[tuple[str, TiffSpec]] = (
    [(s.id, s) for s in MATRIX]
    + [(f"special-{name}", s) for name, s in SPECIALS.items()]
    + [(f"regression-{name}", s) for name, s in REGRESSIONS.items()]
)

EXPECTED_ERRORS: dict[str, type[GeoreaderError]] = {}
"""spec.id -> the typed error a layout is refused with. Empty: since the LERC and alpha
fixes every generated layout is read (natively or through GDAL); a layout that has to be
refused goes here, with its error class, and the test then demands exactly that error."""

OUTCOMES: dict[str, Counter] = {}
"""case id -> Counter of outcomes, filled by test_spec_matches_rasterio."""

WINDOWS = ("full", "unaligned", "edge")


def _classify(ours: np.ndarray, ref: np.ndarray, exact: bool) -> tuple[str, str]:
    if same_pixels(ours, ref):
        return "match", ""
    if ours.shape != ref.shape or ours.dtype != ref.dtype:
        return "silently-wrong", f"shape/dtype {ours.shape} {ours.dtype} != {ref.shape} {ref.dtype}"
    d = diff(ours, ref)
    if not exact and d.max_abs <= YCBCR_MAX_ABS and d.mean_abs < YCBCR_MEAN_ABS:
        return "tolerance", str(d)
    return "silently-wrong", str(d)


async def _check_spec(spec: TiffSpec, path: Path) -> tuple[Counter, list[str]]:
    outcomes: Counter = Counter()
    problems: list[str] = []
    expected_error = EXPECTED_ERRORS.get(spec.id)
    try:
        reader = await AsyncGeoTIFFReader.open(path)
    except GeoreaderError as exc:
        if expected_error is not None and isinstance(exc, expected_error):
            outcomes["expected-error"] += 1
            return outcomes, problems
        outcomes["unexpected-error"] += 1
        return outcomes, [f"open: {type(exc).__name__}: {exc}"]
    # YCbCr JPEG is the only layout allowed a tolerance; every other JPEG must be exact
    assert reader.layout.exact == (spec.photometric != "YCBCR"), reader.layout.describe()
    exact = reader.layout.exact
    assert reader.overview_count == len(spec.overviews)
    for level in range(reader.overview_count + 1):
        ours = reader.overview(level)
        with RasterioReader(path, overview_level=level) as ref:
            assert ours.shape == ref.shape and ours.transform == ref.transform
            windows = window_set(ours.width, ours.height, ours.block_shape)
            for name in WINDOWS:
                window = windows[name]
                label = f"level {level} {name} {window}"
                try:
                    got = (await ours.read_window(window)).values
                except GeoreaderError as exc:
                    if expected_error is not None and isinstance(exc, expected_error):
                        outcomes["expected-error"] += 1
                    else:
                        outcomes["unexpected-error"] += 1
                        problems.append(f"{label}: {type(exc).__name__}: {exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 - an untyped error is a finding too
                    outcomes["unexpected-error"] += 1
                    problems.append(f"{label}: untyped {type(exc).__name__}: {exc}")
                    continue
                outcome, detail = _classify(got, ref.read_window(window).values, exact)
                outcomes[outcome] += 1
                if outcome == "silently-wrong":
                    problems.append(f"{label}: silently wrong: {detail}")
                elif expected_error is not None:
                    problems.append(
                        f"{label}: expected {expected_error.__name__}, but it read fine"
                    )
    # independent of GDAL: lossless files hold exactly the factory's pixels (invalid -> fill)
    if not spec.lossy:
        px = expected_pixels(spec)
        want = px.data.copy()
        if px.mask is not None:
            want[:, px.mask == 0] = 0
        if spec.alpha:
            want[:-1, px.data[-1] == 0] = 0
        got = (await reader.load()).values
        if not same_pixels(got, want):
            problems.append(f"level 0 differs from the factory's pixels: {diff(got, want)}")
    return outcomes, problems


@pytest.mark.parametrize("case_id, spec", [pytest.param(i, s, id=i) for i, s in ALL_SPECS])
def test_spec_matches_rasterio(case_id: str, spec: TiffSpec, tiff_cache: Path) -> None:
    path = cached_tiff(spec, tiff_cache)
    outcomes, problems = run(_check_spec(spec, path))
    OUTCOMES[case_id] = outcomes
    assert not problems, f"{spec.id}:\n  " + "\n  ".join(problems)
    assert outcomes["silently-wrong"] == 0 and outcomes["unexpected-error"] == 0


# -- special layouts: the route and the reasons ----------------------------------------------
SPECIAL_ROUTES = {
    "striped": (RASTERIO, "striped"),
    "striped_one_strip": (RASTERIO, "striped"),
    "planar_pred2": (NATIVE, "band-interleaved with a predictor"),
    "planar_pred3_float": (NATIVE, "band-interleaved with a predictor"),
    "sparse": (NATIVE, "sparse tiles"),
    "sparse_cog": (NATIVE, "sparse tiles"),
    "jpeg_ycbcr": (NATIVE, "YCbCr JPEG"),
}


@pytest.mark.parametrize("name", list(SPECIALS))
def test_special_layout_route(name: str, tiff_cache: Path) -> None:
    spec = SPECIALS[name]
    path = cached_tiff(spec, tiff_cache)

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        route, reason = SPECIAL_ROUTES.get(name, (NATIVE, None))
        assert reader.layout.route == route, reader.layout.describe()
        if reason is None:
            assert reader.layout.reasons == (), reader.layout.describe()
        else:
            assert any(reason in r for r in reader.layout.reasons), reader.layout.describe()
        assert reader.layout.exact == (name != "jpeg_ycbcr")
        if name == "jpeg_4band":
            assert (
                reader.levels[0].fmt is not None and reader.levels[0].fmt.decoder == "imagecodecs"
            )
        if spec.sparse:
            # never-written tiles read as nodata (or 0), like GDAL
            got = (await reader.load()).values
            with RasterioReader(path) as ref:
                want = ref.load().values
            assert same_pixels(got, want)
            assert spec.sparse_windows()
            for w in spec.sparse_windows():
                r0, c0 = int(w.row_off), int(w.col_off)
                block = got[:, r0 : r0 + int(w.height), c0 : c0 + int(w.width)]
                fill = spec.fill_value
                assert np.all((block == fill) | (np.isnan(block) & np.isnan(float(fill)))), w

    run(check())


def _write_hand_made(path: Path, kind: str) -> dict:
    """Layouts the factory cannot express, written with rasterio; returns the fill values to try."""
    rng = np.random.default_rng(7)
    profile = {
        "driver": "GTiff",
        "width": 90,
        "height": 100,
        "crs": "EPSG:32633",
        "tiled": True,
        "transform": from_origin(399960, 5500020, 10, 10),
        "blockxsize": 32,
        "blockysize": 32,
    }
    valid = np.ones((100, 90), bool)
    valid[40:70, 50:85] = False
    if kind.startswith("lerc_nan_per_band"):
        # NaN in different places per band: liblerc >= 3 writes one mask per band
        data = rng.random((3, 100, 90)).astype("float32")
        data[0, 10:30, 5:40] = np.nan
        data[2, 50:60, :] = np.nan
        compress = {
            "lerc_nan_per_band": "lerc",
            "lerc_nan_per_band_zstd": "lerc_zstd",
            "lerc_nan_per_band_deflate": "lerc_deflate",
        }[kind]
        with rasterio.open(
            path, "w", count=3, dtype="float32", nodata=NAN, compress=compress, **profile
        ) as dst:
            dst.write(data)
        return {"fills": [None, -1.5]}
    data = (rng.random((2, 100, 90)) * 200 + 10).astype("uint8")
    data[:, 5:20, 5:30] = 7  # pixels equal to the nodata value, valid in the mask / alpha
    if kind == "mask_and_nodata":
        # GDAL uses the internal mask only: nodata-valued pixels the mask keeps are returned as is
        with (
            rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            rasterio.open(
                path, "w", count=2, dtype="uint8", nodata=7, compress="deflate", **profile
            ) as dst,
        ):
            dst.write(data)
            dst.write_mask(np.where(valid, 255, 0).astype("uint8"))
    elif kind == "alpha_and_nodata":
        # GDAL prefers nodata over an alpha band
        data[1] = np.where(valid, 255, 0)
        with rasterio.open(
            path, "w", count=2, dtype="uint8", nodata=7, alpha="YES", compress="deflate", **profile
        ) as dst:
            dst.write(data)
    elif kind == "lerc_deflate_rgba":
        data = (rng.random((4, 100, 90)) * 250).astype("uint8")
        data[3] = np.where(valid, 255, 0)
        with rasterio.open(
            path,
            "w",
            count=4,
            dtype="uint8",
            photometric="RGB",
            alpha="YES",
            compress="lerc_deflate",
            **profile,
        ) as dst:
            dst.write(data)
    return {"fills": [None, 3]}


@pytest.mark.parametrize(
    "kind",
    [
        "lerc_nan_per_band",
        "lerc_nan_per_band_zstd",
        "lerc_nan_per_band_deflate",
        "lerc_deflate_rgba",
        "mask_and_nodata",
        "alpha_and_nodata",
    ],
)
def test_hand_made_layouts(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.tif"
    fills = _write_hand_made(path, kind)["fills"]

    async def check() -> None:
        reader = await AsyncGeoTIFFReader.open(path)
        assert reader.layout.route == NATIVE
        with RasterioReader(path) as ref:
            for fill in fills:
                for name, window in window_set(
                    reader.width, reader.height, reader.block_shape
                ).items():
                    got = (await reader.read_window(window, fill_value=fill)).values
                    want = ref.read_window(window, fill_value=fill).values
                    outcome, detail = _classify(got, want, exact=True)
                    assert outcome == "match", f"{kind} fill={fill} {name}: {detail}"

    run(check())


def test_matrix_covers_the_layouts() -> None:
    ids = [i for i, _ in ALL_SPECS]
    assert len(ids) == len(set(ids)), "duplicate spec ids"
    specs = [s for _, s in ALL_SPECS]
    assert {s.compress for s in specs} >= {
        "none",
        "deflate",
        "lzw",
        "zstd",
        "lerc",
        "webp",
        "jpeg",
        "packbits",
        "lzma",
    }
    assert {s.dtype for s in specs} >= {
        "uint8",
        "int8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "float32",
        "float64",
    }
    assert {s.validity for s in specs} == {"plain", "nodata", "nan", "mask", "alpha"}
    assert any(s.interleave == "band" and s.predictor == 2 for s in specs)
    assert any(s.interleave == "band" and s.predictor == 3 for s in specs)
    assert any(s.endian == "big" for s in specs) and any(s.sparse for s in specs)
    assert any(not s.tiled for s in specs) and any(s.bigtiff for s in specs)


def test_matrix_summary() -> None:
    """Runs last: adds up the outcomes of every case (only when the whole matrix ran)."""
    if len(OUTCOMES) < len(ALL_SPECS):
        pytest.skip(f"only {len(OUTCOMES)} of {len(ALL_SPECS)} specs ran; the summary needs all")
    total: Counter = Counter()
    for outcome in OUTCOMES.values():
        total.update(outcome)
    print(f"\ngenerated matrix: {len(ALL_SPECS)} files, {sum(total.values())} cases: {dict(total)}")
    assert total["silently-wrong"] == 0
    assert total["unexpected-error"] == 0
    assert total["tolerance"] > 0  # the YCbCr JPEG spec is in the matrix and is not exact
    assert total["match"] + total["tolerance"] + total["expected-error"] == sum(total.values())
