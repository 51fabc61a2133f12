"""The output grid of `daskcog.load`: an odc-geo GeoBox, chosen by odc-stac's rules.

Why odc-geo: it is the grid type of the field (odc-stac's users already hold
GeoBoxes), so `geobox=` and `like=` take one by construction, and building the
grid with it (snapping with its 1/100-pixel tolerance, anchors, the pixel-centre
coordinates `to_xarray` writes) gives exactly the grid and the coordinates
odc-stac gives for the same arguments: `xr.align` of the two results is exact.
The GeoBox is turned into daskcog's plain `Grid` (same coefficients, bit for
bit) for the graph; daskcog's own code stays where exactness needs it: GDAL
places every pixel (`mosaics.tasks`, the warp), and the scene footprints the
chunk tasks test are GDAL's (`grid.place`).

Rules (odc-stac's `output_geobox`, in this order):

* `geobox=`: used as given; nothing else about the grid may be given.
* `like=`: an odc-geo GeoBox, an xarray object with a grid (`.odc.geobox`:
  results of `odc.stac.load` and of daskcog's `to_xarray` / `to_dataset`), or a
  daskcog GeoArray / GeoStack; nothing else about the grid may be given.
* A region: `bbox=` or `lon=` + `lat=` (degrees), `x=` + `y=` (output CRS,
  needs `crs=`), `geopolygon=` / `intersects=` (a geometry: odc-geo, shapely,
  GeoJSON dict or anything with `__geo_interface__`, lon/lat unless it says).
  The grid covers it, snapped to the anchor. daskcog's `bounds=` (output-CRS
  bounds used as given, like `gdalwarp -te`) is not snapped.
* What the items say (each item's finest grid among the assets loaded): when
  every item has the same grid and nothing is given, that grid; else the most
  common (CRS, resolution, anchor) when more than a tenth of the items share
  it, else the most common (CRS, resolution) with pixel edges on multiples of
  the resolution. Without a region the grid covers every item's footprint.
* Anchor: `anchor=`; else, unless both `crs=` and `resolution=` are given, the
  items' own (their pixels are read as they are, with a region or without);
  else pixel edges on multiples of the resolution.

Where daskcog says more than odc-stac:

* items in several CRSs and no `crs=`: the most common CRS, as odc-stac, with
  a `MixedCrsWarning` naming it;
* a region that misses every item: odc-stac's all-nodata result, with an
  `OutsideItemsWarning` naming the region;
* `crs=` other than the items' and no `resolution=`: the finest scene's pixel
  size in the output CRS (GDAL's suggested-warp size, as `daskcog.mosaic`);
  odc-stac reuses the items' number in the other CRS's units (10 m items in
  EPSG:4326 come out as one 10-degree pixel).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from affine import Affine

from daskcog.mosaics.crs import crs_text, same_crs, transform_bounds
from daskcog.mosaics.grid import Grid, Placement, place
from daskcog.mosaics.scenes import Scene, SceneIndex, wrap_period
from daskcog.runtime import process_state
from daskcog.stac.items.item_dicts import StacError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import Geometry


class MixedCrsWarning(UserWarning):
    """The items are in several CRSs and no `crs=` was given: the most common one is used."""


class OutsideItemsWarning(UserWarning):
    """The region asked for misses every item: the result is all nodata (as odc-stac's)."""


_MAJORITY = 0.1
"""odc-stac's share of items above which the most common (CRS, resolution, anchor) wins."""


@dataclass(frozen=True)
class GridRequest:
    """The grid keywords of one `daskcog.load` call (None when not given)."""

    crs: Any = None
    resolution: Any = None
    anchor: Any = None
    geobox: Any = None
    like: Any = None
    bbox: Any = None
    bounds: Any = None
    lon: Any = None
    lat: Any = None
    x: Any = None
    y: Any = None
    geopolygon: Any = None

    def given(self) -> list[str]:
        return [name for name in self.__dataclass_fields__ if getattr(self, name) is not None]


def _odc() -> Any:
    try:
        import odc.geo.geobox  # noqa: F401 - the module, for the caller
        import odc.geo.geom  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the stac extra installs it
        raise ImportError(
            "daskcog.load needs odc-geo for its output grid: pip install 'daskcog[stac]'"
        ) from exc
    import odc.geo

    return odc.geo


def _extra(request: GridRequest, primary: str, *allowed: str) -> None:
    extra = [n for n in request.given() if n not in (primary, *allowed)]
    if extra:
        raise StacError(
            f"{primary}= gives the whole output grid: leave out {', '.join(e + '=' for e in extra)}"
        )


# -- values --------------------------------------------------------------------------
def norm_resolution(value: Any) -> Any:
    """An odc-geo Resolution from a number (square pixels, y flipped, as odc-stac), an
    odc-geo Resolution, or daskcog's (x, y) pixel sizes; None stays None."""
    if value is None:
        return None
    from odc.geo import Resolution, res_, resxy_

    if isinstance(value, Resolution):
        res = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        res = res_(float(value))
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        rx, ry = (float(v) for v in value)
        res = resxy_(abs(rx), -abs(ry))
    else:
        raise TypeError(
            f"resolution= takes a number, (x, y) pixel sizes or an odc-geo Resolution; "
            f"got {value!r}"
        )
    if not all(math.isfinite(v) and v != 0 for v in res.xy):
        raise StacError(f"resolution must be finite and non-zero; got {value!r}")
    if res.x < 0 or res.y > 0:
        raise StacError(
            f"resolution {value!r} makes a grid that is not north-up (x growing east, y "
            "shrinking down the rows); daskcog's output grids are north-up"
        )
    return res


def _norm_anchor(value: Any) -> Any:
    """odc-geo's anchor values; a 2-tuple is an (x, y) pixel fraction."""
    if value is None:
        return None
    from odc.geo import XY, xy_
    from odc.geo.types import AnchorEnum

    if isinstance(value, AnchorEnum | XY):
        return value
    if isinstance(value, str):
        if value.lower() not in ("center", "centre", "edge", "floating", "default"):
            raise StacError(
                f"anchor={value!r}: give 'edge', 'center', 'floating', a pixel fraction or "
                "an odc-geo xy_ value"
            )
        return value.lower()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Sequence) and len(value) == 2:
        return xy_(float(value[0]), float(value[1]))
    raise TypeError(
        f"anchor= takes 'edge', 'center', 'floating', a number or (x, y); got {value!r}"
    )


