"""Order-statistic mosaic methods (median, quantiles) against numpy, and the Quantile value.

The chunk a method returns must equal numpy's nanmedian / nanquantile of the fed valid values
taken as float64 (then cast to the method's output dtype), bit for bit, for every value dtype,
with scenes fed whole or as the part of the chunk they reach."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from dask.base import tokenize

import daskcog
from daskcog.mosaics.methods import (
    MedianMethod,
    MosaicMethodError,
    Quantile,
    get_method,
    normalise_method,
)

DTYPES = ["uint8", "int8", "uint16", "int16", "int32", "uint32", "float32", "float64"]
METHODS = ["median", "p25", "p50", "p90", "p0", "p100", Quantile(1 / 3), Quantile(0.1)]


def _values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return (rng.normal(size=shape) * 1e3).astype(dtype)
    info = np.iinfo(dtype)  # the whole range: the dtype's maximum is a valid value too
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _feed_and_reference(method, dtype: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    shape = (2, 29, 37)
    cls = get_method(method)
    m = cls(shape, np.dtype(dtype), 0)
    layers = np.full((n, *shape), np.nan)
    for k in range(n):
        v = _values(rng, dtype, shape)
        valid = rng.random(shape) < 0.6
        if k % 2:  # a scene reaching only part of the chunk
            r0, r1 = sorted(int(x) for x in rng.integers(0, shape[1], 2))
            c0, c1 = sorted(int(x) for x in rng.integers(0, shape[2], 2))
            rows, cols = slice(r0, r1 + 1), slice(c0, c1 + 1)
            m.feed_part(v[:, rows, cols], valid[:, rows, cols], rows, cols)
            part = np.zeros(shape, bool)
            part[:, rows, cols] = valid[:, rows, cols]
            valid = part
        else:
            m.feed(v, valid)
        layers[k][valid] = v[valid].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        if cls.name == "median":
            ref = np.nanmedian(layers, axis=0)
        else:
            ref = np.nanquantile(layers, cls.q, axis=0)
    out = cls.output_dtype(np.dtype(dtype))
    return m, np.where(np.isnan(ref), 0, ref).astype(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS, ids=str)
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_order_statistics_equal_numpy_bit_for_bit(dtype: str, method, n: int) -> None:
    m, expected = _feed_and_reference(method, dtype, n, seed=n)
    got = m.result()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_median_holds_values_in_their_own_dtype() -> None:
    """uint16 scenes are held as uint16 parts (2 bytes a value), not float64 chunk layers."""
    shape = (1, 100, 100)
    m = MedianMethod(shape, np.dtype("uint16"), 0)
    m.feed(np.ones(shape, np.uint16), np.ones(shape, bool))
    m.feed_part(np.ones((1, 10, 20), np.uint16), np.ones((1, 10, 20), bool),
                slice(0, 10), slice(0, 20))
    assert m.held_bytes == (100 * 100 + 10 * 20) * 2
    m.feed(np.ones(shape, np.uint16), np.zeros(shape, bool))  # nothing valid: nothing held
    assert m.held_bytes == (100 * 100 + 10 * 20) * 2


def test_strips_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    m, expected = _feed_and_reference("median", "uint16", 7, seed=3)
    monkeypatch.setattr(type(m), "STRIP_BYTES", 1)  # one row at a time
    np.testing.assert_array_equal(m.result(), expected)


def test_quantile_is_a_frozen_hashable_value_with_a_deterministic_token() -> None:
    q = daskcog.Quantile(0.25)
    assert q == Quantile(0.25) and hash(q) == hash(Quantile(0.25))
    assert pickle.loads(pickle.dumps(q)) == q
    assert tokenize(q) == tokenize(Quantile(0.25)) != tokenize(Quantile(0.75))
    with pytest.raises(AttributeError):
        q.q = 0.5  # type: ignore[misc]
    assert q.name == "p25"
    assert normalise_method("p25") == q == normalise_method("P25")
    assert normalise_method("p2.5") == Quantile(0.025)
    assert get_method("p25") is get_method(q)
    assert get_method(q).q == 0.25


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_quantile_out_of_range_is_a_value_error(bad: float) -> None:
    with pytest.raises(MosaicMethodError, match=r"\[0, 1\]"):
        Quantile(bad)


@pytest.mark.parametrize("bad", ["0.25", None, True])
def test_quantile_of_a_non_number_is_a_type_error(bad) -> None:
    with pytest.raises(TypeError, match="number"):
        Quantile(bad)


@pytest.mark.parametrize("bad", ["p101", "p", "pp25", "medain", "q25"])
def test_unknown_method_names_are_refused(bad: str) -> None:
    with pytest.raises(MosaicMethodError, match="percentile"):
        get_method(bad)
