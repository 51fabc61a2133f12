"""GeoTensor: a numpy array (band, y, x) that knows where it is on Earth.

It is the value every georeader read returns. It holds no reader, store or open
file, so it pickles cheaply and can travel through a Dask graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from georeader.errors import WindowError
from georeader.geo import windows
from georeader.geo.gridded import OnGrid


def norm_crs(crs: Any) -> CRS | None:
    """Accept a pyproj CRS, rasterio CRS, EPSG int, WKT or authority string."""
    if crs is None or isinstance(crs, CRS):
        return crs
    if hasattr(crs, "to_wkt"):
        return CRS.from_wkt(crs.to_wkt())
    return CRS.from_user_input(crs)


class GeoTensor(OnGrid):
    """Pixel values (bands, rows, cols) with an affine transform and a CRS.

    Slicing with `[band, rows, cols]` (numpy slices, steps allowed) or
    `.window(Window)` returns a new GeoTensor whose transform still maps pixel
    (0, 0) to the right place.
    """

    __slots__ = ("values", "transform", "crs", "fill_value_default")

    def __init__(
        self,
        values: np.ndarray,
        transform: Affine,
        crs: Any,
        fill_value_default: float | int | None = 0,
    ) -> None:
        values = np.asarray(values)
        if values.ndim == 2:
            values = values[np.newaxis]
        if values.ndim != 3:
            raise ValueError(f"GeoTensor values must be (band, y, x), got shape {values.shape}")
        self.values = values
        self.transform = transform
        self.crs = norm_crs(crs)
        self.fill_value_default = fill_value_default

    # -- metadata ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    @property
    def count(self) -> int:
        return self.values.shape[0]

    @property
    def height(self) -> int:
        return self.values.shape[1]

    @property
    def width(self) -> int:
        return self.values.shape[2]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)

    def __repr__(self) -> str:
        crs = self.crs.to_string() if self.crs is not None else None
        return (
            f"GeoTensor(shape={self.shape}, dtype={self.dtype}, crs={crs!r}, "
            f"transform={tuple(self.transform)[:6]}, fill_value_default={self.fill_value_default})"
        )

    # -- slicing ----------------------------------------------------------
    def __getitem__(self, key: Any) -> GeoTensor:
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 3 or any(not isinstance(k, (slice, int, list, np.ndarray)) for k in key):
            raise WindowError(f"GeoTensor supports [band, rows, cols] indexing, got {key!r}")
        key = key + (slice(None),) * (3 - len(key))
        band_key, row_key, col_key = key
        if not isinstance(row_key, slice) or not isinstance(col_key, slice):
            raise WindowError("rows and cols must be sliced (use a slice, not an index)")
        r0, _, rstep = row_key.indices(self.height)
        c0, _, cstep = col_key.indices(self.width)
        if rstep <= 0 or cstep <= 0:
            raise WindowError("negative slice steps would flip the grid; not supported")
        if isinstance(band_key, int):
            band_key = [band_key]
        values = self.values[band_key, row_key, col_key]
        transform = self.transform @ Affine.translation(c0, r0) @ Affine.scale(cstep, rstep)
        return GeoTensor(values, transform, self.crs, self.fill_value_default)

    def window(self, window: Window, boundless: bool = False) -> GeoTensor:
        """Cut a whole-pixel window; with `boundless`, outside pixels take the fill value."""
        window = windows.to_int_window(window)
        inside = windows.clip_window(window, self.width, self.height)
        if not boundless:
            if inside != window:
                raise WindowError(
                    f"window {window!r} reaches outside the {self.height}x{self.width} array; "
                    "pass boundless=True to pad it with the fill value"
                )
            r0, c0 = int(window.row_off), int(window.col_off)
            return self[:, r0 : r0 + int(window.height), c0 : c0 + int(window.width)]
        out = np.full(
            (self.count, int(window.height), int(window.width)),
            self.fill_value_default if self.fill_value_default is not None else 0,
            dtype=self.dtype,
        )
        if inside is not None:
            dst_r, dst_c = (
                int(inside.row_off - window.row_off),
                int(inside.col_off - window.col_off),
            )
            h, w = int(inside.height), int(inside.width)
            src_r, src_c = int(inside.row_off), int(inside.col_off)
            out[:, dst_r : dst_r + h, dst_c : dst_c + w] = self.values[
                :, src_r : src_r + h, src_c : src_c + w
            ]
        transform = windows.window_transform(window, self.transform)
        return GeoTensor(out, transform, self.crs, self.fill_value_default)

    def read_bounds(self, bounds: windows.Bounds, boundless: bool = True) -> GeoTensor:
        """Cut the whole pixels covering `bounds` (outer rounding)."""
        return self.window(windows.window_from_bounds(bounds, self.transform), boundless)

    def same_grid(self, other: GeoTensor) -> bool:
        """True when both share CRS, transform and shape (pixel-aligned, same extent)."""
        return (
            self.crs == other.crs
            and self.transform.almost_equals(other.transform)
            and self.shape[1:] == other.shape[1:]
        )

    # -- writing ------------------------------------------------------------
    def to_raster(self, path: Any, **options: Any) -> Any:
        """Write a tiled GeoTIFF (rasterio/GDAL); returns the path.

        Options as `georeader.write.geotiff.resolve_options`: compress ("deflate"), predictor,
        blocksize, overviews, nodata (none unless given), `cog=True` for a COG.
        """
        from georeader.write.geotiff import write_geotensor

        options.setdefault("cog", False)
        return write_geotensor(self, path, **options)

    def to_cog(self, path: Any, **options: Any) -> Any:
        """Write a Cloud-Optimized GeoTIFF with overviews; returns the path."""
        from georeader.write.geotiff import write_geotensor

        return write_geotensor(self, path, cog=True, **options)
