"""Deterministic GeoTIFF / COG factory for reader tests and benchmarks.

Everything here writes files with rasterio's bundled GDAL (GTiff driver) so that
tests can compare an independent reader against rasterio on the *same* bytes.

Public API
----------
``TiffSpec``                 frozen, hashable description of one file; ``spec.id`` is a short
                             readable string usable as a pytest param id and as a cache key.
                             Impossible combinations raise ``ValueError`` at construction.
``expected_pixels(spec)``    the exact array (and internal mask) the factory writes; equal to
                             what a reader must return for lossless codecs.
``write_tiff(path, spec)``   write one file, return its ``Path``.
``cached_tiff(spec, dir)``   write once into ``dir/<spec.id>.tif`` (atomic: temp file + rename).
``spec_matrix(level)``       the reader test matrix: ``"quick"`` (~30) or ``"full"`` (~300).
``special_specs()``          named layouts a reader must handle (or refuse cleanly).
``write_benchmark_cog()``    large, realistic-content COG for benchmarks.

Layouts
-------
``layout="cog"``   the image (plus internal mask and overviews) is first built uncompressed in
                   a ``/vsimem`` GTiff, then copied with ``COPY_SRC_OVERVIEWS=YES``: IFDs first,
                   overview data before full-resolution data, like GDAL's COG driver (which
                   itself cannot do non-square tiles or band interleave in GDAL 3.10).
``layout="gtiff"`` a plain GTiff written in Create mode; overviews (if any) are added afterwards
                   with ``build_overviews`` in update mode, so they sit *after* the image data.

Pixel content
-------------
Per band: a smooth sinusoidal field plus a gradient, a few constant-offset rectangles
("parcels") and seeded Gaussian noise, scaled into a sub-range of the dtype (so common
nodata sentinels never occur by accident), plus a small patch at the dtype's extreme values
for integer types.  Seeded by ``crc32(spec.id)`` so it is stable across processes.
Nodata specs get a nodata disc, a nodata column and ~0.5 % scattered nodata pixels; NaN
nodata uses NaN.  Mask specs get a masked-out corner triangle and a vertical stripe crossing
tile boundaries (written with ``write_mask`` into an internal mask, ``GDAL_TIFF_INTERNAL_MASK``);
alpha specs put the same validity pattern into the last band (0 / dtype max).
Sparse specs leave the middle row of blocks (plus the last block of the first row) empty: the
pixels there equal the fill value (nodata, or 0) and the blocks are never written, so they have
offset 0 / byte count 0 (``SPARSE_OK=TRUE``).

Validity rules (``ValueError`` otherwise)
-----------------------------------------
* predictor 2/3 only with deflate, lzw, zstd (GDAL silently ignores it for lzma, packbits and
  none, and does not apply it to lerc/jpeg/webp); predictor 3 only for float32/float64.
* jpeg: uint8 only (no 12-bit libjpeg); ``photometric="YCBCR"`` only for jpeg, 3 bands, pixel
  interleave (GDAL refuses YCbCr on 4 bands).
* webp: uint8, 3 or 4 bands (GDAL refuses 1 band), pixel interleave (GDAL *writes* band-
  interleaved WebP but cannot read it back: "WebPDecode: Fractional scanlines cannot be
  read"); 4 bands are always RGBA, so ``alpha=True`` is required.
* nodata, mask and alpha are mutually exclusive (GDAL would silently pick one of them as the
  dataset mask); NaN nodata only for floats; numeric nodata must be representable in the dtype.
* alpha needs 2 (gray+alpha) or 4 (RGBA) bands and uint8/uint16: GDAL only uses an alpha band as
  the dataset mask in those cases (``ALPHA=YES`` tags the first extra sample, so 4 bands are
  written as RGB + alpha).  jpeg + alpha is allowed but the alpha band is then lossy too.
* tiles are multiples of 16; ``tiled=False`` (strips) requires ``layout="gtiff"``.
"""

from __future__ import annotations

import math
import os
import uuid
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.windows import Window

__all__ = [
    "DTYPES",
    "COMPRESSIONS",
    "MATRIX_DTYPES",
    "MATRIX_CODECS",
    "TiffSpec",
    "Pixels",
    "expected_pixels",
    "write_tiff",
    "cached_tiff",
    "spec_matrix",
    "special_specs",
    "write_benchmark_cog",
    "LOSSY_CODECS",
]

DTYPES = ("uint8", "int8", "int16", "uint16", "int32", "uint32", "float32", "float64")
COMPRESSIONS = ("none", "deflate", "lzw", "zstd", "lerc", "webp", "jpeg", "packbits", "lzma")
PREDICTOR_CODECS = ("deflate", "lzw", "zstd")
LOSSY_CODECS = ("jpeg", "webp")  # (webp only when lossless=False)
FLOAT_DTYPES = ("float32", "float64")

