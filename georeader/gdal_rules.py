"""Where GDAL reads a header differently from async-geotiff: the rules we follow so that
the native route and the rasterio route (GDAL, the reference) agree on the same file.

`opened_file` asks these while it describes a freshly parsed header (tag values in,
a verdict out; no I/O): whether the GeoKeys override an EPSG ellipsoid (the CRS is
then taken from GDAL), and which band, if any, is an alpha band that masks the others.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyproj import CRS


def ellipsoid_overridden(gkd: Any) -> bool:
    """True when GeoKeys name an EPSG geographic CRS *and* give a different ellipsoid.

    GDAL honours the explicit GeogSemiMajorAxis / GeogInvFlattening keys (seen in
    a real file: "WGS 84" with a = 6378140); async-geotiff takes the EPSG code
    and ignores them. Such (rare) files take their CRS from GDAL, the reference.
    """
    if gkd is None:
        return False
    code = gkd.geographic_type
    if code in (None, 32767) or (gkd.model_type == 1 and gkd.projected_type not in (None, 32767)):
        return False
    given = (gkd.geog_semi_major_axis, gkd.geog_inv_flattening, gkd.geog_semi_minor_axis)
    if all(v is None for v in given):
        return False
    try:
        ellipsoid = CRS.from_epsg(code).ellipsoid
    except Exception:  # noqa: BLE001 - unknown code: let GDAL decide
        return True
    if ellipsoid is None:
        return True
    expected = (
        ellipsoid.semi_major_metre,
        ellipsoid.inverse_flattening,
        ellipsoid.semi_minor_metre,
    )
    pairs = zip(given, expected, strict=True)
    return any(v is not None and not math.isclose(v, e, rel_tol=1e-12) for v, e in pairs)


def alpha_band_index(ifd: Any, count: int, dtype: np.dtype, nodata: float | None) -> int | None:
    """The band (0-based) that masks the others, by GDAL's rule, or None.

    GDAL (`GDALRasterBand::GetMaskBand`) uses an alpha band as the mask only in
    2-band (gray + alpha) and 4-band (RGBA) Byte/UInt16 datasets whose last band
    is alpha (ExtraSamples associated or unassociated alpha), and only when no
    nodata value is set. async-geotiff's colorinterp finds alpha only after RGB,
    so gray + alpha files would come back unmasked.
    """
    if nodata is not None or count not in (2, 4) or dtype not in (np.uint8, np.uint16):
        return None
    extra = list(ifd.extra_samples or [])
    return count - 1 if extra and int(extra[-1]) in (1, 2) else None
