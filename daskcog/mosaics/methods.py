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

import functools
import re
from dataclasses import dataclass
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
        self._left = int(np.prod(self.shape))
        """Pixels not filled yet: `is_done` at 0, no scan of the chunk's mask per scene."""
        self._take: np.ndarray | None = None
        """Scratch mask of the chunk's shape, made at the first feed and reused by every
        scene (issue 21: one fresh whole-part mask per scene cost page faults)."""

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        filled = self._filled[key]  # views: the updates land in the chunk's arrays
        if self._take is None:
            self._take = np.empty(self.shape, dtype=bool)
        take = np.logical_not(filled, out=self._take[key])
        take &= valid  # valid and not filled yet
        np.copyto(self._out[key], values, where=take, casting="unsafe")
        filled |= valid  # the same as filled | take
        self._left -= int(np.count_nonzero(take))

    def feed_by_fill(self, values: np.ndarray, fill: int, rows: slice, cols: slice) -> None:
        """`feed_part` of integer values whose valid pixels are those not equal to `fill`,
        the mask worked out in the scratch mask: valid and not filled yet is
        `(values != fill) > filled` (for booleans, a > b is a and not b); filled | valid
        equals filled | take. No valid mask of the scene's own, one pass less."""
        key = (slice(None), rows, cols)
        filled = self._filled[key]
        if self._take is None:
            self._take = np.empty(self.shape, dtype=bool)
        take = np.not_equal(values, fill, out=self._take[key])
        np.greater(take, filled, out=take)
        np.copyto(self._out[key], values, where=take, casting="unsafe")
        filled |= take
        self._left -= int(np.count_nonzero(take))

    @property
    def is_done(self) -> bool:
        return self._left == 0

    def result(self) -> np.ndarray:
        self._take = None
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


