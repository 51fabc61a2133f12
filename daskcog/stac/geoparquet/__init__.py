"""stac-geoparquet archives as lazy stacks: the file (read once per process), the plan of
its row groups, and the load whose chunk tasks filter the rows they need."""
