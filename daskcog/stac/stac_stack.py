"""StacStack: the GeoStack `daskcog.load` returns, with STAC names and item properties.

On top of `GeoStack` (the dask array, grid and CRS) it knows the output band
names, the steps' times and items, and turns them into xarray coordinates:
time / band / y / x, the CRS on `spatial_ref` (rioxarray reads it), and every
scalar item property that is the same for all items of a step (id, platform,
eo:cloud_cover, ...) as a non-dimension coordinate along time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from daskcog.mosaics.grouping import TIME_GROUPS, Grouping
from daskcog.mosaics.stack import GeoStack
from daskcog.stac.items.item_dicts import ItemDict, item_id

if TYPE_CHECKING:
    from daskcog.stac.load_plan import LoadPlan
    from daskcog.stac.load_spec import LoadSpec

_SCALARS = (str, int, float, bool)


class StacStack(GeoStack):
    """A lazy (time, band, y, x) stack of STAC items on one grid."""

    def __init__(
        self,
        data: da.Array,
        *,
        spec: LoadSpec,
        band_names: Sequence[str],
        steps: Grouping,
        items: Sequence[ItemDict] | None,
        groupby: Any,
        nodata: float | None,
        properties: Callable[[], dict[str, list[Any]]] | None = None,
        with_properties: Sequence[PropertyRequest] = (),
        property_rows: Callable[[str], list[list[Any]]] | None = None,
    ) -> None:
        grid = spec.grid
        super().__init__(
            data,
            transform=grid.affine,
            crs=grid.crs_obj,
            keys=steps.times,
            bands=tuple(band_names),
            fill_value_default=nodata if nodata is not None else spec.fills[0],
            nodata=nodata,
            urls=(),
        )
        self.spec = spec
        self.band_names = tuple(band_names)
        self.steps = steps
        self.groupby = groupby
        self._items = items
        self._properties: dict[str, list[Any]] | None = None
        self._properties_of = properties
        self.with_properties = tuple(with_properties)
        self._property_rows = property_rows

    @property
    def urls(self) -> tuple[tuple[str, ...], ...]:
        """The files of each step, in priority order (all assets)."""
        spec = self.spec
        return tuple(
            tuple(m.scenes[int(i)].url for m in spec.assets for i in m.groups[t])
            for t in range(len(self.steps.keys))
        )

    @urls.setter
    def urls(self, value: Any) -> None:  # GeoStack.__init__ sets it; computed on demand here
        pass

    @property
    def properties(self) -> dict[str, list[Any]]:
        """Per property name, one value per step (only properties constant within a step);
        computed when first asked, not while the graph is built."""
        if self._properties is None:
            self._properties = (
                self._properties_of() if self._properties_of is not None
                else step_properties(self._items or [], self.steps)
            )
        return self._properties

    failure_token = None
    """`daskcog.failure_report(stack)` reports every failed read (a load spans several specs)."""

    @property
    def geobox(self) -> Any:
        """The output grid as an odc-geo GeoBox (what odc-stac's `.odc.geobox` gives)."""
        from daskcog.stac.output_grid import to_geobox

        return to_geobox(self.spec.grid)

    def band_dtypes(self) -> list[np.dtype]:
        """Each output band's own dtype: its asset's (the stack holds them promoted to one),
        or the stack's when `dtype=` or `rescale=` made them so."""
        spec = self.spec
        out = np.dtype(spec.out_dtype)
        return [
            out if spec.rescale[pos] is not None else np.dtype(spec.assets[asset].out_dtype)
            for pos, (asset, _) in enumerate(spec.band_map)
        ]

    def to_xarray(self, name: str | None = None) -> Any:
        """A dask-backed DataArray (time, band, y, x) with item properties as coordinates.

        Spatial coordinates are odc-geo's for the output grid (`xr_coords`): the same
        floats odc-stac writes, so `xr.align` with its result is exact, named `latitude`
        / `longitude` in a geographic CRS; the CRS sits on `spatial_ref` (rioxarray and
        the `.odc` accessor both read it).
        """
        import xarray as xr
        from odc.geo.xr import xr_coords

        geobox = self.geobox
        spatial = xr_coords(geobox)
        ydim, xdim = geobox.dimensions
        attrs: dict[str, Any] = {} if self.nodata is None else {"_FillValue": self.nodata}
        out = xr.DataArray(
            self.data,
            dims=("time", "band", ydim, xdim),
            coords={"time": list(self.keys), "band": list(self.bands), **spatial},
            attrs=attrs,
            name=name,
        )
        out.encoding["grid_mapping"] = "spatial_ref"
        extra: dict[str, Any] = {
            key: ("time", values)
            for key, values in self.properties.items()
            if key not in out.coords
        }
        if isinstance(self.groupby, str) and self.groupby not in TIME_GROUPS:
            extra.setdefault(self.groupby, ("time", list(self.steps.keys)))
        return out.assign_coords(extra)

    def to_dataset(self) -> Any:
        """A Dataset with one (time, y, x) variable per band, like odc-stac's `load`: each
        in its own dtype (`scl` uint8 beside `red` uint16) with its `nodata`; plus one
        (time,) variable per `with_properties=` name."""
        import xarray as xr

        from daskcog.stac.items.asset_scenes import undeclared_nodata

        array = self.to_xarray()
        variables = {}
        for pos, (band, own) in enumerate(zip(self.band_names, self.band_dtypes(), strict=True)):
            var = array.isel(band=pos, drop=True)
            if var.dtype != own:
                var = var.astype(own)  # lossless: the stack's dtype was promoted from `own`
            fill = self.spec.fills[pos]
            asset, _ = self.spec.band_map[pos]
            declared = not undeclared_nodata(self.spec.assets[asset].scenes)
            var.attrs = {"nodata": _as_dtype(fill, own)} if declared else {}  # odc-stac's
            var.encoding["grid_mapping"] = "spatial_ref"
            variables[band] = var
        for request in self.with_properties:
            values = (
                request.fuse_steps(self._property_rows(request.key))
                if self._property_rows is not None
                else request.values(self._items or [], self.steps)
            )
            variables[request.output_name] = xr.DataArray(
                values,
                dims=("time",), coords={"time": array.time},
                attrs={"units": request.units}
                | ({} if request.nodata is None else {"nodata": request.fill_value}),
            )
        return xr.Dataset(variables)

    def explain(self) -> LoadPlan:
        """What a compute would read, per step and chunk, without reading a pixel."""
        from daskcog.stac.load_plan import explain

        return explain(self)


def step_properties(items: Sequence[ItemDict], steps: Grouping) -> dict[str, list[Any]]:
    """Scalar properties (and the id) that have one value within every step; proj:* fields
    describe each file's grid, not the step, and are left out."""
    names: dict[str, None] = {"id": None}
    for item in items:
        for key, value in (item.get("properties") or {}).items():
            if key != "datetime" and not key.startswith("proj:") and isinstance(value, _SCALARS):
                names.setdefault(key)
    out: dict[str, list[Any]] = {}
    for key in names:
        values: list[Any] = []
        for members in steps.members:
            seen = {_value(items[i], key) for i in members}
            if len(seen) != 1:
                break
            values.append(seen.pop())
        else:
            if any(v is not None for v in values):
                out[key] = values
    return out


def _value(item: ItemDict, key: str) -> Any:
    if key == "id":
        return item_id(item)
    value = (item.get("properties") or {}).get(key)
    return value if isinstance(value, _SCALARS) else None


def _as_dtype(value: float, dtype: np.dtype) -> Any:
    """A fill value as a plain number of the band's dtype (an int for integer bands)."""
    if dtype.kind == "f":
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return value
    return dtype.type(value).item()


@dataclass(frozen=True)
class PropertyRequest:
    """One `with_properties=` entry: an item property loaded as a (time,) variable, fused
    over a step's items as odc-stac fuses them (one value: it; strings: joined with
    commas; numbers: the mean of the finite ones)."""

    key: str
    name: str | None = None
    dtype: str = "float32"
    nodata: float | None = None
    units: str = "1"
    fuser: Callable[[Sequence[Any]], Any] | None = None

    @property
    def output_name(self) -> str:
        if self.name is not None:
            return self.name
        return self.key.replace(".", "_").replace(":", "_").replace("-", "_")

    @property
    def fill_value(self) -> Any:
        dtype = np.dtype(self.dtype)
        if self.nodata is not None:
            return dtype.type(self.nodata)
        return dtype.type(math.nan) if dtype.kind == "f" else dtype.type(0)

    def values(self, items: Sequence[ItemDict], steps: Grouping) -> np.ndarray:
        """One value per step from the items' properties."""
        return self.fuse_steps(
            [(items[i].get("properties") or {}).get(self.key) for i in members]
            for members in steps.members
        )

    def fuse_steps(self, per_step: Iterable[Sequence[Any]]) -> np.ndarray:
        """One value per step from each step's values (None where an item lacks it)."""
        fuse = self.fuser or _fuse
        out = []
        for values in per_step:
            found = [v for v in values if v is not None]
            value = fuse(found) if found else None
            out.append(self.fill_value if value is None else value)
        return np.array(out, dtype=self.dtype)


def _fuse(values: Sequence[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    if isinstance(values[0], str):
        return ",".join(str(v) for v in values)
    numbers = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(numbers) / len(numbers) if numbers else None


_REQUEST_FIELDS = ("key", "name", "dtype", "nodata", "units", "fuser")


def property_requests(value: Any) -> tuple[PropertyRequest, ...]:
    """odc-stac's `with_properties=`: property names, or dicts with `key` and optionally
    name, dtype, nodata, units, fuser."""
    if value is None:
        return ()
    if isinstance(value, str | Mapping):
        value = [value]
    out = []
    for v in value:
        if isinstance(v, str):
            out.append(PropertyRequest(v))
        elif isinstance(v, Mapping):
            unknown = sorted(set(v) - set(_REQUEST_FIELDS))
            if "key" not in v or unknown:
                raise TypeError(
                    f"with_properties entry {dict(v)!r}: needs 'key' and may have "
                    f"{', '.join(_REQUEST_FIELDS[1:])}"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                )
            out.append(PropertyRequest(**dict(v)))
        else:
            raise TypeError(f"with_properties= takes names or dicts; got {v!r}")
    return tuple(out)
