"""georeader: geo primitives and exact, async readers of (Cloud-Optimized) GeoTIFFs.

No Dask here: daskcog builds on these pieces. The reader contract is
`abstract_reader` (`GeoMetadata`, `GeoData`, `AsyncGeoData`); `AsyncGeoTIFFReader`
and `RasterioReader` satisfy it. `translate` moves between async-geotiff's own
values and ours.
"""

from georeader.abstract_reader import AsyncGeoData, GeoData, GeoMetadata
from georeader.async_geotiff_reader import AsyncGeoTIFFReader
from georeader.errors import (
    AccessDeniedError,
    GeoreaderError,
    InvalidHeaderError,
    InvalidURLError,
    NoGeoreferenceError,
    NotATiffError,
    ObjectNotFoundError,
    ReaderNotOpenedError,
    StoreReadError,
    TileDecodeError,
    UnsupportedLayoutError,
    WindowError,
)
from georeader.geotensor import GeoTensor
from georeader.rasterio_reader import RasterioReader
from georeader.store import open_store, parse_location
from georeader.translate import (
    from_async_geotiff_window,
    raster_array_to_geotensor,
    to_async_geotiff_window,
)

__all__ = [
    "AccessDeniedError", "AsyncGeoData", "AsyncGeoTIFFReader", "GeoData", "GeoMetadata",
    "GeoTensor", "GeoreaderError", "InvalidHeaderError", "InvalidURLError", "NoGeoreferenceError",
    "NotATiffError",
    "ObjectNotFoundError", "RasterioReader", "ReaderNotOpenedError", "StoreReadError",
    "TileDecodeError", "UnsupportedLayoutError", "WindowError", "from_async_geotiff_window",
    "open_store", "parse_location", "raster_array_to_geotensor", "to_async_geotiff_window",
]