class HoldingMethod(MosaicMethod):
    """Base of the order statistics (median, quantiles): they need every valid value of a
    pixel at once, so they hold the scenes fed, each as the part of the chunk it reaches,
    in the value dtype (no float64 copy: uint16 data holds 2 bytes per value, a quarter of
    a NaN-padded float64 layer), invalid pixels set to a value that sorts after every
    valid one (NaN for floats, the dtype's maximum for integers: a valid maximum sorts
    among them and is the same number). `result` sorts strip by strip (`STRIP_BYTES` of
    sorted values at a time) and takes each pixel's order statistics among its `count`
    valid values, computed in float64 with numpy's own formulas, so the chunk equals
    numpy's nanmedian / nanquantile of the values as float64, bit for bit.

    Memory: the values of the scenes that reach the chunk (`held_bytes`), plus one strip."""

    default_batch = 4
    """Scenes read at once per asset: they are all held anyway, so more in flight only adds
    fetched and decoded buffers (benchmarks/bench_composite.py: a peak of 1107 MiB with 16,
    885 MiB with 4, and faster)."""
    STRIP_BYTES: ClassVar[int] = 16 * 2**20

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, fill: float) -> None:
        super().__init__(shape, dtype, fill)
        self._parts: list[tuple[slice, slice, np.ndarray]] = []
        self._count = np.zeros(self.shape, dtype=np.int32)
        kind = self.dtype.kind
        self._after: Any = (
            np.nan if kind in "fc" else True if kind == "b" else np.iinfo(self.dtype).max
        )

    @classmethod
    def output_dtype(cls, dtype: np.dtype) -> np.dtype:
        return _float_dtype(dtype)

    @property
    def held_bytes(self) -> int:
        """Bytes of scene values held so far."""
        return sum(p.nbytes for _, _, p in self._parts)

    def feed(self, values: np.ndarray, valid: np.ndarray) -> None:
        self._feed_at(..., values, valid)

    def _feed_at(self, key: Any, values: np.ndarray, valid: np.ndarray) -> None:
        if key is Ellipsis:
            rows, cols = slice(0, self.shape[1]), slice(0, self.shape[2])
        else:
            _, rows, cols = key
        if not valid.any():
            return
        count = self._count[:, rows, cols]
        count += valid
        held = np.where(valid, values, np.asarray(self._after, dtype=self.dtype))
        self._parts.append((rows, cols, held.astype(self.dtype, copy=False)))

    def _statistic(self, ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
        """float64 statistic per pixel of `ordered` (sorted along axis 0, valid values
        first), where `count` (> 0) values are valid."""
        raise NotImplementedError

    def result(self) -> np.ndarray:
        out = np.full(self.shape, self.fill, dtype=self.output_dtype(self.dtype))
        if not self._parts:
            return out
        bands, height, width = self.shape
        per_row = max(1, len(self._parts) * bands * width * self.dtype.itemsize)
        step = max(1, self.STRIP_BYTES // per_row)
        for r0 in range(0, height, step):
            r1 = min(height, r0 + step)
            reaching = [
                (max(rows.start, r0), min(rows.stop, r1), rows, cols, part)
                for rows, cols, part in self._parts
                if rows.start < r1 and rows.stop > r0
            ]
            if not reaching:
                continue
            stack = np.full((len(reaching), bands, r1 - r0, width), self._after, self.dtype)
            for k, (a, b, rows, cols, part) in enumerate(reaching):
                stack[k, :, a - r0 : b - r0, cols] = part[:, a - rows.start : b - rows.start]
            stack.sort(axis=0)
            count = self._count[:, r0:r1]
            seen = count > 0
            value = self._statistic(stack, np.maximum(count, 1))
            np.copyto(out[:, r0:r1], value, where=seen, casting="unsafe")
        return out


def _take(ordered: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(ordered, index[None].astype(np.intp), axis=0)[0].astype(np.float64)


class MedianMethod(HoldingMethod):
    """Median of the valid values, equal to numpy's nanmedian of them as float64 (the mean
    of the two middle values for an even count); float like `mean`."""

    name = "median"

    def _statistic(self, ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
        high = count // 2
        low = np.where(count % 2 == 1, high, high - 1)
        # numpy's masked median: (low + high) / 2 in float64, also for an odd count
        return (_take(ordered, low) + _take(ordered, high)) / 2.0


class QuantileMethod(HoldingMethod):
    """The q-th quantile of the valid values, numpy's default ("linear") method: equal to
    numpy's nanquantile of them as float64. Made by `Quantile(q)`, which sets `q`."""

    name = "quantile"
    q: ClassVar[float] = 0.5

    def _statistic(self, ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
        # numpy's linear method, step by step: virtual index (n - 1) * q, its floor and the
        # next index (both the last when at or past it), gamma, then numpy's _lerp
        virtual = (count - 1) * np.float64(self.q)
        previous = np.floor(virtual)
        following = previous + 1
        above = virtual >= count - 1
        previous = np.where(above, count - 1, previous)
        following = np.where(above, count - 1, following)
        gamma = virtual - np.floor(virtual)
        a, b = _take(ordered, previous), _take(ordered, following)
        diff = b - a
        out = a + diff * gamma
        np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
        return out


@dataclass(frozen=True)
class Quantile:
    """A quantile as a mosaic method: `method=daskcog.Quantile(0.25)` (or the name "p25"),
    the per-pixel quantile of the valid values with numpy's default ("linear") method,
    as numpy's nanquantile. A frozen value: hashable, picklable, with a deterministic
    Dask token."""

    q: float

    def __post_init__(self) -> None:
        if isinstance(self.q, bool) or not isinstance(self.q, int | float | np.floating):
            raise TypeError(f"Quantile(q): q is a number in [0, 1], not {self.q!r}")
        q = float(self.q)
        if not 0.0 <= q <= 1.0:
            raise MosaicMethodError(
                f"Quantile(q): q must be in [0, 1] (0.25 for the 25th percentile); got {q!r}"
            )
        object.__setattr__(self, "q", q)

    @property
    def name(self) -> str:
        return f"p{self.q * 100:g}"

    def __dask_tokenize__(self) -> Any:
        return ("daskcog.Quantile", self.q)


@functools.lru_cache(maxsize=128)
def _quantile_class(q: float) -> type[QuantileMethod]:
    """The method class of one quantile (made once per q and process; the graph carries the
    `Quantile` value, never this class)."""
    return type(
        f"QuantileMethod_{Quantile(q).name}", (QuantileMethod,),
        {"q": q, "name": Quantile(q).name, "__module__": __name__},
    )


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


MethodLike = str | type[MosaicMethod] | Quantile
"""What `method=` takes: a name, a MosaicMethod subclass, or a `Quantile`."""

_PERCENTILE = re.compile(r"p(\d+(?:\.\d*)?)")


def normalise_method(method: MethodLike) -> str | type[MosaicMethod] | Quantile:
    """The value a spec carries for `method=`: a built-in's name, the subclass, or a
    `Quantile` ("p25" becomes Quantile(0.25)); MosaicMethodError for anything else."""
    if isinstance(method, Quantile) or (
        isinstance(method, type) and issubclass(method, MosaicMethod)
    ):
        return method
    if isinstance(method, str):
        name = method.lower()
        if name in METHODS:
            return name
        match = _PERCENTILE.fullmatch(name)
        if match and float(match.group(1)) <= 100:
            return Quantile(float(match.group(1)) / 100)
    raise MosaicMethodError(
        f"unknown mosaic method {method!r}; use one of {sorted(METHODS)}, a percentile "
        "such as 'p25' or daskcog.Quantile(0.25), or a MosaicMethod subclass"
    )


def get_method(method: MethodLike) -> type[MosaicMethod]:
    """The method class for a name ('first', 'last', 'min', 'max', 'mean', 'median',
    'count', 'p25'), a `Quantile` or a MosaicMethod subclass."""
    found = normalise_method(method)
    if isinstance(found, Quantile):
        return _quantile_class(found.q)
    if isinstance(found, str):
        return METHODS[found]
    return found
