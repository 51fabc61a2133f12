"""georeader.header: one file's header, read once: the IFD walk, GDAL's rules for what the
tags mean, the checks, the route each level is read by, and the model the readers share.

Internal: other packages import `georeader` / `georeader.geo` / `georeader.io` instead.
"""