def norm_geometry(value: Any) -> Geometry:
    """An odc-geo Geometry from what odc-stac's `geopolygon=` takes (lon/lat unless the
    value carries its CRS)."""
    from odc.geo.geom import Geometry

    if isinstance(value, Geometry):
        return value
    if isinstance(value, dict):
        return Geometry(value, "epsg:4326")
    interface = getattr(value, "__geo_interface__", None)
    if interface is None:
        raise TypeError(
            f"geopolygon= takes an odc-geo Geometry, a GeoJSON dict, a shapely geometry or a "
            f"GeoDataFrame; got {type(value).__name__}"
        )
    if hasattr(value, "geom_type"):  # shapely: no CRS of its own
        return Geometry(value, "epsg:4326")
    crs = getattr(value, "crs", None) or "epsg:4326"
    return Geometry(interface, crs)


def geobox_of(like: Any) -> GeoBox:
    """The grid of a `like=` value (see the module docstring)."""
    _odc()
    from odc.geo.geobox import GeoBox

    if isinstance(like, GeoBox):
        return like
    if hasattr(like, "dims") and hasattr(like, "coords"):  # xarray
        import odc.geo.xr  # noqa: F401 - registers the .odc accessor

        found = getattr(getattr(like, "odc", None), "geobox", None)
        if not isinstance(found, GeoBox):
            raise StacError("like= has no georeferenced grid (no .odc.geobox): give geobox=")
        return found
    crs, transform, shape = (getattr(like, n, None) for n in ("crs", "transform", "shape"))
    if crs is None or transform is None or shape is None:
        raise TypeError(
            "like= takes an odc-geo GeoBox, an xarray object with a grid (odc-stac's or "
            "daskcog's result) or a daskcog GeoArray / GeoStack; "
            f"got {type(like).__name__}"
        )
    affine = transform if isinstance(transform, Affine) else Affine(*tuple(transform)[:6])
    return GeoBox((int(shape[-2]), int(shape[-1])), affine, crs)


def to_grid(geobox: GeoBox) -> Grid:
    """daskcog's plain Grid with the GeoBox's coefficients, bit for bit."""
    t = geobox.affine
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise StacError(
            f"the output grid {tuple(t)[:6]} is rotated or not north-up; daskcog's output "
            "grids are north-up (x growing east, y shrinking down the rows)"
        )
    if geobox.crs is None:
        raise StacError("the output grid has no CRS")
    height, width = geobox.shape.yx
    return Grid(crs_text(geobox.crs.wkt), (t.a, t.b, t.c, t.d, t.e, t.f), int(width), int(height))


