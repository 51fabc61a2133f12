"""GeoArray: a lazy (band, y, x) dask array with its grid (transform, CRS) and fill value.

What `daskcog.open`, `mosaic` and `stack` return. Slicing by window or bounds
stays lazy and keeps the transform right; `.compute()` gives a GeoTensor;
`.to_xarray()` a DataArray that rioxarray understands.
"""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as da
import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader import geo
from georeader.errors import BoundsOutsideError
from georeader.geo import GeoTensor, OnGrid, norm_crs

DATAARRAY_NAME = "band_data"
"""The name `to_xarray` gives: what xarray's rasterio engine and daskcog's xarray backend call
the variable of a GeoTIFF, so arrays from either merge into one Dataset under one name. Left to
xarray, the name would be the dask key (`daskcog-read-e8e5...`), which changes with the chunks."""


class GeoArray(OnGrid):
    """A dask array on a georeferenced grid."""

    def __init__(
        self,
        data: da.Array,
        *,
        transform: Affine,
        crs: Any,
        fill_value_default: float | int,
        nodata: float | None = None,
        source: Any = None,
        chunk_request: Any = "auto",
        base_transform: Affine | None = None,
        band_names: tuple[Any, ...] | None = None,
    ) -> None:
        if data.ndim != 3:
            raise ValueError(f"GeoArray data must be (band, y, x), got {data.ndim} dimensions")
        self.data = data
        self.transform = transform
        self.crs: CRS | None = norm_crs(crs)
        self.fill_value_default = fill_value_default
        self.nodata = nodata
        self._source = source
        self._chunk_request = chunk_request
        self._base_transform = base_transform
        self.band_names = band_names

    # -- metadata ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        return self.data.chunks

    @property
    def count(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    @property
    def bands(self) -> tuple[Any, ...]:
        if self.band_names is not None:
            return self.band_names
        spec = self._source
        return tuple(getattr(spec, "bands", range(1, self.count + 1)))

    @property
    def source(self) -> Any:
        """What the array reads from: the plain-values `ReadSpec` `daskcog.open` built, or None."""
        return self._source

    @property
    def fills_masked(self) -> bool:
        """Whether the fill value marks pixels GDAL's mask hides although the file states no
        nodata: the array reads a file with a mask or alpha band (`ReadSpec.masked`)."""
        return bool(getattr(self._source, "masked", False))

    def __repr__(self) -> str:
        crs = self.crs.to_string() if self.crs is not None else None
        return (
            f"GeoArray(shape={self.shape}, dtype={self.dtype}, crs={crs!r}, res={self.res}, "
            f"chunks={tuple(len(c) for c in self.chunks)} blocks, fill={self.fill_value_default})"
        )

    def _with(self, data: da.Array, transform: Affine, **changes: Any) -> GeoArray:
        kwargs: dict[str, Any] = dict(
            transform=transform, crs=self.crs, fill_value_default=self.fill_value_default,
            nodata=self.nodata, band_names=self.band_names,
        )
        kwargs.update(changes)
        return GeoArray(data, **kwargs)

    # -- lazy slicing -------------------------------------------------------
    def _named(self, exc: geo.WindowError) -> geo.WindowError:
        """The same error, naming the file this array reads (when it reads one)."""
        url = getattr(self._source, "url", None)
        if url is None or str(exc).startswith(url):
            return exc
        return geo.WindowError(f"{url}: {exc}")

    def isel_window(self, window: Window) -> GeoArray:
        """Lazy whole-pixel window; parts outside the array take the fill value."""
        try:
            window = geo.to_int_window(window)
        except geo.WindowError as exc:
            raise self._named(exc) from None
        spec = self._source
        if spec is not None and hasattr(spec, "isel_window"):  # a ReadSpec: a new graph, no slicing
            return spec.isel_window(
                window, self._chunk_request, transform=self._base_transform, crs=self.crs,
                nodata=self.nodata,
            )
        inside = geo.clip_window(window, self.width, self.height)
        transform = geo.window_transform(window, self.transform)
        if inside is None:
            data = da.full(
                (self.count, int(window.height), int(window.width)), self.fill_value_default,
                dtype=self.dtype,
            )
            return self._with(data, transform)
        r0, c0 = int(inside.row_off), int(inside.col_off)
        data = self.data[:, r0 : r0 + int(inside.height), c0 : c0 + int(inside.width)]
        pad_top, pad_left = r0 - int(window.row_off), c0 - int(window.col_off)
        pad_bottom = int(window.height) - int(inside.height) - pad_top
        pad_right = int(window.width) - int(inside.width) - pad_left
        if pad_top or pad_left or pad_bottom or pad_right:
            data = da.pad(
                data, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right)),
                mode="constant", constant_values=self.fill_value_default,
            )
        return self._with(data, transform)

    def sel_bounds(self, bounds: geo.Bounds) -> GeoArray:
        """Lazy read of the whole pixels covering `bounds` (outer rounding), boundless.

        `bounds` are in this array's CRS. Bounds that miss the array entirely are
        refused (`BoundsOutsideError`): a result of fill alone is almost always bounds
        in another CRS (degrees on a UTM file), not a request for nothing."""
        window = geo.window_from_bounds(bounds, self.transform)
        if geo.clip_window(window, self.width, self.height) is None:
            raise outside_error(bounds, self.bounds, self.crs, getattr(self._source, "url", None))
        return self.isel_window(window)

    def sel_bands(self, bands: list[int]) -> GeoArray:
        """Keep bands by their 1-based position in this array."""
        index = [b - 1 for b in bands]
        names = tuple(self.bands[i] for i in index)
        return self._with(self.data[index], self.transform, band_names=names)

    def __getitem__(self, key: Any) -> GeoArray:
        try:
            return self._getitem(key)
        except geo.WindowError as exc:
            raise self._named(exc) from None

    def _getitem(self, key: Any) -> GeoArray:
        """numpy / dask semantics: negative indices count from the end, a reversed or empty
        slice gives an empty axis; step-1 slices only (subsample with an overview)."""
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            if sum(k is Ellipsis for k in key) > 1:
                raise geo.WindowError("an index can only have a single ellipsis ('...')")
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1 :]
        if len(key) > 3:
            raise geo.WindowError(f"too many indices for a (band, y, x) array: {key!r}")
        key = key + (slice(None),) * (3 - len(key))
        band_key, row_key, col_key = key
        if not isinstance(row_key, slice) or not isinstance(col_key, slice):
            raise geo.WindowError("rows and cols must be slices")
        if (row_key.step or 1) != 1 or (col_key.step or 1) != 1:
            raise geo.WindowError("use step-1 slices; choose an overview to subsample")
        r0, r1, _ = row_key.indices(self.height)
        c0, c1, _ = col_key.indices(self.width)
        r1, c1 = max(r0, r1), max(c0, c1)  # numpy: a reversed slice is empty, not an error
        if r1 == r0 or c1 == c0:
            out = self._with(
                self.data[:, r0:r1, c0:c1],
                geo.window_transform(Window(c0, r0, c1 - c0, r1 - r0), self.transform),
            )
        else:
            out = self.isel_window(Window(c0, r0, c1 - c0, r1 - r0))
        if isinstance(band_key, slice):
            if band_key == slice(None):
                return out
            positions = list(range(self.count))[band_key]
        elif isinstance(band_key, numbers.Integral):
            positions = [int(band_key)]
        else:
            positions = [int(p) for p in np.asarray(band_key).ravel()]
        if any(not -self.count <= p < self.count for p in positions):
            raise geo.WindowError(
                f"band index {band_key!r} out of range for {self.count} bands"
            )
        out = out.sel_bands([p % self.count + 1 for p in positions])
        return out

    # -- results ------------------------------------------------------------
    def compute(self, **kwargs: Any) -> GeoTensor:
        """Compute into memory (kwargs go to `dask.compute`, e.g. scheduler=...)."""
        values = self.data.compute(**kwargs)
        return GeoTensor(np.asarray(values), self.transform, self.crs, self.fill_value_default)

    load = compute

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """`np.asarray(geoarray)` computes the pixels, as it does for a dask array
        (once a 0-d object array holding the GeoArray)."""
        return np.asarray(self.data.compute(), dtype=dtype)

    @property
    def failure_token(self) -> str | None:
        """Key of this array's read failures in the failure report (read arrays only)."""
        token = getattr(self._source, "token", None)
        return token if isinstance(token, str) else None

    def failures(self, client: Any = None) -> list[Any]:
        """Reads of this array that failed under errors="nodata" (after a compute)."""
        from daskcog.runtime.failures import failure_report

        if self.failure_token is None:
            return []
        return failure_report(self.failure_token, client=client)

    def persist(self, **kwargs: Any) -> GeoArray:
        return self._with(self.data.persist(**kwargs), self.transform)

    def valid_mask(self) -> da.Array:
        """Lazy boolean (band, y, x): True where a pixel is not the fill value."""
        fill = self.fill_value_default
        if isinstance(fill, float) and np.isnan(fill):
            return ~da.isnan(self.data)
        return self.data != fill

    def to_xarray(self, name: str | None = DATAARRAY_NAME) -> Any:
        """A dask-backed xarray.DataArray (band, y, x) with pixel-centre coordinates.

        CRS and transform sit on a `spatial_ref` coordinate the way rioxarray
        writes them, so `.rio.crs`, `.rio.transform()` and `.rio.nodata` work.
        Named `DATAARRAY_NAME` ("band_data") unless `name=` says otherwise.
        Needs the `xarray` extra; `.rio` needs `import rioxarray` first.
        """
        # `_FillValue` is the file's nodata as GDAL reads it; with none, the read's fill value
        # only where it marks pixels GDAL's mask hides (an internal mask or alpha: the read
        # fills them). Always the fill, it made `.rio.nodata` 0 where rasterio says None, so
        # every real 0 of a file with no mask read as missing
        fill = self.nodata
        if fill is None and self.fills_masked:
            fill = self.fill_value_default
        return to_dataarray(
            self.data, {"band": list(self.bands)}, transform=self.transform, crs=self.crs,
            fill_value=fill, name=name,
        )

    # -- writing ------------------------------------------------------------
    def to_cog(self, path: Any, **options: Any) -> Any:
        """Write a Cloud-Optimized GeoTIFF, computing chunk by chunk; returns the path.

        `path` may be an object-store URL (s3://, gs://, az://): the finished file
        is uploaded (multipart), with `store_options=` / `credentials=` as for reads.
        Options (see `daskcog.write.write_raster`): compress ("deflate"), predictor
        (2 for ints, 3 for floats), level, blocksize (512), overviews (True),
        resampling ("nearest"), nodata (this array's), scheduler, progress.
        """
        from daskcog.writing.write import write_raster

        return write_raster(self, path, cog=True, **options)

    def to_raster(self, path: Any, **options: Any) -> Any:
        """Write a tiled GeoTIFF (no overviews unless `overviews=True`), chunk by chunk.

        Same options as `to_cog`; `cog=True` gives a COG.
        """
        from daskcog.writing.write import write_raster

        options.setdefault("cog", False)
        return write_raster(self, path, **options)


