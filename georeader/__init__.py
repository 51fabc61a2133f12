"""georeader: geo primitives and exact, async readers of (Cloud-Optimized) GeoTIFFs.

No Dask here: daskcog builds on these pieces.
"""

from georeader.abstract_reader import AsyncGeoData, GeoData
from georeader.async_geotiff_reader import AsyncGeoTIFFReader
from georeader.errors import (
    AccessDeniedError,
    GeoreaderError,
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

__all__ = [
    "AccessDeniedError", "AsyncGeoData", "AsyncGeoTIFFReader", "GeoData", "GeoTensor",
    "GeoreaderError", "InvalidURLError", "NoGeoreferenceError", "NotATiffError",
    "ObjectNotFoundError", "RasterioReader", "ReaderNotOpenedError", "StoreReadError",
    "TileDecodeError", "UnsupportedLayoutError", "WindowError", "open_store", "parse_location",
]