def to_geobox(grid: Grid) -> GeoBox:
    """The GeoBox of a daskcog Grid (for coordinates and `.odc`)."""
    _odc()
    return _geobox(grid.crs, grid.transform, grid.width, grid.height)


@lru_cache(maxsize=4096)
def _geobox(
    crs: str, transform: tuple[float, ...], width: int, height: int
) -> GeoBox:
    from odc.geo.geobox import GeoBox

    return GeoBox((height, width), Affine(*transform[:6]), crs)


@lru_cache(maxsize=65536)
def _footprint(
    crs: str, transform: tuple[float, ...], width: int, height: int, target: str
) -> tuple[float, float, float, float]:
    """A scene's bounding box in the target CRS as odc-stac computes it (its extent, else
    its footprint with odc-geo's densification and antimeridian handling). Cached: a
    catalogue repeats each tile's grid on every date."""
    box = _geobox(crs, transform, width, height)
    if same_crs(crs, target):
        bb = box.extent.boundingbox
    else:
        bb = box.footprint(_geobox_crs(target), wrapdateline=True).boundingbox
    return (float(bb.left), float(bb.bottom), float(bb.right), float(bb.top))


@lru_cache(maxsize=256)
def _geobox_crs(text: str) -> Any:
    from odc.geo.crs import CRS

    return CRS(text)


_CANDIDATE = 0.01
"""A foreign footprint whose cheap bounds come within this share of its size of the cheap
union's edge is measured as odc-geo measures it (see `_item_boxes`)."""


def _item_boxes(grids: Sequence[Scene], target: str) -> list[tuple[float, float, float, float]]:
    """The items' footprints in the target CRS whose union is the one odc-stac takes, bit
    for bit, measured only where they can matter.

    odc-geo's footprint of a grid in another CRS (100 points a side, antimeridian
    handled) costs ~10 ms: 11,000 distinct foreign tiles took 30 s. The union needs
    it only for the footprints that reach the union's edges, so every footprint is first
    bounded cheaply (`crs.transform_bounds`: GDAL's 21 points a side, cached, ~60 us),
    and only those within 1% of their own size of the cheap union's edge (or not
    finite, or across the antimeridian) get odc-geo's. Grids in the target CRS are
    their extent, as odc-geo computes it (c + a * width, f + e * height), with no
    GeoBox at all."""
    exact: list[tuple[float, float, float, float]] = []
    cheap: list[tuple[Scene, tuple[float, float, float, float]]] = []
    seen: set[tuple[Any, ...]] = set()
    for g in grids:
        key = (g.crs, g.transform, g.width, g.height)
        if key in seen:
            continue
        seen.add(key)
        a, b, c, d, e, f = g.transform
        if b == 0 and d == 0 and same_crs(g.crs, target):
            x1, y1 = c + a * g.width, f + e * g.height
            exact.append((min(c, x1), min(f, y1), max(c, x1), max(f, y1)))
        else:
            cheap.append((g, transform_bounds(g.bounds, g.crs, target)))
    proper = [box for _, box in cheap if all(math.isfinite(v) for v in box)
              and box[0] <= box[2] and box[1] <= box[3]]
    every = exact + proper
    if every:
        left, bottom = min(v[0] for v in every), min(v[1] for v in every)
        right, top = max(v[2] for v in every), max(v[3] for v in every)
    for g, box in cheap:
        w, s_, e_, n = box
        if every and all(math.isfinite(v) for v in box) and w <= e_ and s_ <= n:
            tol = _CANDIDATE * max(e_ - w, n - s_)
            if w > left + tol and e_ < right - tol and s_ > bottom + tol and n < top - tol:
                continue  # inside the union by more than the two measures can differ
        exact.append(_footprint(g.crs, tuple(g.transform), g.width, g.height, target))
    return [box for box in exact if all(math.isfinite(v) for v in box)]


# -- the rules -----------------------------------------------------------------------
def finest_per_item(
    tables: Sequence[tuple[Sequence[Scene], Any]], n_items: int
) -> list[Scene | None]:
    """Each item's finest grid among the assets loaded (odc-stac's first of an item's
    geoboxes), the first such asset on ties; None for an item with no asset loaded."""
    best: list[Scene | None] = [None] * n_items
    size = [math.inf] * n_items
    for scenes, items in tables:
        for scene, item in zip(scenes, items, strict=True):
            a, _, _, _, e, _ = scene.transform
            pixel = min(abs(a), abs(e))
            if pixel < size[int(item)]:
                size[int(item)] = pixel
                best[int(item)] = scene
    return best