_DTYPE_SHORT = {
    "uint8": "u8",
    "int8": "i8",
    "int16": "i16",
    "uint16": "u16",
    "int32": "i32",
    "uint32": "u32",
    "float32": "f32",
    "float64": "f64",
}
# value sub-range used for the data; keeps typical sentinels (0, min, max, -9999) free
_RANGE = {
    "uint8": (5, 250),
    "int8": (-100, 100),
    "int16": (-20000, 20000),
    "uint16": (100, 60000),
    "int32": (-3_000_000, 3_000_000),
    "uint32": (1000, 4_000_000_000),  # crosses 2**31: catches signed/unsigned mixups
    "float32": (-250.0, 1750.0),
    "float64": (100_000.0, 101_000.0),  # needs > float32 precision
}
_PHOTOMETRICS = (None, "MINISBLACK", "RGB", "YCBCR")


def _is_nan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


@dataclass(frozen=True)
class TiffSpec:
    """Description of one test GeoTIFF.  Frozen and hashable; validated on construction.

    ``blockysize`` is the rows-per-strip when ``tiled=False`` (``blockxsize`` is then ignored).
    ``nodata=float('nan')`` compares/hashes fine because ``id`` and ``__eq__`` are NaN-aware.
    """

    dtype: str = "uint16"
    width: int = 300
    height: int = 217
    count: int = 1
    compress: str = "deflate"
    interleave: str = "pixel"
    predictor: int = 1
    tiled: bool = True
    blockxsize: int = 64
    blockysize: int = 32
    nodata: float | int | None = None
    mask: bool = False
    alpha: bool = False
    overviews: tuple[int, ...] = ()
    overview_resampling: str = "nearest"
    crs: str = "EPSG:32633"
    origin_x: float = 399960.0
    origin_y: float = 5500020.0
    res_x: float = 10.0
    res_y: float = 10.0
    photometric: str | None = None
    sparse: bool = False
    bigtiff: bool = False
    endian: str = "little"  # "big" -> ENDIANNESS=BIG
    layout: str = "cog"  # "cog" | "gtiff"
    quality: int | None = None  # JPEG_QUALITY / WEBP_LEVEL (GDAL default 75)
    lossless: bool = False  # WEBP_LOSSLESS=TRUE

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        if isinstance(self.overviews, list):
            object.__setattr__(self, "overviews", tuple(self.overviews))
        if self.nodata is not None and not _is_nan(self.nodata):
            # normalise 0 / 0.0 so that equal specs have equal ids
            nd = float(self.nodata)
            if self.dtype not in FLOAT_DTYPES and nd.is_integer():
                object.__setattr__(self, "nodata", int(nd))
            else:
                object.__setattr__(self, "nodata", nd)
        self._validate()

    def _validate(self):
        def bad(msg):
            raise ValueError(f"invalid TiffSpec ({msg}): {self!r}")

        if self.dtype not in DTYPES:
            bad(f"dtype must be one of {DTYPES}")
        if self.compress not in COMPRESSIONS:
            bad(f"compress must be one of {COMPRESSIONS}")
        if self.interleave not in ("pixel", "band"):
            bad("interleave must be 'pixel' or 'band'")
        if self.predictor not in (1, 2, 3):
            bad("predictor must be 1, 2 or 3")
        if self.layout not in ("cog", "gtiff"):
            bad("layout must be 'cog' or 'gtiff'")
        if self.endian not in ("little", "big"):
            bad("endian must be 'little' or 'big'")
        if self.photometric not in _PHOTOMETRICS:
            bad(f"photometric must be one of {_PHOTOMETRICS}")
        if min(self.width, self.height, self.count) < 1:
            bad("width, height and count must be >= 1")
        if self.tiled:
            if self.blockxsize <= 0 or self.blockysize <= 0:
                bad("tile size must be positive")
            if self.blockxsize % 16 or self.blockysize % 16:
                bad("TIFF tile width/height must be multiples of 16")
        else:
            if self.blockysize < 1:
                bad("rows per strip (blockysize) must be >= 1")
            if self.layout == "cog":
                bad("a COG must be tiled; use layout='gtiff' for strips")
        if self.overview_resampling not in Resampling.__members__:
            bad(f"unknown overview_resampling {self.overview_resampling!r}")
        ovs = self.overviews
        if any(int(f) != f or f < 2 for f in ovs) or list(ovs) != sorted(set(ovs)):
            bad("overviews must be strictly increasing integer factors >= 2")
        is_float = self.dtype in FLOAT_DTYPES
        # predictor
        if self.predictor != 1 and self.compress not in PREDICTOR_CODECS:
            bad(f"predictor {self.predictor} is only applied by GDAL with {PREDICTOR_CODECS}")
        if self.predictor == 3 and not is_float:
            bad("predictor 3 (floating point) requires float32/float64")
        # codecs
        if self.compress == "jpeg" and self.dtype != "uint8":
            bad("jpeg requires uint8 (no 12-bit libjpeg in rasterio's GDAL)")
        if self.photometric == "YCBCR" and (
            self.compress != "jpeg" or self.count != 3 or self.interleave != "pixel"
        ):
            bad("photometric YCBCR requires jpeg, exactly 3 bands and pixel interleave")
        if self.photometric == "RGB" and self.count < 3:
            bad("photometric RGB requires >= 3 bands")
        if self.compress == "webp":
            if self.dtype != "uint8":
                bad("webp requires uint8")
            if self.count not in (3, 4):
                bad("webp requires 3 (RGB) or 4 (RGBA) bands")
            if self.interleave != "pixel":
                bad("webp requires pixel interleave (GDAL cannot read band-interleaved webp)")
            if self.count == 4 and not self.alpha:
                bad("4-band webp is always RGBA: set alpha=True")
        if self.lossless and self.compress != "webp":
            bad("lossless only applies to webp")
        if self.quality is not None and self.compress not in ("jpeg", "webp"):
            bad("quality only applies to jpeg/webp")
        # validity sources
        if sum([self.nodata is not None, self.mask, self.alpha]) > 1:
            bad("nodata, mask and alpha are mutually exclusive (ambiguous dataset mask)")
        if self.nodata is not None:
            if _is_nan(self.nodata):
                if not is_float:
                    bad("NaN nodata requires a float dtype")
            elif not is_float:
                info = np.iinfo(self.dtype)
                if not (float(self.nodata).is_integer() and info.min <= self.nodata <= info.max):
                    bad(f"nodata {self.nodata} not representable in {self.dtype}")
            elif self.dtype == "float32" and float(np.float32(self.nodata)) != self.nodata:
                bad(f"nodata {self.nodata} not exactly representable in float32")
        if self.alpha:
            if self.count not in (2, 4):
                bad("alpha needs 2 (gray+alpha) or 4 (RGBA) bands: GDAL ignores alpha otherwise")
            if self.count == 4 and self.photometric not in (None, "RGB"):
                bad("4-band alpha requires photometric RGB")
            if self.dtype not in ("uint8", "uint16"):
                bad("alpha is only honoured by GDAL for uint8/uint16")
        if self.sparse and len(self.block_windows()) < 2:
            bad("sparse needs at least 2 blocks")
        for f in self.overviews:
            if math.ceil(self.width / f) < 1 or math.ceil(self.height / f) < 1:
                bad("overview factor too large")

    # ------------------------------------------------------------------ equality
    def _key(self):
        return tuple(
            "nan" if (f.name == "nodata" and _is_nan(self.nodata)) else getattr(self, f.name)
            for f in fields(self)
        )

    def __eq__(self, other):
        if not isinstance(other, TiffSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    # ------------------------------------------------------------------ helpers
    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def lossy(self) -> bool:
        return self.compress == "jpeg" or (self.compress == "webp" and not self.lossless)

    @property
    def validity(self) -> str:
        """'plain' | 'nodata' | 'nan' | 'mask' | 'alpha'."""
        if self.mask:
            return "mask"
        if self.alpha:
            return "alpha"
        if self.nodata is None:
            return "plain"
        return "nan" if _is_nan(self.nodata) else "nodata"

    @property
    def transform(self) -> Affine:
        return Affine(self.res_x, 0.0, self.origin_x, 0.0, -self.res_y, self.origin_y)

    @property
    def block_shape(self) -> tuple[int, int]:
        """(rows, cols) of one block as GDAL reports it."""
        if self.tiled:
            return (self.blockysize, self.blockxsize)
        return (min(self.blockysize, self.height), self.width)

    def block_windows(self) -> list[Window]:
        by, bx = self.block_shape
        out = []
        for r in range(0, self.height, by):
            for c in range(0, self.width, bx):
                out.append(Window(c, r, min(bx, self.width - c), min(by, self.height - r)))
        return out

    def sparse_windows(self) -> list[Window]:
        """Blocks left unwritten for sparse specs: middle block row + last block of row 0."""
        if not self.sparse:
            return []
        by, bx = self.block_shape
        nty, ntx = -(-self.height // by), -(-self.width // bx)
        chosen = set()
        if nty >= 2:
            chosen |= {(nty // 2, c) for c in range(ntx)}
        if ntx >= 2:
            chosen.add((0, ntx - 1))
        out = []
        for r, c in sorted(chosen):
            y, x = r * by, c * bx
            out.append(Window(x, y, min(bx, self.width - x), min(by, self.height - y)))
        return out

    @property
    def fill_value(self):
        """Value GDAL returns for never-written (sparse) blocks."""
        return 0 if self.nodata is None else self.nodata

    @property
    def id(self) -> str:
        d = {f.name: f.default for f in fields(TiffSpec)}
        parts = [_DTYPE_SHORT[self.dtype], self.compress]
        if self.predictor != 1:
            parts.append(f"p{self.predictor}")
        if self.interleave == "band":
            parts.append("band")
        parts.append(f"{self.width}x{self.height}x{self.count}")
        if self.tiled:
            parts.append(f"t{self.blockxsize}x{self.blockysize}")
        else:
            parts.append(f"s{self.blockysize}")
        if self.nodata is not None:
            parts.append("ndnan" if _is_nan(self.nodata) else f"nd{self.nodata:g}")
        if self.mask:
            parts.append("mask")
        if self.alpha:
            parts.append("alpha")
        if self.overviews:
            parts.append("ov" + ".".join(str(f) for f in self.overviews))
            if self.overview_resampling != "nearest":
                parts.append(self.overview_resampling)
        if self.photometric:
            parts.append(self.photometric.lower())
        if self.sparse:
            parts.append("sparse")
        if self.bigtiff:
            parts.append("bigtiff")
        if self.endian == "big":
            parts.append("be")
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        if self.lossless:
            parts.append("ll")
        if self.layout != "cog":
            parts.append(self.layout)
        extra = tuple(
            (n, getattr(self, n))
            for n in ("crs", "origin_x", "origin_y", "res_x", "res_y")
            if getattr(self, n) != d[n]
        )
        if extra:
            parts.append("h%06x" % (zlib.crc32(repr(extra).encode()) & 0xFFFFFF))
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id


# ---------------------------------------------------------------------------- pixels
class Pixels(NamedTuple):
    data: np.ndarray  # (count, height, width) in spec.dtype, exactly what is written
    mask: np.ndarray | None  # (height, width) uint8 0/255 internal mask, or None


def _seed(spec: TiffSpec) -> int:
    return zlib.crc32(spec.id.encode())


def _validity_pattern(h: int, w: int) -> np.ndarray:
    """Boolean valid-pixel pattern: bottom-left triangle and a vertical stripe are invalid."""
    yy, xx = np.mgrid[0:h, 0:w]
    xf = (xx + 0.5) / w
    yf = (yy + 0.5) / h
    invalid = (xf + (1.0 - yf)) < 0.35
    invalid |= np.abs(xf - 0.7) < max(0.03, 1.5 / w)
    return ~invalid


def _field(rng: np.random.Generator, h: int, w: int, band: int) -> np.ndarray:
    """Float field in [0, 1]: smooth + gradient + parcels + noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    s = float(max(h, w))
    xf, yf = xx / s, yy / s
    ph = rng.uniform(0, 2 * np.pi)
    v = 0.5 + 0.25 * np.sin(2 * np.pi * (1.3 + 0.4 * band) * xf + ph) * np.cos(
        2 * np.pi * 0.9 * yf + ph / 2
    )
    v += 0.15 * (xf - yf)
    for _ in range(6):  # constant-offset parcels (sharp edges, flat interiors)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        hh = rng.integers(max(1, h // 10), max(2, h // 3))
        ww = rng.integers(max(1, w // 10), max(2, w // 3))
        v[y0 : y0 + hh, x0 : x0 + ww] += rng.uniform(-0.15, 0.15)
    v += rng.normal(0.0, 0.012, size=(h, w))
    return np.clip(v, 0.0, 1.0)


def expected_pixels(spec: TiffSpec) -> Pixels:
    """The exact pixel content ``write_tiff`` stores for ``spec`` (deterministic)."""
    rng = np.random.default_rng(_seed(spec))
    h, w, dt = spec.height, spec.width, np.dtype(spec.dtype)
    lo, hi = _RANGE[spec.dtype]
    ndata = spec.count - 1 if spec.alpha else spec.count
    data = np.empty((spec.count, h, w), dtype=dt)
    for b in range(ndata):
        v = _field(rng, h, w, b)
        if spec.is_float:
            x = lo + v * (hi - lo)
            if spec.dtype == "float32":
                x = np.round(x * 1024.0) / 1024.0  # some mantissa structure for predictor 3
            else:
                x = np.round(x * 2.0**20) / 2.0**20  # 37 significant bits: beyond float32
            data[b] = x.astype(dt)
        else:
            data[b] = np.round(lo + v * (hi - lo)).astype(dt)
    if not spec.is_float and h >= 4 and w >= 10:
        info = np.iinfo(dt)
        vmax, vmin = info.max, info.min
        if spec.nodata == vmax:
            vmax -= 1
        if spec.nodata == vmin:
            vmin += 1
        data[:ndata, 2:4, 2:6] = vmax
        data[:ndata, 2:4, 6:10] = vmin

    valid = _validity_pattern(h, w)
    mask = None
    if spec.mask:
        mask = np.where(valid, 255, 0).astype(np.uint8)
    if spec.alpha:
        data[-1] = np.where(valid, np.iinfo(dt).max, 0).astype(dt)
    if spec.nodata is not None:
        yy, xx = np.mgrid[0:h, 0:w]
        r = max(2.0, 0.12 * min(h, w))
        nd = (yy - 0.3 * h) ** 2 + (xx - 0.35 * w) ** 2 < r * r
        nd[:, w // 3] = True
        nd |= rng.random((h, w)) < 0.005
        data[:, nd] = np.nan if _is_nan(spec.nodata) else spec.nodata
    for win in spec.sparse_windows():
        r0, c0 = int(win.row_off), int(win.col_off)
        data[:, r0 : r0 + int(win.height), c0 : c0 + int(win.width)] = (
            np.nan if _is_nan(spec.fill_value) else spec.fill_value
        )
    return Pixels(data, mask)


# ---------------------------------------------------------------------------- writing
def _codec_options(spec: TiffSpec) -> dict:
    co = {}
    if spec.compress != "none":
        co["compress"] = spec.compress.upper()
    if spec.predictor != 1:
        co["predictor"] = str(spec.predictor)
    if spec.compress == "jpeg" and spec.quality is not None:
        co["jpeg_quality"] = str(spec.quality)
    if spec.compress == "webp":
        if spec.quality is not None:
            co["webp_level"] = str(spec.quality)
        if spec.lossless:
            co["webp_lossless"] = "TRUE"
    return co


def _layout_options(spec: TiffSpec) -> dict:
    co = {"interleave": spec.interleave.upper()}
    if spec.tiled:
        co.update(tiled="YES", blockxsize=str(spec.blockxsize), blockysize=str(spec.blockysize))
    else:
        co.update(tiled="NO", blockysize=str(spec.blockysize))
    if spec.photometric:
        co["photometric"] = spec.photometric
    elif spec.compress == "webp" or (spec.alpha and spec.count == 4):
        co["photometric"] = "RGB"  # ALPHA=YES marks the *first* extra sample: RGB + A
    elif spec.dtype == "uint8" and spec.count in (3, 4):
        co["photometric"] = "RGB"  # what GDAL picks on its own for 3/4 Byte bands
    else:
        co["photometric"] = "MINISBLACK"
    co["alpha"] = "YES" if spec.alpha else "UNSPECIFIED"
    co["bigtiff"] = "YES" if spec.bigtiff else "NO"
    co["endianness"] = spec.endian.upper()
    if spec.sparse:
        co["sparse_ok"] = "TRUE"
    return co


def _overview_env(spec: TiffSpec) -> dict:
    env = {
        "COMPRESS_OVERVIEW": spec.compress.upper(),
        "INTERLEAVE_OVERVIEW": spec.interleave.upper(),
    }
    if spec.predictor != 1:
        env["PREDICTOR_OVERVIEW"] = str(spec.predictor)
    if spec.photometric:
        env["PHOTOMETRIC_OVERVIEW"] = spec.photometric
    if spec.compress == "jpeg" and spec.quality is not None:
        env["JPEG_QUALITY_OVERVIEW"] = str(spec.quality)
    if spec.compress == "webp":
        if spec.quality is not None:
            env["WEBP_LEVEL_OVERVIEW"] = str(spec.quality)
        if spec.lossless:
            env["WEBP_LOSSLESS_OVERVIEW"] = "TRUE"
    return env


_WRITE_ENV = dict(GDAL_TIFF_INTERNAL_MASK=True, GDAL_PAM_ENABLED=False, CPL_LOG_ERRORS=False)


def _base_profile(spec: TiffSpec) -> dict:
    return dict(
        driver="GTiff",
        width=spec.width,
        height=spec.height,
        count=spec.count,
        dtype=spec.dtype,
        crs=spec.crs,
        transform=spec.transform,
        nodata=spec.nodata,
    )


def write_tiff(path, spec: TiffSpec) -> Path:
    """Write ``spec`` to ``path`` with rasterio/GDAL; returns the path."""
    path = Path(path)
    px = expected_pixels(spec)
    resampling = Resampling[spec.overview_resampling]
    # *_OVERVIEW config only for update-mode overviews; in the COG path the temp file's
    # overviews must stay uncompressed (COPY_SRC_OVERVIEWS recompresses them with the
    # destination creation options; LERC overviews in the temp file fail to encode).
    ovr_env = _overview_env(spec) if spec.layout == "gtiff" else {}
    with rasterio.Env(**_WRITE_ENV, **ovr_env):
        if spec.layout == "gtiff":
            profile = _base_profile(spec) | _layout_options(spec) | _codec_options(spec)
            with rasterio.open(path, "w", **profile) as dst:
                if spec.sparse:
                    skip = {(w.row_off, w.col_off) for w in spec.sparse_windows()}
                    for win in spec.block_windows():
                        if (win.row_off, win.col_off) in skip:
                            continue
                        r0, c0 = int(win.row_off), int(win.col_off)
                        rows = slice(r0, r0 + int(win.height))
                        cols = slice(c0, c0 + int(win.width))
                        dst.write(px.data[:, rows, cols], window=win)
                else:
                    dst.write(px.data)
                if px.mask is not None:
                    dst.write_mask(px.mask)
            if spec.overviews:
                with rasterio.open(path, "r+") as dst:
                    dst.build_overviews(list(spec.overviews), resampling)
        else:
            lay = _layout_options(spec)
            tmp_profile = _base_profile(spec) | dict(
                interleave=lay["interleave"],
                tiled="YES",
                blockxsize=lay["blockxsize"],
                blockysize=lay["blockysize"],
                photometric="RGB" if spec.photometric == "YCBCR" else lay["photometric"],
                alpha=lay["alpha"],
            )
            with MemoryFile() as mf:
                with mf.open(**tmp_profile) as tmp:
                    tmp.write(px.data)
                    if px.mask is not None:
                        tmp.write_mask(px.mask)
                    if spec.overviews:
                        tmp.build_overviews(list(spec.overviews), resampling)
                with mf.open() as src:
                    co = lay | _codec_options(spec) | {"copy_src_overviews": "YES"}
                    rasterio.shutil.copy(src, path, driver="GTiff", **co)
    return path


def cached_tiff(spec: TiffSpec, cache_dir) -> Path:
    """Return ``cache_dir/<spec.id>.tif``, writing it first if missing (atomic rename)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"{spec.id}.tif"
    if final.exists():
        return final
    tmp = cache_dir / f".{spec.id}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.tif"
    try:
        write_tiff(tmp, spec)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


# ---------------------------------------------------------------------------- matrix
MATRIX_DTYPES = ("uint8", "int16", "uint16", "int32", "float32", "float64")
EXTRA_DTYPES = ("int8", "uint32")  # in "full" only
MATRIX_CODECS = ("none", "deflate", "lzw", "zstd", "lerc", "webp", "jpeg")

# secondary axes; lengths 4, 5, 7, 3 are pairwise coprime so cycling them with one global
# counter covers every pair of values within 4*5=20 .. 5*7=35 consecutive specs.
_OVERVIEWS = ((), (2,), (2, 4), (2, 4, 8))
_SIZES = ((300, 217), (256, 256), (191, 333), (130, 67), (517, 123))
_TILES = ((64, 32), (32, 64), (64, 64), (48, 80), (128, 128), (16, 16), (256, 64))
_COUNTS = (1, 3, 2)
_NODATA = {
    "uint8": 0,
    "int8": -128,
    "int16": -32768,
    "uint16": 65535,
    "int32": -9999,
    "uint32": 0,
    "float32": -9999.0,
    "float64": -1e30,
}


def _try_spec(**kw) -> TiffSpec | None:
    try:
        return TiffSpec(**kw)
    except ValueError:
        return None


def _validity_modes(dtype: str) -> tuple[str, ...]:
    modes = ["plain", "nodata", "mask"]
    if dtype in FLOAT_DTYPES:
        modes.append("nan")
    if dtype in ("uint8", "uint16"):
        modes.append("alpha")
    return tuple(modes)


def _base_combos(dtypes) -> list[tuple[str, str, str, int]]:
    out = []
    for codec in MATRIX_CODECS:
        for dt in dtypes:
            for il in ("pixel", "band"):
                for pred in (1, 2, 3):
                    count = 3 if codec == "webp" else 2
                    kw = dict(dtype=dt, compress=codec, interleave=il, predictor=pred, count=count)
                    if _try_spec(**kw):
                        out.append((dt, codec, il, pred))
    return out


def _full_matrix() -> list[TiffSpec]:
    combos = _base_combos(MATRIX_DTYPES + EXTRA_DTYPES)
    groups: dict[tuple[str, str], list] = {}
    for c in combos:
        groups.setdefault((c[0], c[1]), []).append(c)
    specs: list[TiffSpec] = []
    n = 0
    for (dt, codec), members in groups.items():
        modes = _validity_modes(dt)
        nvar = max(2, -(-len(modes) // len(members)))
        for v in range(nvar):
            for i, (_, _, il, pred) in enumerate(members):
                mode = modes[(i + v * len(members)) % len(modes)]
                w, h = _SIZES[n % len(_SIZES)]
                bx, by = _TILES[n % len(_TILES)]
                ovs = _OVERVIEWS[n % len(_OVERVIEWS)]
                count = _COUNTS[n % len(_COUNTS)]
                h32 = zlib.crc32(f"{dt}{codec}{il}{pred}{v}".encode())
                layout = "gtiff" if h32 % 4 == 0 else "cog"
                endian = "big" if (h32 >> 4) % 6 == 0 else "little"
                sparse = (h32 >> 8) % 9 == 0
                if codec == "webp":
                    count = 4 if mode == "alpha" else 3
                elif mode == "alpha":
                    count = {1: 2, 3: 4}.get(count, count)
                if codec in ("webp", "jpeg") and v % 2 and mode != "alpha":
                    # lossless webp / non-default quality for half of the lossy variants
                    extra = {"lossless": True} if codec == "webp" else {"quality": 90}
                else:
                    extra = {}
                kw = dict(
                    dtype=dt,
                    compress=codec,
                    interleave=il,
                    predictor=pred,
                    width=w,
                    height=h,
                    count=count,
                    blockxsize=bx,
                    blockysize=by,
                    overviews=tuple(f for f in ovs if f < min(w, h)),
                    layout=layout,
                    endian=endian,
                    sparse=sparse,
                    nodata={"nodata": _NODATA[dt], "nan": float("nan")}.get(mode),
                    mask=mode == "mask",
                    alpha=mode == "alpha",
                    **extra,
                )
                spec = _try_spec(**kw)
                if spec is None:  # e.g. sparse on a single-block image
                    spec = TiffSpec(**(kw | {"sparse": False}))
                specs.append(spec)
                n += 1
    return specs


def _features(s: TiffSpec) -> set:
    kind = "float" if s.is_float else "int"
    out = set()
    if s.compress in LOSSY_CODECS + ("lerc",) and s.validity in ("mask", "alpha", "nan"):
        out.add(("cv", s.compress, s.validity))  # codecs with their own mask handling
    return out | {
        ("dc", s.dtype, s.compress),
        ("ci", s.compress, s.interleave),
        ("dp", s.dtype, s.predictor),
        ("kv", kind, s.validity),
        ("lo", s.layout, bool(s.overviews)),
        ("tile", s.blockxsize, s.blockysize),
        ("size", s.width, s.height),
        ("count", s.count),
        ("endian", s.endian),
        ("sparse", s.sparse),
    }


def _quick_matrix(full: list[TiffSpec]) -> list[TiffSpec]:
    """Greedy set cover of ``_features`` over the main-dtype part of the full matrix."""
    pool = [s for s in full if s.dtype in MATRIX_DTYPES]
    need = set().union(*(_features(s) for s in pool))
    chosen: list[TiffSpec] = []
    while need:
        best = max(pool, key=lambda s: len(_features(s) & need))  # first max wins: stable
        chosen.append(best)
        need -= _features(best)
    return chosen


def spec_matrix(level: str = "full") -> list[TiffSpec]:
    """Reader test matrix (a covering design, not a cartesian product).

    Base combinations: every valid (dtype, codec, interleave, predictor) with dtypes
    u8 i16 u16 i32 f32 f64 (+ i8 u32 in "full"), codecs none deflate lzw zstd lerc webp jpeg,
    interleave pixel/band and predictor 1/2/3 (validity rules in the module docstring).

    "full": the base combinations are grouped by (dtype, codec); each group is emitted
    ``max(2, ceil(#modes / #members))`` times and the validity mode (plain / nodata / internal
    mask / NaN nodata for floats / alpha for u8,u16) cycles across the group's slots, so
    **every dtype x codec x validity mode** occurs and every base combination occurs >= 2x.
    Secondary axes cycle with one global counter over pairwise-coprime periods:
    overviews {(),(2,),(2,4),(2,4,8)} (4), sizes incl. odd 300x217, 191x333, 517x123, 130x67 (5),
    tiles incl. non-square 64x32, 32x64, 48x80, 256x64 (7), bands {1,3,2} (3).  Layout
    (cog 3/4, plain gtiff 1/4), big-endian (~1/6) and sparse (~1/9) are picked by a CRC hash
    of the combination.  webp uses 3 bands (4 = RGBA for alpha), alpha uses 2 or 4 bands;
    half of the jpeg/webp variants use quality 90 / lossless webp.

    "quick": greedy set cover over the main-dtype part of "full" so that every
    dtype x codec, codec x interleave, dtype x predictor, (int|float) x validity mode,
    (lerc|jpeg|webp) x (mask|alpha|NaN) where present, layout x has-overviews, tile shape,
    size, band count, endianness and sparse value occurs at least once.
    """
    full = _full_matrix()
    if level == "full":
        return full
    if level == "quick":
        return _quick_matrix(full)
    raise ValueError(f"level must be 'full' or 'quick', not {level!r}")


def special_specs() -> dict[str, TiffSpec]:
    """Named layouts a reader must handle (or refuse with a clear error).

    striped / striped_one_strip: strip layout (RowsPerStrip 16 / one strip), plain GTiff.
    planar_pred2, planar_pred3_float, pred2_float64: predictors with band interleave / floats.
    sparse (GTiff, Create mode) / sparse_cog (COPY_SRC_OVERVIEWS): empty blocks, byte count 0.
    packbits, lzma: rarer codecs.  jpeg_ycbcr: YCbCr JPEG + internal mask + overview.
    jpeg_4band: RGB + alpha JPEG (4 components).  webp_rgba: lossless RGBA WebP.
    bigtiff, big_endian (float32 + predictor 3), big_endian_int (BigTIFF + predictor 2),
    single_tile (200x150 image in one 256x256 tile), average_overviews, int8, uint32.
    """
    S = TiffSpec
    return {
        "striped": S(dtype="uint16", tiled=False, blockysize=16, layout="gtiff", predictor=2),
        "striped_one_strip": S(
            dtype="int16", width=130, height=67, tiled=False, blockysize=67, layout="gtiff"
        ),
        "planar_pred2": S(dtype="int16", count=3, interleave="band", predictor=2, compress="zstd"),
        "planar_pred3_float": S(
            dtype="float32", count=3, interleave="band", predictor=3, nodata=float("nan")
        ),
        "pred2_float64": S(dtype="float64", count=2, predictor=2, compress="lzw"),
        "sparse": S(dtype="uint16", count=2, sparse=True, nodata=0, overviews=(2,), layout="gtiff"),
        "sparse_cog": S(
            dtype="float32", sparse=True, nodata=-9999.0, overviews=(2,), compress="zstd"
        ),
        "packbits": S(dtype="uint8", count=3, compress="packbits"),
        "jpeg_ycbcr": S(
            dtype="uint8", count=3, compress="jpeg", photometric="YCBCR", mask=True, overviews=(2,)
        ),
        "jpeg_4band": S(dtype="uint8", count=4, compress="jpeg", alpha=True, photometric="RGB"),
        "webp_rgba": S(dtype="uint8", count=4, compress="webp", alpha=True, lossless=True),
        "lzma": S(dtype="int32", compress="lzma", nodata=-9999),
        "bigtiff": S(dtype="uint16", count=2, bigtiff=True, overviews=(2, 4), mask=True),
        "big_endian": S(
            dtype="float32", count=2, endian="big", predictor=3, overviews=(2,)
        ),
        "big_endian_int": S(
            dtype="uint16", endian="big", predictor=2, compress="lzw", bigtiff=True
        ),
        "single_tile": S(dtype="uint16", width=200, height=150, blockxsize=256, blockysize=256),
        "average_overviews": S(
            dtype="float32", nodata=-9999.0, overviews=(2, 4), overview_resampling="average"
        ),
        "int8": S(dtype="int8", predictor=2, nodata=-128),
        "uint32": S(dtype="uint32", compress="zstd", predictor=2),
    }


# ---------------------------------------------------------------------------- benchmark
def _value_noise_rows(grids, xs_cache, rows: np.ndarray, h: int) -> np.ndarray:
    out = np.zeros((rows.size, xs_cache[0].shape[1]), dtype=np.float32)
    for (amp, g), gx in zip(grids, xs_cache, strict=True):
        gy = g.shape[0]
        pos = rows.astype(np.float64) * (gy - 1) / max(h - 1, 1)
        i0 = np.minimum(pos.astype(np.int64), gy - 2)
        f = (pos - i0).astype(np.float32)[:, None]
        f = f * f * (3 - 2 * f)  # smoothstep
        out += amp * ((1 - f) * gx[i0] + f * gx[i0 + 1])
    return out


def write_benchmark_cog(
    path,
    size: int = 8192,
    tile: int = 512,
    dtype: str = "uint16",
    compress: str = "deflate",
    overviews=(2, 4, 8, 16),
    predictor: int | None = None,
    nodata=0,
    seed: int = 42,
) -> Path:
    """Large COG with terrain-like content (multi-octave value noise + parcels + sensor noise),
    a nodata swath edge in one corner, tiled ``tile`` x ``tile``, COG layout
    (``COPY_SRC_OVERVIEWS``).  ``predictor=None`` picks 2 for ints / 3 for floats with
    deflate/lzw/zstd.  Built block-row by block-row so memory stays ~2x the raw image.
    """
    path = Path(path)
    dt = np.dtype(dtype)
    is_float = dt.kind == "f"
    if predictor is None:
        predictor = (3 if is_float else 2) if compress in PREDICTOR_CODECS else 1
    rng = np.random.default_rng(seed)
    h = w = size
    # multi-octave value-noise grids; pre-interpolate along x once per octave
    grids = []
    cells, amp = 4, 1.0
    while cells <= max(8, size // 8):
        grids.append((amp, rng.random((cells + 1, cells + 1)).astype(np.float32)))
        cells, amp = cells * 2, amp * 0.5
    norm = sum(a for a, _ in grids)
    xs = np.arange(w, dtype=np.float64)
    xs_cache = []
    for _, g in grids:
        gxn = g.shape[1]
        pos = xs * (gxn - 1) / max(w - 1, 1)
        i0 = np.minimum(pos.astype(np.int64), gxn - 2)
        f = (pos - i0).astype(np.float32)
        f = f * f * (3 - 2 * f)
        xs_cache.append((1 - f) * g[:, i0] + f * g[:, i0 + 1])
    # parcels: random rectangles with constant offsets
    parcels = []
    for _ in range(200):
        py, px_ = rng.integers(0, h), rng.integers(0, w)
        ph, pw = rng.integers(size // 64 + 1, size // 8 + 2, size=2)
        parcels.append((py, px_, ph, pw, rng.uniform(-0.08, 0.08)))
    if is_float:
        lo, hi = (0.0, 3000.0)
    else:
        info = np.iinfo(dt)
        lo, hi = (1, min(info.max, 10000)) if info.max > 255 else (1, 254)

    profile = dict(
        driver="GTiff", width=w, height=h, count=1, dtype=dtype, crs="EPSG:32633",
        transform=Affine(10.0, 0.0, 399960.0, 0.0, -10.0, 5500020.0), nodata=nodata,
        tiled="YES", blockxsize=tile, blockysize=tile,
    )
    co = dict(
        tiled="YES", blockxsize=str(tile), blockysize=str(tile), copy_src_overviews="YES",
        num_threads="ALL_CPUS", bigtiff="IF_SAFER",
    )
    if compress != "none":
        co["compress"] = compress.upper()
    if predictor != 1:
        co["predictor"] = str(predictor)
    with rasterio.Env(GDAL_PAM_ENABLED=False, GDAL_NUM_THREADS="ALL_CPUS", GDAL_CACHEMAX=512):  # noqa: SIM117
        with MemoryFile() as mf:
            with mf.open(**profile) as tmp:
                xx = np.arange(w)
                for r0 in range(0, h, tile):
                    rows = np.arange(r0, min(h, r0 + tile))
                    v = _value_noise_rows(grids, xs_cache, rows, h) / norm
                    for py, pxx, ph, pw, off in parcels:
                        if py < rows[-1] + 1 and py + ph > r0:
                            a, b = max(py, r0) - r0, min(py + ph, rows[-1] + 1) - r0
                            v[a:b, pxx : pxx + pw] += off
                    v += rng.normal(0, 0.004, size=v.shape).astype(np.float32)
                    np.clip(v, 0, 1, out=v)
                    block = lo + v * (hi - lo)
                    if not is_float:
                        block = np.round(block)
                    block = block.astype(dt)
                    # nodata swath edge in the top-right corner
                    edge = xx[None, :] - rows[:, None] > int(w * 0.8)
                    block[edge] = nodata
                    tmp.write(block[None], window=Window(0, r0, w, rows.size))
                if overviews:
                    tmp.build_overviews(list(overviews), Resampling.average)
            with mf.open() as src:
                rasterio.shutil.copy(src, path, driver="GTiff", **co)
    return path
