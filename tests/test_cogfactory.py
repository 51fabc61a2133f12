"""Tests for tests/cogfactory.py: every spec writes, and the file is what the spec says."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Compression, Interleaving, MaskFlags

from tests.cogfactory import (
    MATRIX_CODECS,
    MATRIX_DTYPES,
    TiffSpec,
    cached_tiff,
    expected_pixels,
    spec_matrix,
    special_specs,
    write_benchmark_cog,
    write_tiff,
)

try:
    from rio_cogeo.cogeo import cog_validate
except ImportError:  # pragma: no cover
    cog_validate = None

FULL = spec_matrix("full")
QUICK = spec_matrix("quick")
SPECIAL = special_specs()
ALL = {s.id: s for s in FULL} | {f"special:{k}": v for k, v in SPECIAL.items()}

_TIFF_COMPRESSION_CODE = {
    "none": 1,
    "lzw": 5,
    "jpeg": 7,
    "deflate": 8,
    "packbits": 32773,
    "lerc": 34887,
    "lzma": 34925,
    "zstd": 50000,
    "webp": 50001,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cogfactory")
    return {k: cached_tiff(s, d) for k, s in ALL.items()}


# ------------------------------------------------------------------ spec / matrix design
def test_ids_unique_and_hashable():
    assert len({s.id for s in FULL}) == len(FULL)
    assert len(set(FULL)) == len(FULL)
    assert len({s.id for s in SPECIAL.values()}) == len(SPECIAL)
    nan = TiffSpec(dtype="float32", nodata=float("nan"))
    assert nan == TiffSpec(dtype="float32", nodata=float("nan"))
    assert hash(nan) == hash(TiffSpec(dtype="float32", nodata=float("nan")))
    assert TiffSpec(dtype="uint8", nodata=0.0).id == TiffSpec(dtype="uint8", nodata=0).id
    assert "h" in TiffSpec(crs="EPSG:4326").id.split("-")[-1]
    for s in FULL:
        assert all(c.isalnum() or c in "-.+x" for c in s.id), s.id


def test_matrix_covers_every_valid_base_combination():
    seen = {(s.dtype, s.compress, s.interleave, s.predictor) for s in FULL}
    for dt in MATRIX_DTYPES + ("int8", "uint32"):
        for codec in MATRIX_CODECS:
            for il in ("pixel", "band"):
                for pred in (1, 2, 3):
                    try:
                        TiffSpec(dtype=dt, compress=codec, interleave=il, predictor=pred,
                                 count=3 if codec == "webp" else 2)
                    except ValueError:
                        continue
                    assert (dt, codec, il, pred) in seen
    # every dtype x codec x validity mode where valid
    dcv = {(s.dtype, s.compress, s.validity) for s in FULL}
    for dt in MATRIX_DTYPES:
        modes = ["plain", "nodata", "mask"] + (["nan"] if "float" in dt else [])
        modes += ["alpha"] if dt in ("uint8", "uint16") else []
        for codec in MATRIX_CODECS:
            if any(s.dtype == dt and s.compress == codec for s in FULL):
                for m in modes:
                    assert (dt, codec, m) in dcv, (dt, codec, m)
    # secondary axes
    assert {s.layout for s in FULL} == {"cog", "gtiff"}
    assert {(s.layout, bool(s.overviews)) for s in FULL} == {
        ("cog", True), ("cog", False), ("gtiff", True), ("gtiff", False)}
    assert any(s.blockxsize != s.blockysize for s in FULL)
    assert any(s.width % 16 and s.height % 16 for s in FULL)
    assert {s.count for s in FULL} >= {1, 2, 3, 4}
    assert any(s.endian == "big" and s.predictor == 3 for s in FULL)
    assert any(s.endian == "big" and s.predictor == 2 for s in FULL)
    assert sum(s.sparse for s in FULL) >= 10
    assert 200 <= len(FULL) <= 400


def test_quick_is_representative_subset():
    assert 25 <= len(QUICK) <= 40
    assert set(QUICK) <= set(FULL)
    assert {s.dtype for s in QUICK} == set(MATRIX_DTYPES)
    assert {s.compress for s in QUICK} == set(MATRIX_CODECS)
    assert {(s.compress, s.interleave) for s in QUICK} >= {
        (c, il) for c in MATRIX_CODECS for il in ("pixel", "band") if c != "webp"}
    assert {s.predictor for s in QUICK} == {1, 2, 3}
    assert {s.validity for s in QUICK} == {"plain", "nodata", "nan", "mask", "alpha"}
    assert {s.layout for s in QUICK} == {"cog", "gtiff"}
    assert any(s.overviews for s in QUICK) and any(s.sparse for s in QUICK)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(dtype="uint16", compress="jpeg"), "jpeg requires uint8"),
        (dict(dtype="int32", predictor=3), "predictor 3"),
        (dict(dtype="uint8", compress="webp", count=1), "webp requires 3"),
        (dict(dtype="uint8", compress="webp", count=3, interleave="band"), "pixel interleave"),
        (dict(dtype="uint8", compress="webp", count=4), "alpha=True"),
        (dict(dtype="uint16", compress="lerc", predictor=2), "predictor 2"),
        (dict(dtype="uint16", compress="lzma", predictor=2), "predictor 2"),
        (dict(dtype="uint8", compress="jpeg", count=4, photometric="YCBCR"), "YCBCR"),
        (dict(dtype="uint16", nodata=float("nan")), "NaN nodata"),
        (dict(dtype="uint8", nodata=300), "not representable"),
        (dict(dtype="uint16", nodata=0, mask=True), "mutually exclusive"),
        (dict(dtype="int16", count=2, alpha=True), "alpha"),
        (dict(dtype="uint8", alpha=True), "alpha needs"),
        (dict(blockxsize=40), "multiples of 16"),
        (dict(tiled=False), "must be tiled"),
        (dict(overviews=(4, 2)), "overviews"),
        (dict(width=30, height=20, blockxsize=64, blockysize=64, sparse=True), "sparse"),
        (dict(compress="zstd", quality=80), "quality"),
        (dict(dtype="float32", nodata=0.1), "float32"),
    ],
)
def test_invalid_combinations_rejected(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TiffSpec(**kw)


def test_pixels_deterministic_and_in_range():
    for s in QUICK:
        a, b = expected_pixels(s), expected_pixels(s)
        np.testing.assert_array_equal(a.data, b.data)
        assert a.data.dtype == np.dtype(s.dtype)
        assert a.data.shape == (s.count, s.height, s.width)
        valid = a.data[~np.isnan(a.data)] if s.is_float else a.data
        assert np.unique(valid[: 10000]).size > 50  # not trivial
    s = TiffSpec(dtype="uint16", nodata=65535)
    assert (expected_pixels(s).data == 65535).mean() > 0.01


# ------------------------------------------------------------------ written files
def _close_enough(spec, got, want):
    if not spec.lossy:
        np.testing.assert_array_equal(got, want)  # NaN == NaN for assert_array_equal
        return
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.mean() < 8, diff.mean()


def _expected_compression(spec):
    return None if spec.compress == "none" else Compression(spec.compress.upper())


@pytest.mark.parametrize("key", list(ALL))
def test_written_file_matches_spec(files, key):
    spec, path = ALL[key], files[key]
    px = expected_pixels(spec)
    with rasterio.open(path) as src:
        assert src.driver == "GTiff"
        assert (src.count, src.height, src.width) == (spec.count, spec.height, spec.width)
        assert set(src.dtypes) == {spec.dtype}
        assert src.crs == rasterio.crs.CRS.from_user_input(spec.crs)
        assert src.transform == spec.transform
        assert src.block_shapes[0] == spec.block_shape
        ist = src.tags(ns="IMAGE_STRUCTURE")
        if spec.photometric == "YCBCR":
            assert ist["COMPRESSION"] == "YCbCr JPEG"
        else:
            assert src.compression == _expected_compression(spec)
        if spec.count > 1:
            assert src.interleaving == Interleaving(spec.interleave.upper())
        assert ist.get("PREDICTOR", "1") == str(spec.predictor)
        if spec.compress == "webp":
            assert ist["COMPRESSION_REVERSIBILITY"] == ("LOSSLESS" if spec.lossless else "LOSSY")
        assert src.overviews(1) == list(spec.overviews)
        # nodata / mask flags
        if spec.nodata is None:
            assert src.nodata is None
        elif math.isnan(spec.nodata):
            assert math.isnan(src.nodata)
        else:
            assert src.nodata == spec.nodata
        flags = {
            "plain": [MaskFlags.all_valid],
            "nodata": [MaskFlags.nodata],
            "nan": [MaskFlags.nodata],
            "mask": [MaskFlags.per_dataset],
            "alpha": [MaskFlags.per_dataset, MaskFlags.alpha],
        }[spec.validity]
        assert src.mask_flag_enums[0] == flags
        if spec.alpha:
            assert src.colorinterp[-1] == rasterio.enums.ColorInterp.alpha
        # pixel content
        _close_enough(spec, src.read(), px.data)
        if spec.mask:
            np.testing.assert_array_equal(src.read_masks(1), px.mask)
            for f in spec.overviews:  # mask overviews exist too
                shape = (math.ceil(spec.height / f), math.ceil(spec.width / f))
                ov = src.read_masks(1, out_shape=shape)
                assert ((ov == 0) | (ov == 255)).all() and (ov == 0).any()
        if spec.alpha:
            want = (px.data[-1] // (256 if spec.dtype == "uint16" else 1)).astype(np.uint8)
            if spec.compress == "jpeg":  # lossy alpha
                assert np.abs(src.dataset_mask().astype(int) - want).mean() < 8
            else:
                np.testing.assert_array_equal(src.dataset_mask(), want)
        if spec.validity in ("nodata", "nan"):
            assert (src.read_masks(1) == 0).mean() > 0.01
        # overviews are readable and of the expected size
        for f in spec.overviews:
            oh, ow = math.ceil(spec.height / f), math.ceil(spec.width / f)
            ov = src.read(1, out_shape=(oh, ow))
            assert ov.shape == (oh, ow)
    # header: byte order and classic/Big TIFF
    head = path.read_bytes()[:4]
    assert head[:2] == (b"MM" if spec.endian == "big" else b"II")
    magic = int.from_bytes(head[2:4], "big" if spec.endian == "big" else "little")
    assert magic == (43 if spec.bigtiff else 42)


def _ifd_info(path: Path) -> dict:
    from async_tiff import TIFF
    from async_tiff.store import LocalStore

    async def run():
        tiff = await TIFF.open(path.name, store=LocalStore(str(path.parent.resolve())))
        out = []
        for ifd in tiff.ifds:
            tiled = ifd.tile_byte_counts is not None
            counts = ifd.tile_byte_counts if tiled else ifd.strip_byte_counts
            offsets = ifd.tile_offsets if tiled else ifd.strip_offsets
            out.append(
                dict(
                    counts=list(counts),
                    offsets=list(offsets),
                    compression=int(ifd.compression),
                    predictor=int(ifd.predictor) if ifd.predictor is not None else 1,
                    planar=int(ifd.planar_configuration),
                    tile=(ifd.tile_width, ifd.tile_height),
                    size=(ifd.image_width, ifd.image_height),
                    new_subfile_type=ifd.new_subfile_type,
                )
            )
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("key", list(ALL))
def test_ifd_structure(files, key):
    spec, path = ALL[key], files[key]
    ifds = _ifd_info(path)
    n_img = 1 + len(spec.overviews)
    assert len(ifds) == n_img * (2 if spec.mask else 1)
    main = ifds[0]
    assert main["size"] == (spec.width, spec.height)
    assert main["compression"] == _TIFF_COMPRESSION_CODE[spec.compress]
    assert main["predictor"] == spec.predictor
    if spec.count > 1:
        assert main["planar"] == (2 if spec.interleave == "band" else 1)
    if spec.tiled:
        assert main["tile"] == (spec.blockxsize, spec.blockysize)
    else:
        assert main["tile"] == (None, None)
    # every overview IFD carries the same codec / predictor / interleave; masks are 1-bit deflate
    img = [i for i in ifds if not (i["new_subfile_type"] or 0) & 4]
    masks = [i for i in ifds if (i["new_subfile_type"] or 0) & 4]
    assert len(img) == n_img and len(masks) == (n_img if spec.mask else 0)
    for i in img:
        assert (i["compression"], i["predictor"]) == (main["compression"], main["predictor"])
        if spec.count > 1:
            assert i["planar"] == main["planar"]
    counts = main["counts"]
    if spec.sparse:
        nwin = len(spec.block_windows())
        by, bx = spec.block_shape
        ntx = -(-spec.width // bx)
        nplanes = spec.count if spec.interleave == "band" and spec.count > 1 else 1
        assert len(counts) == nwin * nplanes
        for w in spec.sparse_windows():
            idx = (w.row_off // by) * ntx + (w.col_off // bx)
            for p in range(nplanes):
                assert counts[p * nwin + idx] == 0
                assert main["offsets"][p * nwin + idx] == 0
    else:
        assert min(counts) > 0
    if spec.layout == "cog" and spec.overviews:
        # COG order: overview data precedes full-resolution data
        first_main = min(o for o in main["offsets"] if o)
        assert all(min(o for o in i["offsets"] if o) < first_main for i in img[1:])


@pytest.mark.skipif(cog_validate is None, reason="rio-cogeo not installed")
@pytest.mark.parametrize("key", [k for k, s in ALL.items() if s.layout == "cog" or s.overviews])
def test_cog_validate(files, key):
    spec, path = ALL[key], files[key]
    valid, errors, _ = cog_validate(str(path), quiet=True)
    if spec.layout == "cog":
        assert valid, errors
    else:  # plain GTiff with overviews appended after the data
        assert not valid


# ------------------------------------------------------------------ helpers
def test_cached_tiff_atomic_and_reused(tmp_path):
    spec = QUICK[0]
    p1 = cached_tiff(spec, tmp_path / "c")
    mtime = p1.stat().st_mtime_ns
    p2 = cached_tiff(spec, tmp_path / "c")
    assert p1 == p2 and p2.stat().st_mtime_ns == mtime
    assert p1.name == f"{spec.id}.tif"
    assert os.listdir(tmp_path / "c") == [p1.name]


def test_write_tiff_returns_path(tmp_path):
    p = write_tiff(str(tmp_path / "x.tif"), TiffSpec())
    assert isinstance(p, Path) and p.exists()


def test_benchmark_cog_small(tmp_path):
    p = write_benchmark_cog(tmp_path / "bench.tif", size=1024, tile=256, overviews=(2, 4))
    with rasterio.open(p) as src:
        assert (src.width, src.height, src.dtypes[0]) == (1024, 1024, "uint16")
        assert src.block_shapes[0] == (256, 256)
        assert src.overviews(1) == [2, 4]
        assert src.compression == Compression.deflate
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        a = src.read(1)
        assert (a == 0).any() and np.unique(a).size > 1000
    if cog_validate is not None:
        assert cog_validate(str(p), quiet=True)[0]
