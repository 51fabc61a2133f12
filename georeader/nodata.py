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


def nodata_mask(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Boolean array, True where a pixel is nodata; None when nothing can be."""
    if nodata is None:
        return None
    if np.issubdtype(values.dtype, np.floating):
        if math.isnan(nodata):
            return np.isnan(values)
        with np.errstate(over="ignore", invalid="ignore"):
            return (values == nodata) | (
                np.abs(values - nodata) < _EPS * np.abs(values + nodata) * 2
            )
    if not fits_dtype(nodata, values.dtype):
        return None
    return values == int(nodata)


def fits_dtype(value: float | int, dtype: np.dtype) -> bool:
    """True when `dtype` holds `value` exactly (any number fits a float dtype)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return True
    try:
        if math.isnan(value) or float(value) != int(value):
            return False
        info = np.iinfo(dtype)
        return bool(info.min <= int(value) <= info.max)
    except (TypeError, ValueError, OverflowError):
        return False


def default_fill(nodata: float | None) -> float | int:
    """Fill value for invalid or outside pixels: the nodata value, else 0 (GDAL's choice)."""
    return 0 if nodata is None else nodata


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