def _auto(
    grids: Sequence[Scene], weights: Sequence[int]
) -> tuple[str, Any, Any, GeoBox | None, Counter[str]]:
    """(CRS, resolution, anchor, the one grid if all are the same, items per CRS)."""
    from odc.geo import resxy_
    from odc.geo.math import extract_anchor
    from odc.geo.types import AnchorEnum

    keys = Counter[tuple[str, tuple[float, ...], int, int]]()
    for g, w in zip(grids, weights, strict=True):
        keys[(g.crs, tuple(g.transform), g.width, g.height)] += w
    per_crs: Counter[str] = Counter()
    groups: Counter[tuple[str, Any, Any]] = Counter()
    for (crs, t, _, _), n in keys.items():
        per_crs[crs] += n
        groups[(crs, resxy_(t[0], t[4]), extract_anchor(Affine(*t[:6])))] += n
    total = sum(keys.values())
    if len(keys) == 1:
        (crs, t, width, height), = keys
        box = _geobox(crs, t, width, height)
        return crs, box.resolution, box.anchor, box, per_crs
    (best, n), = groups.most_common(1)
    if n / total > _MAJORITY:
        return (*best, None, per_crs)
    pairs: Counter[tuple[str, Any]] = Counter()
    for (crs, res, _), m in groups.items():
        pairs[(crs, res)] += m
    ((crs, res), _), = pairs.most_common(1)
    return crs, res, AnchorEnum.EDGE, None, per_crs


def _crs_name(text: str) -> str:
    from daskcog.mosaics.crs import crs_from_text

    code = crs_from_text(text).to_epsg()
    return f"EPSG:{code}" if code else crs_from_text(text).name


def _region(request: GridRequest) -> tuple[Geometry | None, str]:
    """The region asked for as a geometry, and how to name it in a warning."""
    from odc.geo.geom import box

    r = request
    if (r.x is None) != (r.y is None):
        raise StacError("give both x= and y= (output-CRS ranges), or neither")
    if (r.lon is None) != (r.lat is None):
        raise StacError("give both lon= and lat= (degree ranges), or neither")
    if r.geopolygon is not None:
        _extra(r, "geopolygon", "crs", "resolution", "anchor")
        return norm_geometry(r.geopolygon), "geopolygon"
    if r.bbox is not None:
        _extra(r, "bbox", "crs", "resolution", "anchor")
        west, south, east, north = (float(v) for v in r.bbox)
        return box(west, south, east, north, "epsg:4326"), f"bbox {tuple(r.bbox)!r}"
    if r.lon is not None:
        _extra(r, "lon", "lat", "crs", "resolution", "anchor")
        x0, x1 = sorted(float(v) for v in r.lon)
        y0, y1 = sorted(float(v) for v in r.lat)
        return box(x0, y0, x1, y1, "epsg:4326"), f"lon={tuple(r.lon)!r}, lat={tuple(r.lat)!r}"
    if r.x is not None:
        if r.crs is None:
            raise StacError("x= and y= are in the output CRS: give crs= too")
        _extra(r, "x", "y", "crs", "resolution", "anchor")
        x0, x1 = sorted(float(v) for v in r.x)
        y0, y1 = sorted(float(v) for v in r.y)
        return box(x0, y0, x1, y1, _target_crs_value(r.crs)), f"x={tuple(r.x)!r}, y={tuple(r.y)!r}"
    return None, ""


def _target_crs_value(crs: Any) -> Any:
    if isinstance(crs, str) and crs.lower().startswith("utm"):
        return crs
    return _geobox_crs(crs_text(crs))


