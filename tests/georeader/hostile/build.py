"""Build the hostile files: good GeoTIFFs written by rasterio, then damaged byte by byte.

Every builder returns {case name: path}. No binaries are committed: the bytes
come from rasterio's GDAL and the patches below, in a fresh folder per session.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import rasterio
from rasterio.env import Env
from rasterio.transform import from_origin

from tests.georeader.hostile.tiffpatch import Tiff

SIZE = 128
TILE = 64


def _pixels(count: int, dtype: str, size: int = SIZE) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    base = (x * 3 + y * 5) % 200 + 20
    return np.stack([base + b for b in range(count)]).astype(dtype)


def write_base(path: Path, *, dtype: str = "uint16", count: int = 1, mask: bool = False,
               tiled: bool = True, overviews: bool = True, size: int = SIZE, **options) -> Path:
    """A small georeferenced GeoTIFF (2 x 2 tiles, an overview, optionally an internal mask)."""
    profile = dict(driver="GTiff", width=size, height=size, count=count, dtype=dtype,
                   crs="EPSG:32633", transform=from_origin(500000, 4100000, 10, 10))
    if tiled:
        profile.update(tiled=True, blockxsize=TILE, blockysize=TILE)
    profile.update(options)
    with Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        complex_type = dtype.startswith("complex")
        data = (
            _pixels(count, "float32", size).astype("complex64")
            if complex_type
            else _pixels(count, dtype, size)
        )
        dst.write(data)
        if mask:
            valid = np.full((size, size), 255, np.uint8)
            valid[:20, :30] = 0
            dst.write_mask(valid)
        if overviews:
            dst.build_overviews([2])
    return path


def deflate_bomb(nbytes: int) -> bytes:
    """A zlib stream that inflates to `nbytes` zeros (about 1000:1), built in well under a second.

    In steady state, zlib's output for each further block of zeros is the same bytes, so one
    compressed block is repeated instead of compressing gigabytes.
    """
    block = 16 * 2**20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(bytes(block)) for _ in range(4)]
    tail = c.flush()
    blocks = max(nbytes // block, 4)
    raw = parts[0] + parts[1] + parts[2] * (blocks - 3) + parts[3] + tail
    adler = ((blocks * block) % 65521) << 16 | 1  # adler32 of zeros: a = 1, b = n mod 65521
    return b"\x78\xda" + raw + struct.pack(">I", adler)


def _fletcher32(data: bytes) -> int:
    """LERC2's blob checksum (liblerc's ComputeChecksumFletcher32)."""
    sum1 = sum2 = 0xFFFF
    words = len(data) // 2
    i = 0
    while words:
        n = min(words, 359)
        words -= n
        for _ in range(n):
            sum1 += (data[i] << 8) | data[i + 1]
            sum2 += sum1
            i += 2
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if len(data) & 1:
        sum1 += data[i] << 8
        sum2 += sum1
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return sum2 << 16 | sum1


def lerc_bomb(rows: int, cols: int) -> bytes:
    """A valid LERC2 blob of a constant image that declares `rows` x `cols` pixels."""
    blob = bytearray(imagecodecs.lerc_encode(np.zeros((16, 16), np.uint8)))
    struct.pack_into("<ii", blob, 14, rows, cols)  # nRows, nCols after magic, version, checksum
    struct.pack_into("<i", blob, 22 + 4, rows * cols if rows * cols < 2**31 else 0)  # numValid
    struct.pack_into("<I", blob, 10, _fletcher32(bytes(blob[14:])))
    return bytes(blob)


def jpeg_with_dims(rows: int, cols: int) -> bytes:
    """A small JPEG whose SOF marker declares `rows` x `cols`."""
    data = bytearray(imagecodecs.jpeg8_encode(np.zeros((16, 16, 3), np.uint8)))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack_from(">H", data, i + 2)[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, rows, cols)
            break
        i += 2 + length
    return bytes(data)


def _save(folder: Path, name: str, data: bytes) -> Path:
    path = folder / f"{name}.tif"
    path.write_bytes(data)
    return path


def truncations(folder: Path) -> dict[str, Path]:
    """The masked COG-like file cut at every structural boundary (header, IFDs, tags, tiles)."""
    base = write_base(folder / "trunc-base.tif", mask=True, compress="deflate")
    data = base.read_bytes()
    cuts = Tiff(data).boundaries() + [len(data) - 1]
    return {
        f"truncated-at-{n}": _save(folder, f"truncated-at-{n}", data[:n]) for n in sorted(set(cuts))
    }


def loops(folder: Path) -> dict[str, Path]:
    base = write_base(folder / "loop-base.tif").read_bytes()
    cases = {}
    t = Tiff(base)
    t.set_next(0, t.ifds[0].offset)
    cases["ifd-loops-to-itself"] = t.bytes()
    t = Tiff(base)
    t.set_next(len(t.ifds) - 1, t.ifds[0].offset)
    cases["ifd-last-points-to-first"] = t.bytes()
    t = Tiff(base)
    t.set_next(0, t.ifds[0].offset + 2)  # into its own entry table
    cases["ifd-points-inside-itself"] = t.bytes()
    big = write_base(folder / "loop-big.tif", BIGTIFF="YES").read_bytes()
    t = Tiff(big)
    t.set_next(0, t.ifds[0].offset)
    cases["bigtiff-ifd-loops"] = t.bytes()
    return {k: _save(folder, k, v) for k, v in cases.items()}


def patched(base: bytes, edit: Callable[[Tiff], None]) -> bytes:
    t = Tiff(base)
    edit(t)
    return t.bytes()


def inconsistent_headers(folder: Path) -> dict[str, Path]:
    base = write_base(folder / "hdr-base.tif", compress="deflate").read_bytes()
    edits: dict[str, Callable[[Tiff], None]] = {
        "huge-dims-four-tiles": lambda t: (t.set_entry(0, 256, kind=4, raw=2**31 - 1),
                                           t.set_entry(0, 257, kind=4, raw=2**31 - 1)),
        "width-zero": lambda t: t.set_values(0, 256, [0]),
        "height-zero": lambda t: t.set_values(0, 257, [0]),
        "tile-width-zero": lambda t: t.set_values(0, 322, [0]),
        "tile-offsets-fewer-than-tiles": lambda t: t.set_entry(0, 324, count=3),
        "tile-counts-fewer-than-offsets": lambda t: t.set_entry(0, 325, count=2),
        "pixel-scale-zero": lambda t: t.set_values(0, 33550, [0.0, 0.0, 0.0]),
        "pixel-scale-nan": lambda t: t.set_values(0, 33550, [float("nan"), 10.0, 0.0]),
        "tile-offset-past-end": lambda t: t.set_values(0, 324, [10**9] + t.values(0, 324)[1:]),
        "tile-bytecount-huge": lambda t: t.set_values(0, 325, [2**31] + t.values(0, 325)[1:]),
        "overview-width-zero": lambda t: t.set_values(1, 256, [0]),
        "overview-offsets-past-end": lambda t: t.set_values(1, 324, [2**32 - 16] * 1),
    }
    return {k: _save(folder, k, patched(base, e)) for k, e in edits.items()}


def odd_dtypes(folder: Path) -> dict[str, Path]:
    cases = {}
    for dtype in ("int8", "int64", "uint64", "complex64", "complex128", "float64"):
        cases[f"dtype-{dtype}"] = write_base(
            folder / f"dtype-{dtype}.tif", dtype=dtype, compress="deflate"
        )
    cases["dtype-cint16"] = write_base(folder / "dtype-cint16.tif", dtype="complex_int16")
    cases["bits-12"] = write_base(
        folder / "bits-12.tif", dtype="uint16", nbits=12, compress="deflate"
    )
    cases["bits-1"] = write_base(folder / "bits-1.tif", dtype="uint8", nbits=1)
    cases["float16"] = write_base(folder / "float16.tif", dtype="float32", nbits=16)
    return cases


def garbage_tags(folder: Path) -> dict[str, Path]:
    base = write_base(
        folder / "tag-base.tif", compress="deflate", predictor=2, nodata=7
    ).read_bytes()

    def nodata_text(text: bytes) -> Callable[[Tiff], None]:
        def edit(t: Tiff) -> None:
            e = t.ifds[0].entries[42113]
            t.data[e.value_pos : e.value_pos + e.count] = text.ljust(e.count, b"\0")[: e.count]
        return edit

    def geokeys(index: int, value: int) -> Callable[[Tiff], None]:
        def edit(t: Tiff) -> None:
            values = t.values(0, 34735)
            values[index] = value
            t.set_values(0, 34735, values)
        return edit

    edits: dict[str, Callable[[Tiff], None]] = {
        "nodata-not-a-number": nodata_text(b"x"),
        "nodata-empty": nodata_text(b""),
        "geokeys-count-huge": geokeys(3, 1000),
        "geokeys-version-wrong": geokeys(0, 99),
        "geokey-refers-past-doubles": lambda t: t.set_values(
            0, 34735, t.values(0, 34735)[:4] + [1024, 34736, 5, 60000] + t.values(0, 34735)[8:]
        ),
        "geokey-model-type-unknown": geokeys(7, 77),
        "compression-unknown": lambda t: t.set_values(0, 259, [12345]),
        "samples-per-pixel-zero": lambda t: t.set_values(0, 277, [0]),
        "bits-per-sample-zero": lambda t: t.set_values(0, 258, [0]),
        "bits-per-sample-odd": lambda t: t.set_values(0, 258, [13]),
        "predictor-unknown": lambda t: t.set_values(0, 317, [7]),
        "planar-config-3": lambda t: t.set_values(0, 284, [3]),
        "sample-format-unknown": lambda t: (
            t.set_entry(0, 339, raw=9) if 339 in t.ifds[0].entries else None
        ),
        "tag-count-2-to-the-30": lambda t: t.set_entry(0, 324, count=2**30),
        "tag-type-unknown": lambda t: t.set_entry(0, 322, kind=99),
        "ifd-tag-count-huge": lambda t: struct.pack_into(
            t.order + "H", t.data, t.ifds[0].offset, 65535
        ),
        "not-a-tiff-magic": lambda t: t.data.__setitem__(slice(0, 4), b"GIF8"),
        "tiff-version-wrong": lambda t: struct.pack_into(t.order + "H", t.data, 2, 44),
        "first-ifd-past-end": lambda t: struct.pack_into(t.order + "I", t.data, 4, 10**8),
        "first-ifd-zero": lambda t: struct.pack_into(t.order + "I", t.data, 4, 0),
    }
    return {k: _save(folder, k, patched(base, e)) for k, e in edits.items()}


def bombs(folder: Path) -> dict[str, Path]:
    """Tiles that would inflate far past their expected size, one per decode path."""
    big = 2 * 2**30 + 2**20
    cases: dict[str, bytes] = {}
    base = write_base(folder / "bomb-deflate.tif", compress="deflate").read_bytes()
    cases["bomb-deflate-data-tile"] = patched(
        base, lambda t: t.replace_tile(0, 0, deflate_bomb(big))
    )
    masked = write_base(folder / "bomb-mask.tif", mask=True, compress="deflate").read_bytes()

    def mask_tile(t: Tiff) -> None:
        mask_ifd = next(
            i for i, ifd in enumerate(t.ifds) if 254 in ifd.entries and t.values(i, 254)[0] & 4
        )
        t.replace_tile(mask_ifd, 0, deflate_bomb(big))

    cases["bomb-deflate-mask-tile"] = patched(masked, mask_tile)
    zstd = write_base(folder / "bomb-zstd.tif", compress="zstd").read_bytes()
    frame = imagecodecs.zstd_encode(bytes(256 * 2**20), level=3)
    cases["bomb-zstd-frames"] = patched(zstd, lambda t: t.replace_tile(0, 0, frame * 9))
    lerc = write_base(folder / "bomb-lerc.tif", dtype="uint8", compress="lerc").read_bytes()
    cases["bomb-lerc-dims"] = patched(lerc, lambda t: t.replace_tile(0, 0, lerc_bomb(46000, 46000)))
    lerc_deflate = write_base(
        folder / "bomb-lerc-deflate.tif", dtype="uint8", compress="lerc_deflate"
    ).read_bytes()
    cases["bomb-lerc-deflate-stream"] = patched(
        lerc_deflate, lambda t: t.replace_tile(0, 0, deflate_bomb(big))
    )
    jpeg = write_base(
        folder / "bomb-jpeg.tif", dtype="uint8", count=3, compress="jpeg", overviews=False
    ).read_bytes()
    cases["bomb-jpeg-dims"] = patched(
        jpeg, lambda t: t.replace_tile(0, 0, jpeg_with_dims(60000, 60000))
    )
    ycbcr = write_base(
        folder / "bomb-ycbcr.tif",
        dtype="uint8",
        count=3,
        compress="jpeg",
        photometric="YCBCR",
        overviews=False,
    ).read_bytes()
    cases["bomb-ycbcr-jpeg-dims"] = patched(
        ycbcr, lambda t: t.replace_tile(0, 0, jpeg_with_dims(60000, 60000))
    )
    webp = write_base(
        folder / "bomb-webp.tif", dtype="uint8", count=3, compress="webp", overviews=False
    ).read_bytes()
    webp_big = bytearray(imagecodecs.webp_encode(np.zeros((16, 16, 3), np.uint8), lossless=True))
    # VP8L: signature byte 0x2f at 20, then 14-bit width-1 and height-1
    bits = int.from_bytes(webp_big[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | (16382) | (16382 << 14)
    webp_big[21:25] = bits.to_bytes(4, "little")
    cases["bomb-webp-dims"] = patched(webp, lambda t: t.replace_tile(0, 0, bytes(webp_big)))
    striped = write_base(
        folder / "bomb-striped.tif", tiled=False, compress="deflate", overviews=False
    ).read_bytes()
    cases["bomb-striped-gdal-route"] = patched(
        striped, lambda t: t.replace_tile(0, 0, deflate_bomb(big))
    )
    # streams under the byte-count bound checked at open (2 x a tile's size + 64 KiB): only
    # the decoder's own bound (an out= buffer of the tile's size) stops them
    wide = write_base(
        folder / "bomb-wide.tif",
        dtype="float64",
        compress="deflate",
        size=512,
        blockxsize=512,
        blockysize=512,
        overviews=False,
    ).read_bytes()  # one 2 MiB tile
    cases["bomb-deflate-data-tile-under-bound"] = patched(
        wide, lambda t: t.replace_tile(0, 0, deflate_bomb(big))
    )
    wide_mask = write_base(
        folder / "bomb-wide-mask.tif",
        dtype="uint8",
        mask=True,
        compress="deflate",
        blockxsize=SIZE,
        blockysize=SIZE,
        overviews=False,
    ).read_bytes()
    cases["bomb-deflate-mask-tile-under-bound"] = patched(
        wide_mask,
        lambda t: t.replace_tile(
            next(
                i for i, ifd in enumerate(t.ifds) if 254 in ifd.entries and t.values(i, 254)[0] & 4
            ),
            0,
            deflate_bomb(64 * 2**20),
        ),
    )
    return {k: _save(folder, k, v) for k, v in cases.items()}


def odd_paths(folder: Path) -> dict[str, Path]:
    out = {}
    for i, name in enumerate(("h#x", "q?y", "pct%41", "café ☃", "nl\nx")):
        out[f"path-{i}"] = write_base(folder / f"{name}.tif", compress="deflate")
    return out


ALL = {"truncated": truncations, "loops": loops, "headers": inconsistent_headers,
       "dtypes": odd_dtypes, "tags": garbage_tags, "bombs": bombs, "paths": odd_paths}


def build_all(folder: Path) -> dict[str, dict[str, Path]]:
    """{family: {case: path}} for every family."""
    out = {}
    for family, builder in ALL.items():
        sub = folder / family
        sub.mkdir(parents=True, exist_ok=True)
        out[family] = builder(sub)
    return out