def outside_error(
    bounds: Any, covered: Any, crs: CRS | None, what: str | None = None
) -> BoundsOutsideError:
    """The error for `bounds` that miss the data (`covered`, both in `crs`) entirely."""
    crs_text = "no CRS" if crs is None else (crs.to_string() if crs.to_epsg() else crs.name)
    looks_geographic = (
        crs is not None
        and not crs.is_geographic
        and all(-360 <= float(v) <= 360 for v in bounds)
        and not all(-360 <= float(v) <= 360 for v in covered)
    )
    hint = (
        "; they look like degrees: transform them first (e.g. rasterio.warp.transform_bounds"
        f"('EPSG:4326', {crs_text!r}, *bounds))"
        if looks_geographic
        else "; are they in another CRS?"
    )
    return BoundsOutsideError(
        f"{what + ': ' if what else ''}bounds {tuple(float(v) for v in bounds)} do not overlap "
        f"the data, which covers {tuple(round(float(v), 6) for v in covered)} in {crs_text}"
        f"{hint}"
    )


def to_dataarray(
    data: da.Array, leading: dict[str, list[Any]], *, transform: Affine, crs: CRS | None,
    fill_value: float | int | None, name: str | None,
) -> Any:
    """A dask-backed xarray.DataArray: `leading` dims (band, or time and band), then y and x.

    Pixel-centre x/y coordinates; CRS and transform on a `spatial_ref` coordinate
    the way rioxarray writes them, so `.rio.crs`, `.rio.transform()` and `.rio.nodata` work.
    """
    try:
        import xarray as xr
    except ImportError:
        raise ImportError(
            "to_xarray() needs xarray: pip install 'daskcog[xarray]' (then `import rioxarray` "
            "for .rio)"
        ) from None

    t = transform
    if t.b != 0 or t.d != 0:
        raise ValueError("rotated grids have no 1-D x/y coordinates")
    xs = t.c + (np.arange(data.shape[-1]) + 0.5) * t.a
    ys = t.f + (np.arange(data.shape[-2]) + 0.5) * t.e
    spatial_ref = xr.DataArray(0)
    if crs is not None:
        wkt = crs.to_wkt()
        spatial_ref.attrs.update(crs_wkt=wkt, spatial_ref=wkt)
    spatial_ref.attrs["GeoTransform"] = " ".join(str(v) for v in t.to_gdal())
    attrs: dict[str, Any] = {} if fill_value is None else {"_FillValue": fill_value}
    out = xr.DataArray(
        data,
        dims=(*leading, "y", "x"),
        coords={**leading, "y": ys, "x": xs, "spatial_ref": spatial_ref},
        attrs=attrs,
        name=name,
    )
    out.name = name  # xarray takes the dask key when name is None: never that
    out.encoding["grid_mapping"] = "spatial_ref"
    return out
