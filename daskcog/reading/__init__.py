"""Reading one COG as a lazy dask array: the graph (`read_graph`), the array type it returns
(`geoarray`), tile-aligned chunking, the per-process reader cache and I/O loop, the failure
report of `errors="nodata"` reads, and the xarray backend."""