def output_geobox(
    request: GridRequest,
    grids: Sequence[Scene],
    weights: Sequence[int] | None = None,
    *,
    scenes: Sequence[Scene] = (),
) -> tuple[GeoBox, str]:
    """The output grid and the name of the region or grid asked for ("" when the grid
    comes from the items).

    Args:
        request: the grid keywords.
        grids: one scene per item (its finest grid), or distinct grids with `weights`
            (items per grid) when the items themselves are not at hand.
        scenes: every scene of the load (for a resolution in another CRS).
    """
    _odc()
    from odc.geo.crs import CRS
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import bbox_union
    from odc.geo.types import AnchorEnum

    r = request
    if r.geobox is not None:
        _extra(r, "geobox")
        return geobox_of(r.geobox), "geobox= grid"
    if r.like is not None:
        _extra(r, "like")
        return geobox_of(r.like), "like= grid"
    region, name = _region(r)
    if r.bounds is not None:
        _extra(r, "bounds", "crs", "resolution")
    if not grids:
        raise StacError("no item has a grid to load")
    weights = [1] * len(grids) if weights is None else list(weights)
    resolution, anchor = norm_resolution(r.resolution), _norm_anchor(r.anchor)
    auto_crs, auto_res, auto_anchor, only, per_crs = _auto(grids, weights)
    if not r.given() and only is not None:
        return only, ""

    if r.crs is None:
        crs_value: Any = auto_crs
        if len(per_crs) > 1:
            counts = ", ".join(f"{_crs_name(c)}: {n}" for c, n in per_crs.most_common())
            warnings.warn(
                f"the items are in {len(per_crs)} CRSs ({counts} items): loading in "
                f"{_crs_name(auto_crs)}, the CRS of their most common grid (odc-stac's "
                "choice); give crs= to choose",
                MixedCrsWarning, stacklevel=6,
            )
    elif isinstance(r.crs, str) and r.crs.lower().startswith("utm"):
        if region is not None:
            crs_value = CRS.utm(region)
        else:
            first = grids[0]
            crs_value = CRS.utm(_geobox(first.crs, first.transform, first.width,
                                        first.height).extent)
    else:
        crs_value = r.crs
    target = crs_text(crs_value if not isinstance(crs_value, CRS) else crs_value.wkt)
    odc_crs = _geobox_crs(target)

    both = r.crs is not None and resolution is not None
    if resolution is None:
        if same_crs(target, auto_crs):
            resolution = auto_res
        else:  # daskcog's rule (see the module docstring)
            derived = place(list(scenes or grids), crs=target).grid.res
            from odc.geo import resxy_

            resolution = resxy_(derived[0], -derived[1])
            auto_anchor = AnchorEnum.EDGE
    if anchor is None:
        anchor = AnchorEnum.EDGE if both else auto_anchor

    if r.bounds is not None:
        left, bottom, right, top = (float(v) for v in r.bounds)
        if not (right > left and top > bottom):
            raise StacError(
                f"bounds must be (left, bottom, right, top) with area; got {r.bounds!r}"
            )
        return GeoBox.from_bbox((left, bottom, right, top), odc_crs, resolution=resolution,
                                tight=True), f"bounds {tuple(r.bounds)!r}"
    if region is not None:
        return GeoBox.from_geopolygon(region, resolution=resolution, crs=odc_crs,
                                      anchor=anchor), name
    from odc.geo.geom import BoundingBox

    finite = [BoundingBox(*b, crs=odc_crs) for b in _item_boxes(grids, target)]
    if not finite:
        raise StacError(
            f"no item's footprint can be placed in {_crs_name(target)}: give another crs= "
            "or a region (bbox=, x= / y=, geobox=)"
        )
    union = bbox_union(finite)
    return GeoBox.from_bbox(union, resolution=resolution, anchor=anchor), ""


def plan(
    request: GridRequest,
    scenes: Sequence[Scene],
    grids: Sequence[Scene],
    weights: Sequence[int] | None = None,
) -> tuple[Placement, GeoBox]:
    """The placement of every scene on the output grid (`grid.place` with the grid given),
    with an `OutsideItemsWarning` when a region or a given grid misses them all."""
    geobox, region = output_geobox(request, grids, weights, scenes=scenes)
    grid = to_grid(geobox)
    placement = place(scenes, grid=grid)
    if region:
        # modulo 360 in a geographic CRS: a footprint across 180 degrees (mosaics/scenes.py)
        hits = SceneIndex(placement.footprints, wrap_period(grid.crs)).hits(grid.bounds)
        if not hits.any():
            warnings.warn(
                f"the {region} misses every item's footprint: the result is all nodata "
                "(as odc-stac's)", OutsideItemsWarning, stacklevel=5,
            )
    return placement, geobox


process_state.register_function_cache("daskcog.output_grid.geobox", _geobox)
process_state.register_function_cache("daskcog.output_grid.footprint", _footprint)
process_state.register_function_cache("daskcog.output_grid.geobox_crs", _geobox_crs)
