"""Refuse inconsistent headers once, at open, instead of failing (or reading nonsense) later.

A header is trusted only when its sizes agree: positive image and tile sizes,
as many tile (or strip) offsets as byte counts as the grid needs, and a
finite, invertible geotransform. Seen without these checks: a header claiming
2^31-1 x 2^31-1 pixels with four tile offsets opened and then failed with a
bare `IndexError`; ImageWidth 0 gave empty arrays; ModelPixelScale (0, 0, 0)
gave a degenerate transform with a CRS.
"""

from __future__ import annotations

import math
from typing import Any

from affine import Affine

from georeader.errors import InvalidHeaderError
from georeader.read.decode_bounds import max_stream_bytes


def check_level(url: str, index: int, ifd: Any, transform: Affine | None) -> None:
    """Raise `InvalidHeaderError` naming `url` when level `index`'s header disagrees with itself."""
    where = f"{url}: level {index}"
    width, height = int(ifd.image_width or 0), int(ifd.image_height or 0)
    if width <= 0 or height <= 0:
        raise InvalidHeaderError(
            f"{where}: image size {width} x {height} is empty; the header is corrupt"
        )
    samples = int(ifd.samples_per_pixel or 0)
    planar = int(ifd.planar_configuration or 1)
    bits = [int(b) for b in (ifd.bits_per_sample or [])]
    if samples <= 0 or not bits or min(bits) <= 0 or max(bits) > 128:
        raise InvalidHeaderError(
            f"{where}: {samples} samples of {bits} bits per pixel; the header is corrupt"
        )
    if planar not in (1, 2):
        raise InvalidHeaderError(
            f"{where}: PlanarConfiguration {planar} is not 1 or 2; the header is corrupt"
        )
    predictor = int(ifd.predictor or 1)
    if predictor not in (1, 2, 3):
        raise InvalidHeaderError(
            f"{where}: Predictor {predictor} is not 1, 2 or 3; the header is corrupt"
        )
    planes = samples if planar == 2 else 1
    if ifd.tile_width is not None or ifd.tile_offsets is not None:
        tw, th = int(ifd.tile_width or 0), int(ifd.tile_height or 0)
        if tw <= 0 or th <= 0:
            raise InvalidHeaderError(
                f"{where}: tile size {tw} x {th} is empty; the header is corrupt"
            )
        expected = math.ceil(width / tw) * math.ceil(height / th) * planes
        offsets, counts = ifd.tile_offsets or [], ifd.tile_byte_counts or []
        what = "tile"
    else:
        rows = int(ifd.rows_per_strip or height)
        if rows <= 0:
            raise InvalidHeaderError(f"{where}: RowsPerStrip {rows}; the header is corrupt")
        expected = math.ceil(height / min(rows, height)) * planes
        offsets, counts = ifd.strip_offsets or [], ifd.strip_byte_counts or []
        what = "strip"
    if not len(offsets) == len(counts) == expected:
        raise InvalidHeaderError(
            f"{where}: {width} x {height} pixels need {expected} {what}s, but the header has "
            f"{len(offsets)} offsets and {len(counts)} byte counts; the file is corrupt"
        )
    if what == "tile":
        block_pixels = int(ifd.tile_width) * int(ifd.tile_height)
    else:
        block_pixels = min(int(ifd.rows_per_strip or height), height) * width
    raw = block_pixels * (1 if planar == 2 else samples) * math.ceil(max(bits) / 8)
    largest = max(counts) if len(counts) else 0
    if largest > max_stream_bytes(raw):
        raise InvalidHeaderError(
            f"{where}: a {what} claims {largest} bytes, more than any encoding of its {raw} "
            "decoded bytes; the byte counts are corrupt"
        )
    if transform is not None:
        values = (transform.a, transform.b, transform.c, transform.d, transform.e, transform.f)
        if not all(math.isfinite(v) for v in values) or transform.determinant == 0:
            raise InvalidHeaderError(
                f"{where}: the geotransform {tuple(values)} is degenerate (zero or non-finite "
                "pixel size); the georeference tags are corrupt"
            )
