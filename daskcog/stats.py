"""Per-band statistics of a GeoArray in two passes over its chunks.

Pass 1 reads every chunk once and reduces it to five numbers per band (valid
count, min, max, sum, and the sum of squared deviations from the chunk's own
mean); the client merges them with Chan's parallel rule, which keeps the
standard deviation exact where a plain sum of squares would cancel. Pass 2,
now that each band's range is known, reads the chunks again and sums their
histograms (`np.histogram` with the same range in every chunk gives exactly
the histogram of the whole band).

Invalid pixels are left out: NaN, the nodata value (GDAL's rule, see
`georeader.nodata`), and the pixels GDAL's mask hides. For an array that reads a file with
a mask or alpha band (`GeoArray.fills_masked`) the chunks are read with their validity
(`cog_array.valid_reads`), so a visible pixel equal to the fill value counts and so does
the alpha band itself; for other arrays the fill value is left out where it marks missing
pixels (`fill_is_missing`). In a file with neither nodata nor a mask every pixel is data,
0 included, as GDAL's statistics count it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from georeader.geo import nodata_mask

if TYPE_CHECKING:
    import dask.array as da

    from daskcog.reading.geoarray import GeoArray

Compute = Callable[[Sequence[Any]], Sequence[Any]]
"""Computes several Dask collections together (default: `dask.compute`)."""

_N, _MIN, _MAX, _SUM, _M2 = range(5)


@dataclass(frozen=True)
class BandStats:
    """Statistics of the valid pixels of one band (None where there are none)."""

    band: Any
    """The band's name or 1-based number."""
    count: int
    """Valid pixels."""
    total: int
    """All pixels."""
    min: float | int | None
    max: float | int | None
    mean: float | None
    std: float | None
    """Population standard deviation (numpy's default, ddof=0)."""
    histogram: tuple[int, ...]
    """Pixel counts of `bins` equal bins from min to max (last bin closed)."""
    edges: tuple[float, ...]
    """The bins' edges (`bins + 1` values); empty when there are no valid pixels."""

    @property
    def valid_fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["histogram"] = list(self.histogram)
        out["edges"] = list(self.edges)
        return out


def _default_compute(collections: Sequence[Any]) -> Sequence[Any]:
    import dask

    return dask.compute(*collections)


def band_stats(
    geoarray: GeoArray,
    bins: int = 256,
    *,
    ignore_fill: bool | None = None,
    compute: Compute | None = None,
) -> list[BandStats]:
    """Min, max, mean, std, valid count and histogram of every band, ignoring invalid pixels.

    Args:
        geoarray: the (lazy) array.
        bins: number of histogram bins.
        ignore_fill: also leave out pixels equal to the fill value; None (default):
            where it marks missing pixels (`fill_is_missing`), True / False: always /
            never.
        compute: computes a list of Dask collections together, e.g. with a
            progress bar or on a chosen scheduler; default `dask.compute`.
    """
    return band_stats_many([geoarray], bins, ignore_fill=ignore_fill, compute=compute)[0]


