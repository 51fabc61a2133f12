"""Which pixels are nodata, by GDAL's rule (so reads match rasterio's masks).

GDAL compares floating-point pixels with the nodata value approximately
(`ARE_REAL_EQUAL`: |a - b| < 2 * FLT_EPSILON * |a + b|), so a float64 pixel of
-1.2676506002282294e+30 is nodata when the tag says -1.2676506e+30 (seen in a
real file). A NaN nodata value matches NaN pixels. Integers compare exactly.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = float(np.finfo(np.float32).eps)


class NodataOutOfRangeWarning(UserWarning):
    """The nodata value cannot occur in the band's type (-10000 on uint8, NaN on uint16).

    GDAL reports such a value and masks nothing; georeader does the same, and fills
    outside pixels with 0 instead (a fill value must fit the type)."""


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Boolean array, True where a pixel is nodata; None when nothing can be."""
    if nodata is None or not fits_dtype(nodata, values.dtype):
        return None  # GDAL masks nothing when the value cannot occur in the band's type
    if np.issubdtype(values.dtype, np.complexfloating):
        values = values.real  # GDAL compares a complex pixel's real part with nodata
    if np.issubdtype(values.dtype, np.floating):
        if math.isnan(nodata):
            return np.isnan(values)
        with np.errstate(over="ignore", invalid="ignore"):
            return (values == nodata) | (
                np.abs(values - nodata) < _EPS * np.abs(values + nodata) * 2
            )
    return values == int(nodata)


def fits_dtype(value: float | int, dtype: np.dtype) -> bool:
    """True when `dtype` holds `value` exactly (any number fits a float dtype)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
        if not math.isfinite(value):
            return True
        return abs(value) <= float(np.finfo(dtype).max)
    try:
        if math.isnan(value) or float(value) != int(value):
            return False
        info = np.iinfo(dtype)
        return bool(info.min <= int(value) <= info.max)
    except (TypeError, ValueError, OverflowError):
        return False


def default_fill(nodata: float | None, dtype: np.dtype | None = None) -> float | int:
    """Fill value for invalid or outside pixels: the nodata value, else 0 (GDAL's choice);
    also 0 when the nodata value cannot occur in `dtype` (GDAL then masks nothing)."""
    if nodata is None or (dtype is not None and not fits_dtype(nodata, dtype)):
        return 0
    return nodata


def same_value(a: float | int, b: float | int | None) -> bool:
    """Equality that treats NaN as equal to NaN."""
    if b is None:
        return False
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


def check_fill(fill: float | int, dtype: np.dtype, url: str = "") -> float | int:
    """`fill` if the dtype holds it exactly, else a WindowError (never a silent truncation)."""
    from georeader.errors import WindowError

    dtype = np.dtype(dtype)
    if not fits_dtype(fill, dtype):
        raise WindowError(
            f"{url}: fill value {fill!r} does not fit {dtype}; pass fill_value= with a value "
            f"{dtype} can hold"
        )
    return fill
