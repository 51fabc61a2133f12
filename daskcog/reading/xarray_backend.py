"""xarray backend: `xr.open_dataset(url, engine="daskcog", chunks=...)`.

The backend returns a Dataset with one variable, `band_data` (band, y, x),
over a lazily indexed `DaskcogBackendArray`; xarray then builds the dask array
itself from `chunks` (no pixel is read at open). The variable's
`preferred_chunks` are the file's tiles, so `chunks="auto"` or `chunks={}`
give tile-aligned chunks and xarray warns about chunks that would split tiles.
Each chunk task reads its window exactly the way a `daskcog.open` chunk does
(the per-process reader cache and I/O loop), so it runs on every scheduler and
pickles as plain values.

Coordinates come from `GeoArray.to_xarray`: band numbers, pixel-centre x / y,
and a `spatial_ref` coordinate from which rioxarray reads `.rio.crs`,
`.rio.transform()`; `.rio.nodata` comes from `_FillValue`, the file's nodata (none when
the file has none, as rasterio reads it). Pixel values are
returned raw (invalid pixels hold the fill value), like rioxarray's default
`mask_and_scale=False`.

Options (keyword arguments of `open_dataset`, or `backend_kwargs`):
`overview_level`, `resolution`, `bands`, `fill_value`, `store_options` (a dict),
and any other keyword is taken as a store option (`region=`, `client_options=`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from rasterio.windows import Window
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from daskcog.reading.cog_array import ReadSpec, read_block

VARIABLE = "band_data"


class DaskcogBackendArray(BackendArray):
    """Lazily indexed (band, y, x) view of one level of a COG; holds a ReadSpec only."""

    def __init__(self, spec: ReadSpec) -> None:
        self.spec = spec
        self.shape = (len(spec.bands), spec.window[3], spec.window[2])
        self.dtype = np.dtype(spec.dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        """Basic indexing (ints and slices, any step): one window read, then subsample."""
        band_key, row_key, col_key = key
        spec = self.spec
        band_index = np.arange(self.shape[0])[band_key]
        bands = [spec.bands[i] for i in np.atleast_1d(band_index)]
        (r0, r1, rstep), (c0, c1, cstep) = (
            _as_range(row_key, self.shape[1]),
            _as_range(col_key, self.shape[2]),
        )
        height, width = max(r1 - r0, 0), max(c1 - c0, 0)
        if not bands or height == 0 or width == 0:
            values = np.empty((len(bands), height, width), self.dtype)
        else:
            window = Window(spec.window[0] + c0, spec.window[1] + r0, width, height)
            values = read_block(spec, bands, window)
        values = values[:, ::rstep, ::cstep]
        index: tuple[Any, ...] = (
            0 if np.ndim(band_index) == 0 else slice(None),
            0 if isinstance(row_key, int | np.integer) else slice(None),
            0 if isinstance(col_key, int | np.integer) else slice(None),
        )
        return values[index]

    def __reduce__(self) -> tuple[Any, ...]:
        return (DaskcogBackendArray, (self.spec,))


def _as_range(key: Any, size: int) -> tuple[int, int, int]:
    """(start, stop, step) of the bounding rows/cols of an int or a slice (positive step)."""
    if isinstance(key, int | np.integer):
        start = int(key) % size
        return start, start + 1, 1
    start, stop, step = key.indices(size)
    if step < 0:
        raise IndexError("negative steps are not supported by the daskcog backend")
    count = len(range(start, stop, step))
    return start, (start + (count - 1) * step + 1) if count else start, step


class DaskcogBackendEntrypoint(BackendEntrypoint):
    """Open (Cloud-Optimized) GeoTIFFs with daskcog's async reader, lazily."""

    description = "Open (Cloud-Optimized) GeoTIFFs lazily with daskcog (async-tiff + obstore)"
    url = "https://github.com/daskcog/daskcog"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "overview_level",
        "resolution",
        "bands",
        "fill_value",
        "store_options",
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        overview_level: int = 0,
        resolution: float | tuple[float, float] | None = None,
        bands: int | Iterable[int] | None = None,
        fill_value: float | None = None,
        store_options: dict[str, Any] | None = None,
        **more_store_options: Any,
    ) -> Any:
        import xarray as xr

        import daskcog

        if not isinstance(filename_or_obj, str | os.PathLike):
            raise TypeError(
                f"the daskcog engine opens paths and URLs, not {type(filename_or_obj).__name__}"
            )
        options = {**(store_options or {}), **more_store_options}
        geoarray = daskcog.open(
            filename_or_obj,
            overview_level=overview_level,
            resolution=resolution,
            bands=bands if bands is None or isinstance(bands, int) else list(bands),
            fill_value=fill_value,
            **options,
        )
        spec = geoarray.source
        template = geoarray.to_xarray(name=VARIABLE)
        data = indexing.LazilyIndexedArray(DaskcogBackendArray(spec))
        th, tw = spec.tile
        encoding = {
            "preferred_chunks": {"band": len(spec.bands), "y": th, "x": tw},
            "grid_mapping": "spatial_ref",
            "dtype": np.dtype(spec.dtype),
            "source": spec.url,
        }
        variable = xr.Variable(template.dims, data, attrs=dict(template.attrs), encoding=encoding)
        coords = {name: template.coords[name].variable for name in template.coords}
        dataset = xr.Dataset({VARIABLE: variable}, coords=coords)
        dataset.attrs["source"] = spec.url
        dataset.encoding["source"] = spec.url
        if drop_variables is not None:
            names = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
            dataset = dataset.drop_vars([n for n in names if n in dataset.variables])
        return dataset

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Never guessed: GeoTIFFs open with daskcog only when asked (`engine="daskcog"`),
        so installing daskcog does not change which engine `xr.open_dataset("x.tif")` picks."""
        return False