def band_stats_many(
    geoarrays: Sequence[GeoArray],
    bins: int = 256,
    *,
    ignore_fill: bool | None = None,
    compute: Compute | None = None,
) -> list[list[BandStats]]:
    """`band_stats` of several arrays, in the same two passes (two computes in all)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    compute = compute or _default_compute
    inputs = [_input(ga, ignore_fill) for ga in geoarrays]
    partials = compute([_moments_graph(data, rule) for data, rule in inputs])
    moments = [_merge_moments(np.asarray(p)) for p in partials]
    ranges = [[(m[_MIN], m[_MAX]) if m[_N] > 0 else (0.0, 1.0) for m in ms] for ms in moments]
    histograms = compute(
        [
            _histogram_graph(data, rule, rs, bins)
            for (data, rule), rs in zip(inputs, ranges, strict=True)
        ]
    )
    return [
        _assemble(ga, ms, rs, np.asarray(counts), bins)
        for ga, ms, rs, counts in zip(geoarrays, moments, ranges, histograms, strict=True)
    ]


def _assemble(
    geoarray: GeoArray,
    moments: np.ndarray,
    ranges: list[tuple[float, float]],
    counts: np.ndarray,
    bins: int,
) -> list[BandStats]:
    total = geoarray.height * geoarray.width
    dtype = geoarray.dtype
    names = geoarray.bands
    out = []
    for index, (m, (lo, hi)) in enumerate(zip(moments, ranges, strict=True)):
        name = names[index] if index < len(names) else index + 1
        n = int(m[_N])
        if n == 0:
            out.append(BandStats(name, 0, total, None, None, None, None, (0,) * bins, ()))
            continue
        edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=(lo, hi))
        out.append(
            BandStats(
                band=name,
                count=n,
                total=total,
                min=_as_value(lo, dtype),
                max=_as_value(hi, dtype),
                mean=float(m[_SUM] / n),
                std=float(math.sqrt(max(m[_M2], 0.0) / n)),
                histogram=tuple(int(c) for c in counts[index]),
                edges=tuple(float(e) for e in edges),
            )
        )
    return out


def _as_value(value: float, dtype: np.dtype) -> float | int:
    return int(value) if np.dtype(dtype).kind in "iub" else float(value)


def _input(geoarray: GeoArray, ignore_fill: bool | None) -> tuple[da.Array, _Invalid]:
    """The chunks the statistics read, and what makes their pixels invalid."""
    dtype, nodata = np.dtype(geoarray.dtype), geoarray.nodata
    if ignore_fill is None and geoarray.fills_masked:
        from daskcog.reading.cog_array import valid_reads

        return valid_reads(geoarray.source, geoarray.data.chunks), _Invalid(dtype, nodata, None)
    leave_out = fill_is_missing(geoarray) if ignore_fill is None else ignore_fill
    fill = geoarray.fill_value_default if leave_out else None
    return geoarray.data, _Invalid(dtype, nodata, fill)


def fill_is_missing(geoarray: GeoArray) -> bool:
    """Whether pixels equal to the array's fill value are missing ones, for an array not
    read with its validity: it states a nodata (a file's, whose hidden pixels read as the
    fill, or a mosaic's pixels no scene covers). Why not always: in a file with neither
    nodata nor a mask the fill value (0) marks nothing, and leaving it out dropped real
    zeros from the statistics (a HiRISE image: 18 % of its pixels; GDAL counts them)."""
    return geoarray.nodata is not None


@dataclass(frozen=True)
class _Invalid:
    """What makes a pixel invalid: NaN, nodata, the fill value."""

    dtype: np.dtype
    nodata: float | None
    fill: float | int | None

    def split(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid): a masked chunk (`valid_reads`) brings its own validity."""
        if isinstance(block, np.ma.MaskedArray):
            values = np.ma.getdata(block)
            return values, self.valid(values) & ~np.ma.getmaskarray(block)
        return block, self.valid(block)

    def valid(self, block: np.ndarray) -> np.ndarray:
        valid = np.ones(block.shape, dtype=bool)
        if block.dtype.kind == "f":
            valid &= ~np.isnan(block)
        for value in {v for v in (self.nodata, self.fill) if v is not None}:
            hit = nodata_mask(block, float(value))
            if hit is not None:
                valid &= ~hit
        return valid


# -- pass 1: count, min, max, sum, M2 per chunk and band ------------------------
def _band_values(block: np.ndarray, valid: np.ndarray, band: int) -> np.ndarray:
    """The valid values of one band, without a copy when all are valid."""
    return block[band].ravel() if valid[band].all() else block[band][valid[band]]


def _chunk_moments(block: np.ndarray, invalid: _Invalid) -> np.ndarray:
    block, valid = invalid.split(block)
    out = np.zeros((block.shape[0], 1, 1, 5), dtype=np.float64)
    for b in range(block.shape[0]):
        values = _band_values(block, valid, b)
        n = values.size
        if n == 0:
            out[b, 0, 0] = (0, np.inf, -np.inf, 0.0, 0.0)
            continue
        total = float(np.add.reduce(values, dtype=np.float64))
        deviations = values.astype(np.float64)
        deviations -= total / n
        out[b, 0, 0] = (n, values.min(), values.max(), total, float(np.dot(deviations, deviations)))
    return out


def _per_chunk(
    func: Any, data: da.Array, *args: Any, width: int, dtype: Any, token: str
) -> da.Array:
    """`func` on each (band, y, x) chunk -> (bands, 1, 1, width) per chunk: one small task each."""
    import dask.array as da

    chunks = (data.chunks[0], (1,) * len(data.chunks[1]), (1,) * len(data.chunks[2]), (width,))
    return da.map_blocks(
        func, data, *args, new_axis=[3], chunks=chunks, dtype=dtype,
        meta=np.empty((0, 0, 0, 0), dtype=dtype), token=token,
    )


def _moments_graph(data: da.Array, invalid: _Invalid) -> da.Array:
    return _per_chunk(
        _chunk_moments, data, invalid, width=5, dtype=np.float64, token="daskcog-stats-moments"
    )


def _merge_moments(partials: np.ndarray) -> np.ndarray:
    """(bands, ny, nx, 5) chunk moments -> (bands, 5) band moments (Chan et al.)."""
    bands = partials.shape[0]
    flat = partials.reshape(bands, -1, 5)
    out = np.zeros((bands, 5), dtype=np.float64)
    for b in range(bands):
        rows = flat[b][flat[b][:, _N] > 0]
        if rows.size == 0:
            out[b] = (0, np.nan, np.nan, 0.0, 0.0)
            continue
        n = rows[:, _N]
        total_n = n.sum()
        total = rows[:, _SUM].sum()
        mean = total / total_n
        chunk_means = rows[:, _SUM] / n
        m2 = rows[:, _M2].sum() + (n * np.square(chunk_means - mean)).sum()
        out[b] = (total_n, rows[:, _MIN].min(), rows[:, _MAX].max(), total, m2)
    return out


# -- pass 2: histograms with the known ranges ------------------------------------
_MAX_INTEGER_SPAN = 1 << 20


def _histogram(values: np.ndarray, bins: int, value_range: tuple[float, float]) -> np.ndarray:
    """`np.histogram(values, bins, range=value_range)[0]`, faster for integers.

    Integers are counted per distinct value first (`bincount`), then those
    values are binned by `np.histogram` itself, weighted by their counts: the
    same bin for every value, so exactly the same counts.
    """
    lo, hi = value_range
    if values.dtype.kind in "iu" and hi - lo < _MAX_INTEGER_SPAN and lo <= values.min():
        low = int(lo)
        per_value = np.bincount(
            (values.astype(np.int64) - low).ravel(), minlength=int(hi) - low + 1
        )
        distinct = np.arange(low, low + per_value.size).astype(values.dtype)
        counts, _ = np.histogram(distinct, bins=bins, range=value_range, weights=per_value)
        return np.rint(counts).astype(np.int64)
    counts, _ = np.histogram(values, bins=bins, range=value_range)
    return counts


def _chunk_histogram(
    block: np.ndarray, invalid: _Invalid, ranges: tuple[tuple[float, float], ...], bins: int
) -> np.ndarray:
    block, valid = invalid.split(block)
    out = np.zeros((block.shape[0], 1, 1, bins), dtype=np.int64)
    for b in range(block.shape[0]):
        values = _band_values(block, valid, b)
        if values.size:
            out[b, 0, 0] = _histogram(values, bins, ranges[b])
    return out


def _histogram_graph(
    data: da.Array, invalid: _Invalid, ranges: list[tuple[float, float]], bins: int
) -> da.Array:
    """(bands, bins) histogram counts; band chunks each get their own ranges."""
    import dask.array as da

    parts = []
    start = 0
    for size in data.chunks[0]:
        counts = _per_chunk(
            _chunk_histogram, data[start : start + size], invalid,
            tuple(ranges[start : start + size]), bins,
            width=bins, dtype=np.int64, token="daskcog-stats-histogram",
        )
        parts.append(counts.sum(axis=(1, 2)))
        start += size
    return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
