"""StacStack: the GeoStack `daskcog.load` returns, with STAC names and item properties.

On top of `GeoStack` (the dask array, grid and CRS) it knows the output band
names, the steps' times and items, and turns them into xarray coordinates:
time / band / y / x, the CRS on `spatial_ref` (rioxarray reads it), and every
scalar item property that is the same for all items of a step (id, platform,
eo:cloud_cover, ...) as a non-dimension coordinate along time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import dask.array as da

from daskcog.mosaics.stack import GeoStack
from daskcog.stac.grouping import TIME_GROUPS, Grouping
from daskcog.stac.items import ItemDict, item_id

if TYPE_CHECKING:
    from daskcog.stac.explain import LoadPlan
    from daskcog.stac.graph import LoadSpec

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

    def to_xarray(self, name: str | None = None) -> Any:
        """A dask-backed DataArray (time, band, y, x) with item properties as coordinates."""
        out = super().to_xarray(name)
        extra: dict[str, Any] = {
            key: ("time", values)
            for key, values in self.properties.items()
            if key not in out.coords
        }
        if isinstance(self.groupby, str) and self.groupby not in TIME_GROUPS:
            extra.setdefault(self.groupby, ("time", list(self.steps.keys)))
        return out.assign_coords(extra)

    def to_dataset(self) -> Any:
        """A Dataset with one (time, y, x) variable per band, like odc-stac's `load`."""
        array = self.to_xarray()
        variables = {}
        for pos, band in enumerate(self.band_names):
            var = array.isel(band=pos, drop=True)
            fill = self.spec.fills[pos]
            var.attrs = {"nodata": fill}
            var.encoding["grid_mapping"] = "spatial_ref"
            variables[band] = var
        import xarray as xr

        return xr.Dataset(variables)

    def explain(self) -> LoadPlan:
        """What a compute would read, per step and chunk, without reading a pixel."""
        from daskcog.stac.explain import explain

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
