"""The guard: decide at open how each file can be read exactly, or refuse it.

async-geotiff 0.5.1 / async-tiff 0.7.2 read most COGs exactly, but some layouts
come back wrong or fail (../shared/notes/dependencies.md). Every IFD we will
read is classified here, from header tags only (no pixel I/O):

| layout                                       | route                                          |
|----------------------------------------------|------------------------------------------------|
| tiled, none/deflate/lzw/zstd/lzma/packbits,  | native: async-tiff fetch, imagecodecs decode   |
|   any interleave or predictor                |   (planar predictor done per band)             |
| tiled JPEG (not YCbCr), e.g. 4-band          | native, imagecodecs' libjpeg-turbo             |
| tiled LERC (+deflate/zstd), any interleave   | native, imagecodecs, masks handled like        |
|                                              |   libtiff (NaN / alpha)                        |
| tiled YCbCr JPEG, WebP (pixel interleaved)   | native, async-tiff's Rust decoders             |
|                                              |   (YCbCr JPEG: a few DN from GDAL)             |
| sparse tiles (offset 0, byte count 0)        | native, filled with nodata (or 0) like GDAL    |
| striped, odd bit depths, other codecs,       | rasterio (GDAL) in a worker thread, through    |
|   planar WebP/JPEG with a predictor          |   obstore ranged reads                         |
| complex samples, overviews in SubIFDs        | rasterio (GDAL)                                |
| GCPs only                                    | refused at open: NoGeoreferenceError           |

The verdict is a value (`Layout`) that `daskcog info` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from georeader.read import decode

NATIVE = "native"
RASTERIO = "rasterio"

_DTYPES = {
    (1, 8): "uint8", (1, 16): "uint16", (1, 32): "uint32", (1, 64): "uint64",
    (2, 8): "int8", (2, 16): "int16", (2, 32): "int32", (2, 64): "int64",
    (3, 32): "float32", (3, 64): "float64",
}


_COMPLEX = {
    (5, 32): "complex64", (5, 64): "complex128", (6, 64): "complex64", (6, 128): "complex128",
}
"""GDAL's CInt16 / CInt32 have no numpy type: rasterio reads them as complex64 / complex128."""


def gdal_dtype(ifd: Any) -> np.dtype | None:
    """The numpy type rasterio reads an IFD's samples as, when known from the tags alone."""
    formats = {int(f) for f in ifd.sample_format}
    bits = set(ifd.bits_per_sample)
    if len(formats) != 1 or len(bits) != 1:
        return None
    key = (formats.pop(), bits.pop())
    name = _DTYPES.get(key) or _COMPLEX.get(key)
    return None if name is None else np.dtype(name)


_PLAIN_PHOTOMETRIC = frozenset({0, 1, 2, 3, 6})
"""MinIsWhite, MinIsBlack, RGB, Palette, YCbCr: GDAL gives one band per sample, raw."""


def plain_band_model(ifd: Any) -> bool:
    """True when GDAL reads one band per sample, values as stored; False for photometrics GDAL
    converts or regroups (CIELab / ICCLab / ITULab, LogL / LogLuv, CMYK with extra samples),
    which are then read through GDAL with GDAL's band count."""
    photometric = int(ifd.photometric_interpretation)
    if photometric == 5:  # separated (CMYK): plain with exactly 4 inks
        return int(ifd.samples_per_pixel) == 4
    return photometric in _PLAIN_PHOTOMETRIC


@dataclass(frozen=True)
class Layout:
    """How a file is read: `route` and the reasons that chose it."""

    route: str
    reasons: tuple[str, ...] = field(default=())

    @property
    def exact(self) -> bool:
        """False only where the decoders themselves differ (YCbCr JPEG)."""
        return not any("YCbCr JPEG" in r for r in self.reasons)

    def describe(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "a plain tiled layout"
        return f"{self.route} route ({why})"


def tile_format(ifd: Any, byteorder: str) -> decode.TileFormat | None:
    """The decode recipe of an IFD, or None when it has no uniform numpy dtype."""
    formats = {int(f) for f in ifd.sample_format}
    bits = set(ifd.bits_per_sample)
    if len(formats) != 1 or len(bits) != 1:
        return None
    name = _DTYPES.get((formats.pop(), bits.pop()))
    if name is None:
        return None
    lerc = list(ifd.lerc_parameters or [])
    extra = list(ifd.extra_samples or [])
    return decode.TileFormat(
        compression=int(ifd.compression),
        predictor=int(ifd.predictor or 1),
        planar=int(ifd.planar_configuration),
        samples=int(ifd.samples_per_pixel),
        dtype=np.dtype(name),
        byteorder=byteorder,
        tile_width=int(ifd.tile_width or 0),
        tile_height=int(ifd.tile_height or 0),
        photometric=int(ifd.photometric_interpretation),
        jpeg_tables=ifd.jpeg_tables,
        lerc_add_compression=int(lerc[1]) if len(lerc) > 1 else 0,
        alpha_last=bool(extra) and int(extra[-1]) == 2,
    )


def classify_ifd(ifd: Any, byteorder: str) -> tuple[str, list[str], decode.TileFormat | None]:
    """Route and reasons for one data IFD."""
    reasons: list[str] = []
    if {int(f) for f in ifd.sample_format} & {5, 6}:
        return RASTERIO, ["complex samples: read through GDAL"], None
    if ifd.tile_width is None or ifd.tile_offsets is None:
        return RASTERIO, ["striped (not tiled): async-tiff cannot read strips"], None
    if not plain_band_model(ifd):
        name = f"photometric {int(ifd.photometric_interpretation)}"
        samples = int(ifd.samples_per_pixel)
        return RASTERIO, [f"{name} with {samples} samples: GDAL's band model"], None
    fmt = tile_format(ifd, byteorder)
    if fmt is None:
        return RASTERIO, [f"bits per sample {ifd.bits_per_sample} have no numpy dtype"], None
    name = decode.COMPRESSION_NAMES.get(fmt.compression, f"compression {fmt.compression}")
    if not fmt.supported:
        return RASTERIO, [f"{name} is not decoded by async-tiff or imagecodecs here"], fmt
    if fmt.decoder == "async-tiff" and fmt.planar == decode.PLANAR and fmt.predictor != 1:
        return RASTERIO, [f"band-interleaved {name} with a predictor"], fmt
    if fmt.compression == decode.JPEG and fmt.photometric == decode.YCBCR:
        reasons.append("YCbCr JPEG: decoders differ from GDAL by a few DN")
    if fmt.planar == decode.PLANAR and fmt.predictor != 1:
        reasons.append(
            "band-interleaved with a predictor: un-predicted per band (async-tiff gets it wrong)"
        )
    counts = ifd.tile_byte_counts or []
    if counts and min(counts) == 0:
        reasons.append("sparse tiles: read as nodata (or 0), like GDAL")
    return NATIVE, reasons, fmt


def combine(verdicts: list[tuple[str, list[str]]]) -> Layout:
    """One Layout for a file from its IFDs' verdicts (any rasterio IFD -> rasterio)."""
    route = RASTERIO if any(r == RASTERIO for r, _ in verdicts) else NATIVE
    reasons: list[str] = []
    for _, rs in verdicts:
        reasons.extend(r for r in rs if r not in reasons)
    return Layout(route=route, reasons=tuple(reasons))
