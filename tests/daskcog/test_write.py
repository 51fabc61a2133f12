"""daskcog.write: GeoArray.to_cog / to_raster and GeoTensor.to_cog / to_raster.

rasterio reads the outputs back (the reference), rio-cogeo validates the COGs.
"""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

import daskcog
from daskcog.reading.geoarray import GeoArray
from daskcog.writing.write import WriteError, overview_factors, write_raster
from georeader.geo import GeoTensor
from tests.cogfactory import TiffSpec, cached_tiff, expected_pixels

pytestmark = pytest.mark.timeout(120)

SPECS = {
    "u16-2band-nodata": TiffSpec(
        dtype="uint16",
        width=700,
        height=530,
        count=2,
        nodata=0,
        overviews=(2, 4),
        blockxsize=128,
        blockysize=128,
    ),
    "f32-nan": TiffSpec(
        dtype="float32", width=300, height=217, nodata=float("nan"), blockxsize=64, blockysize=64
    ),
    "i16-band-interleave": TiffSpec(
        dtype="int16",
        width=260,
        height=190,
        count=3,
        interleave="band",
        nodata=-9999,
        blockxsize=64,
        blockysize=64,
    ),
}


@pytest.fixture(scope="module")
def sources(tiff_cache: Path) -> dict[str, Path]:
    return {name: cached_tiff(spec, tiff_cache) for name, spec in SPECS.items()}


