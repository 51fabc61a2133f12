"""daskcog: Cloud-Optimized GeoTIFFs as Dask arrays, read asynchronously from any object store."""

from daskcog.mosaics.mosaic import mosaic
from daskcog.mosaics.stack import stack
from daskcog.reading.failures import failure_report
from daskcog.reading.geoarray import GeoArray
from daskcog.reading.read_graph import ReadSpec, open
from daskcog.reading.reader_cache import cache_clear, cache_info
from daskcog.stac.load import load
from georeader.retry import RetryPolicy

__all__ = [
    "GeoArray", "ReadSpec", "RetryPolicy", "cache_clear", "cache_info", "failure_report", "load",
    "mosaic", "open", "stack",
]
