"""georeader.read: one window of pixels: fetch its tiles, decode them, assemble the window
(or read it through GDAL where georeader does not decode the layout itself).

Internal: other packages import `georeader` / `georeader.geo` / `georeader.io` instead.
"""
