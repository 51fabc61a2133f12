"""daskcog: Cloud-Optimized GeoTIFFs as Dask arrays, read asynchronously from any object store."""

from daskcog.failures import failure_report
from daskcog.geoarray import GeoArray
from daskcog.mosaic import mosaic
from daskcog.read_graph import ReadSpec, open
from daskcog.reader_cache import cache_clear, cache_info
from daskcog.stack import stack
from georeader.retry import RetryPolicy

__all__ = [
    "GeoArray", "ReadSpec", "RetryPolicy", "cache_clear", "cache_info", "failure_report", "mosaic",
    "open", "stack",
]
