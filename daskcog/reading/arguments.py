"""Checks of the entry points' values, at call time, before any I/O or graph.

A value that cannot mean what the caller wants is refused here with a typed error
naming it, never turned into another value (`resolution=0` once read full
resolution; `bands=1` was refused where rasterio's `indexes=1` works).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from georeader.errors import OptionValueError, WindowError
from georeader.io import RetryPolicy


def resolution(value: Any, where: str = "") -> float | tuple[float, float] | None:
    """A pixel size: None, a positive number, or (x, y) positive numbers."""
    if value is None:
        return None
    parts = value if isinstance(value, tuple | list) else (value,)
    if (
        len(parts) in (1, 2)
        and all(isinstance(p, numbers.Real) and not isinstance(p, bool) for p in parts)
        and all(math.isfinite(p) and p > 0 for p in parts)
    ):
        return value if not isinstance(value, list) else (value[0], value[1])
    raise WindowError(
        f"{where}resolution must be a positive pixel size (a number or (x, y)), got {value!r}"
    )


def bands(value: Any, where: str = "") -> list[int] | None:
    """1-based band numbers: None (all), one int (rasterio's `indexes=1`), or a sequence.

    The array stays (band, y, x) with one band: unlike rasterio, `bands=1` does not drop
    the band axis, so every GeoArray has the same dimensions."""
    if value is None:
        return None
    values: Sequence[Any] = [value] if isinstance(value, numbers.Integral) else value
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | range):
        raise WindowError(f"{where}bands must be an int or a sequence of ints, got {value!r}")
    out = []
    for band in values:
        if isinstance(band, bool) or not isinstance(band, numbers.Integral) or band < 1:
            raise WindowError(
                f"{where}bands are 1-based band numbers (like rasterio's indexes), got {value!r}"
            )
        out.append(int(band))
    if not out:
        raise WindowError(f"{where}bands is empty; give None for all bands")
    return out


def overview_level(value: Any, where: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise WindowError(
            f"{where}overview_level must be 0 (full resolution) or a positive int, got {value!r}"
        )
    return int(value)


def one_of(name: str, value: Any, allowed: Sequence[str], where: str = "") -> Any:
    """`value` if it is one of `allowed` (a keyword taking names: errors=, loop=)."""
    if isinstance(value, str) and value in allowed:
        return value
    raise OptionValueError(f"{where}{name} must be one of {list(allowed)}, not {value!r}")


def retry(value: Any, where: str = "") -> RetryPolicy | None:
    """A retry policy or None (georeader's default). Why at call time: `retry=3` was kept
    as it was and failed only when a read first needed a retry, in a worker."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    raise OptionValueError(
        f"{where}retry must be a daskcog.RetryPolicy (e.g. RetryPolicy(attempts=5)) or "
        f"None, not {value!r}"
    )


def batch_size(value: Any) -> int | None:
    """Scenes read at once per chunk: None (the method's own) or a whole number >= 1 (2.5
    and True were taken as they were)."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    raise OptionValueError(f"batch_size must be None or a whole number >= 1; got {value!r}")
