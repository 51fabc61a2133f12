"""Mosaic methods: small strategy objects over pure numpy kernels, with early exit.

A chunk task creates one method object per output chunk, then feeds it the
scenes overlapping the chunk in priority order (`reverse=True` methods get them
in reverse order), each as `(values, valid)`: values (band, y, x) already on
the target grid in the mosaic's value dtype, and a boolean array of the same
shape, True where the pixel is valid (not nodata, not masked, not NaN, inside
the scene). A scene that reaches only part of the chunk comes through `feed_part`
instead (the built-in methods update that part in place; the default widens it and
calls `feed`, so a custom method needs only `feed`). After each feed the task asks
`is_done`; `first` and `last` are done once every pixel is filled, so the remaining
scenes are never read.

`result()` returns the chunk in `output_dtype(value dtype)`, with `fill` where
no scene was valid (count: 0).

Custom methods: subclass `MosaicMethod` in an importable module and pass the
class as `method=`.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from georeader.errors import GeoreaderError


class MosaicMethodError(GeoreaderError, ValueError):
    """An unknown mosaic method name."""


class MosaicMethod:
    """Base strategy: accumulate fed scenes into one chunk."""

    name: ClassVar[str] = "base"
    reverse: ClassVar[bool] = False
    """Feed scenes from the lowest priority to the highest."""
    default_batch: ClassVar[int] = 8
    """Scenes read concurrently between two `is_done` checks."""
    can_finish: ClassVar[bool] = False
    """`is_done` may become True before every scene is fed (early exit)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.fill = fill

    @classmethod
    def output_dtype(cls, dtype: np.dtype) -> np.dtype:
        return np.dtype(dtype)

    @classmethod
    def output_fill(cls, fill: float) -> float | int:
        return fill

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        raise NotImplementedError

    def feed_part(self, values: np.ndarray, valid: np.ndarray, rows: slice, cols: slice) -> None:
        """Feed a scene that reaches only `[:, rows, cols]` of the chunk (invalid elsewhere).

        A scene covers a fraction of most chunks it touches: the built-in methods update
        that part in place (`_feed_at`, written beside their `feed`). Any other method,
        and a subclass that overrides `feed` alone, gets the part widened to the whole
        chunk and passed to its `feed`."""
        owner = next(k for k in type(self).__mro__ if "feed" in vars(k))
        if "_feed_at" in vars(owner):
            self._feed_at((slice(None), rows, cols), values, valid)
            return
        whole = np.full(self.shape, self.fill, dtype=values.dtype)
        mask = np.zeros(self.shape, dtype=bool)
        whole[:, rows, cols] = values
        mask[:, rows, cols] = valid
        self.feed(whole, mask)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        """`feed` on the chunk's arrays at `key` (built-in methods; see `feed_part`)."""
        raise NotImplementedError

    @property
    def is_done(self) -> bool:
        return False

    def result(self) -> np.ndarray:
        raise NotImplementedError


class FirstMethod(MosaicMethod):
    """The first valid pixel in priority order (rasterio.merge's 'first')."""

    name = "first"
    default_batch = 4
    can_finish = True

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._out = np.full(self.shape, fill, dtype=self.dtype)
        self._filled = np.zeros(self.shape, dtype=bool)
        self._done = False

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        filled = self._filled[key]  # views: the updates land in the chunk's arrays
        take = valid & ~filled
        np.copyto(self._out[key], values, where=take, casting="unsafe")
        filled |= take
        self._done = bool(self._filled.all())

    @property
    def is_done(self) -> bool:
        return self._done

    def result(self) -> np.ndarray:
        return self._out


class LastMethod(FirstMethod):
    """The last valid pixel in priority order (rasterio.merge's 'last'): the first one
    fed in reverse order, so it stops early too."""

    name = "last"
    reverse = True


class _Extreme(MosaicMethod):
    _op: ClassVar[np.ufunc]

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._out = np.full(self.shape, fill, dtype=self.dtype)
        self._seen = np.zeros(self.shape, dtype=bool)

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        out, seen = self._out[key], self._seen[key]
        type(self)._op(out, values, out=out, where=valid & seen, casting="unsafe")
        np.copyto(out, values, where=valid & ~seen, casting="unsafe")
        seen |= valid

    def result(self) -> np.ndarray:
        return self._out


class MinMethod(_Extreme):
    """The smallest valid value (rasterio.merge's 'min')."""

    name = "min"
    _op = np.minimum


class MaxMethod(_Extreme):
    """The largest valid value (rasterio.merge's 'max')."""

    name = "max"
    _op = np.maximum


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return np.result_type(np.dtype(dtype), np.float32)


class MeanMethod(MosaicMethod):
    """Mean of the valid values (float32 for <= 16-bit data, float64 otherwise)."""

    name = "mean"

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._sum = np.zeros(self.shape, dtype=np.float64)
        self._count = np.zeros(self.shape, dtype=np.int32)

    @classmethod
    def output_dtype(cls, dtype: np.dtype) -> np.dtype:
        return _float_dtype(dtype)

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        total, count = self._sum[key], self._count[key]
        np.add(total, values, out=total, where=valid, casting="unsafe")
        count += valid

    def result(self) -> np.ndarray:
        out = np.full(self.shape, self.fill, dtype=self.output_dtype(self.dtype))
        seen = self._count > 0
        np.divide(self._sum, self._count, out=self._sum, where=seen)
        np.copyto(out, self._sum, where=seen, casting="unsafe")
        return out


class MedianMethod(MosaicMethod):
    """Median of the valid values (numpy's nanmedian: mean of the two middle values for
    an even count); float like `mean`."""

    name = "median"
    default_batch = 16

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._layers: list[np.ndarray] = []

    @classmethod
    def output_dtype(cls, dtype: np.dtype) -> np.dtype:
        return _float_dtype(dtype)

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        layer = values.astype(np.float64)
        layer[~valid] = np.nan
        self._layers.append(layer)

    def result(self) -> np.ndarray:
        out = np.full(self.shape, self.fill, dtype=self.output_dtype(self.dtype))
        if not self._layers:
            return out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            median = np.nanmedian(np.stack(self._layers), axis=0)
        seen = ~np.isnan(median)
        np.copyto(out, median, where=seen, casting="unsafe")
        return out


class CountMethod(MosaicMethod):
    """How many scenes have a valid value (uint16; 0 where none)."""

    name = "count"

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._count = np.zeros(self.shape, dtype=np.uint16)

    @classmethod
    def output_dtype(cls, dtype: np.dtype) -> np.dtype:
        return np.dtype(np.uint16)

    @classmethod
    def output_fill(cls, fill: float) -> float | int:
        return 0

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        count = self._count[key]
        count += valid

    def result(self) -> np.ndarray:
        return self._count


METHODS: dict[str, type[MosaicMethod]] = {
    m.name: m
    for m in (FirstMethod, LastMethod, MinMethod, MaxMethod, MeanMethod, MedianMethod, CountMethod)
}


def get_method(method: str | type[MosaicMethod]) -> type[MosaicMethod]:
    """The method class for a name ('first', 'last', 'min', 'max', 'mean', 'median', 'count')
    or a MosaicMethod subclass."""
    if isinstance(method, type) and issubclass(method, MosaicMethod):
        return method
    found = METHODS.get(str(method).lower()) if isinstance(method, str) else None
    if found is None:
        raise MosaicMethodError(
            f"unknown mosaic method {method!r}; use one of {sorted(METHODS)} or a MosaicMethod "
            "subclass"
        )
    return found