def read_back(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        profile = dict(src.profile)
        profile["overviews"] = src.overviews(1)
        profile["predictor_tag"] = src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR")
        return src.read(), profile


def assert_valid_cog(path: Path) -> None:
    valid, errors, warnings = cog_validate(str(path), quiet=True)
    assert valid, (errors, warnings)


@pytest.mark.parametrize("name", list(SPECS))
def test_to_cog_round_trip(name: str, sources: dict[str, Path], tmp_path: Path) -> None:
    spec = SPECS[name]
    geoarray = daskcog.open(sources[name], chunks=128)
    calls: list[tuple[int, int]] = []
    out = geoarray.to_cog(
        tmp_path / "out.tif", blocksize=128, progress=lambda d, t: calls.append((d, t))
    )

    assert_valid_cog(out)
    values, profile = read_back(out)
    np.testing.assert_array_equal(values, expected_pixels(spec).data)
    assert profile["compress"] == "deflate"
    assert profile["predictor_tag"] == ("3" if spec.is_float else "2")
    assert profile["blockxsize"] == profile["blockysize"] == 128
    assert profile["overviews"] == overview_factors(spec.width, spec.height, 128) != []
    assert profile["transform"] == spec.transform
    assert profile["crs"].to_epsg() == 32633
    if isinstance(spec.nodata, float) and np.isnan(spec.nodata):
        assert np.isnan(profile["nodata"])
    else:
        assert profile["nodata"] == spec.nodata
    # chunk by chunk: one progress call per chunk, counting up to the total
    blocks = geoarray.data.npartitions
    assert [d for d, _ in calls] == list(range(1, blocks + 1))
    assert {t for _, t in calls} == {blocks}
    assert sorted(os.listdir(tmp_path)) == ["out.tif"], "temporary files are removed"


def test_to_raster_plain_tiled_gtiff(sources: dict[str, Path], tmp_path: Path) -> None:
    spec = SPECS["u16-2band-nodata"]
    out = daskcog.open(sources["u16-2band-nodata"], chunks=256).to_raster(
        tmp_path / "plain.tif", compress="zstd", blocksize=256
    )
    values, profile = read_back(out)
    np.testing.assert_array_equal(values, expected_pixels(spec).data)
    assert profile["compress"] == "zstd"
    assert profile["tiled"] and profile["blockxsize"] == 256
    assert profile["overviews"] == []
    assert profile["nodata"] == 0


def test_to_raster_with_overviews_and_no_predictor(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    out = daskcog.open(sources["u16-2band-nodata"]).to_raster(
        tmp_path / "ovr.tif", overviews=True, blocksize=128, predictor=1, resampling="average"
    )
    _, profile = read_back(out)
    assert profile["overviews"] == overview_factors(700, 530, 128) == [2, 4, 8]
    assert profile["predictor_tag"] is None


def test_window_with_unaligned_chunks(sources: dict[str, Path], tmp_path: Path) -> None:
    """A sub-window whose chunks straddle the output tiles; transform follows the window."""
    spec = SPECS["u16-2band-nodata"]
    geoarray = daskcog.open(sources["u16-2band-nodata"], chunks=128)[:, 37:501, 13:611]
    assert geoarray.chunks[1][0] != 128
    out = geoarray.to_cog(tmp_path / "window.tif", blocksize=64)
    assert_valid_cog(out)
    values, profile = read_back(out)
    np.testing.assert_array_equal(values, expected_pixels(spec).data[:, 37:501, 13:611])
    assert profile["transform"] == spec.transform @ Affine.translation(13, 37)


def test_lazy_synthetic_array(tmp_path: Path) -> None:
    """Any GeoArray works, not only opened files: here a dask array from scratch."""
    data = (
        da.arange(3 * 200 * 300, dtype="int32", chunks=50 * 77)
        .reshape(3, 200, 300)
        .rechunk((1, 64, 100))
    )
    transform = Affine(0.5, 0, 10.0, 0, -0.5, 50.0)
    geoarray = GeoArray(
        data, transform=transform, crs="EPSG:4326", fill_value_default=-1, nodata=-1
    )
    out = geoarray.to_cog(tmp_path / "synthetic.tif", blocksize=64, compress="lzw")
    assert_valid_cog(out)
    values, profile = read_back(out)
    np.testing.assert_array_equal(values, data.compute())
    assert profile["crs"].to_epsg() == 4326 and profile["nodata"] == -1
    assert profile["compress"] == "lzw"


def test_geotensor_to_cog_and_to_raster(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(100, 5, size=(2, 150, 170)).astype("float64")
    values[:, :10, :10] = -9999.0
    tensor = GeoTensor(values, Affine(30, 0, 500000, 0, -30, 4000000), "EPSG:32610", -9999.0)

    cog = tensor.to_cog(tmp_path / "t.tif", blocksize=64, nodata=-9999.0)
    assert_valid_cog(cog)
    back, profile = read_back(cog)
    np.testing.assert_array_equal(back, values)
    assert profile["nodata"] == -9999.0 and profile["predictor_tag"] == "3"

    plain = tensor.to_raster(tmp_path / "plain.tif")
    back, profile = read_back(plain)
    np.testing.assert_array_equal(back, values)
    assert profile["nodata"] is None, "a GeoTensor writes nodata only when asked"


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def explode(block: np.ndarray, block_info=None) -> np.ndarray:  # noqa: ANN001
        if block_info[0]["chunk-location"] == (0, 1, 1):
            raise RuntimeError("boom in chunk (0, 1, 1)")
        return block

    data = da.zeros((1, 256, 256), dtype="uint8", chunks=(1, 128, 128)).map_blocks(
        explode, dtype="uint8"
    )
    geoarray = GeoArray(
        data, transform=Affine(1, 0, 0, 0, -1, 0), crs="EPSG:3857", fill_value_default=0
    )
    (tmp_path / "out.tif").write_bytes(b"previous output")
    with pytest.raises(RuntimeError, match="boom"):
        geoarray.to_cog(tmp_path / "out.tif", blocksize=64)
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]
    assert (tmp_path / "out.tif").read_bytes() == b"previous output", "replaced only on success"


@pytest.mark.parametrize("as_default", [False, True], ids=["scheduler=client", "default-client"])
def test_distributed_client_gathers_in_batches(
    as_default: bool, sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster the chunks come back here in batches (the writer is local to this process)."""
    distributed = pytest.importorskip("distributed")
    import daskcog.writing.write as write_module

    batched = []
    real = write_module.gather_in_batches
    monkeypatch.setattr(
        write_module,
        "gather_in_batches",
        lambda client, data: batched.append(1) or real(client, data),
    )
    spec = SPECS["i16-band-interleave"]
    geoarray = daskcog.open(sources["i16-band-interleave"], chunks=64)
    calls: list[int] = []
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=as_default) as client,
    ):
        out = geoarray.to_cog(
            tmp_path / "dist.tif",
            blocksize=64,
            scheduler=None if as_default else client,
            progress=lambda d, t: calls.append(d),
        )
    assert_valid_cog(out)
    values, profile = read_back(out)
    np.testing.assert_array_equal(values, expected_pixels(spec).data)
    assert profile["nodata"] == -9999
    assert calls == list(range(1, geoarray.data.npartitions + 1))
    assert batched == [1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compress": "gzip"}, "unknown compression"),
        ({"predictor": 3}, "needs a float dtype"),
        ({"compress": "lzma", "predictor": 2}, "predictor only applies"),
        ({"blocksize": 100}, "multiple of 16"),
        ({"nodata": 70000}, "cannot be stored"),
        ({"resampling": "fancy"}, "unknown overview resampling"),
    ],
)
def test_bad_options(options: dict, message: str, sources: dict[str, Path], tmp_path: Path) -> None:
    geoarray = daskcog.open(sources["u16-2band-nodata"])
    with pytest.raises(WriteError, match=message):
        write_raster(geoarray, tmp_path / "x.tif", **options)
    assert os.listdir(tmp_path) == []


def test_missing_output_folder(sources: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        daskcog.open(sources["f32-nan"]).to_cog(tmp_path / "no" / "such" / "x.tif")


def test_overview_factors() -> None:
    assert overview_factors(512, 512, 512) == []
    assert overview_factors(513, 100, 512) == [2]
    assert overview_factors(4096, 4096, 512) == [2, 4, 8]
