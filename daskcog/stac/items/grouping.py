"""Which items share an output step (`groupby=`), and in which order they are fused.

Group keys follow odc-stac so a switch keeps the same steps:

* "time": the exact timestamp; "id": one step per item; "all": one step of every item
  (a composite over the whole period);
* "solar_day": the UTC time shifted by whole hours of longitude
  (int(lon / 15)), then its date: one overpass of a sun-synchronous satellite
  stays one step even when it crosses midnight UTC;
* "day" / "month": the UTC date or month;
* any other string: that item property;
* a callable: odc-stac's `f(item, parsed, idx) -> key` (a pystac Item, a
  `ParsedItemView` with odc-stac's ParsedItem attributes most callables use, the
  item's position), or daskcog's `f(item_dict) -> key`; which one is told by the
  number of positional arguments the callable takes.

Steps are sorted by key. Inside a step, items are sorted by (datetime, id), as
odc-stac does, unless `preserve_original_order=True`; the first item has the
highest priority (it wins for method="first"). A step's time coordinate is its
first item's datetime (odc-stac's rule).
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from daskcog.stac.items.item_dicts import ItemDict, StacError

Groupby = str | Callable[..., Hashable]
TIME_GROUPS = ("time", "solar_day", "day", "month", "id", "all")


@dataclass(frozen=True)
class Grouping:
    """Steps: their keys, the item indices of each (priority order), their times."""

    keys: tuple[Any, ...]
    members: tuple[tuple[int, ...], ...]
    times: tuple[np.datetime64, ...]


def solar_date(when: dt.datetime, lon: float) -> dt.date:
    """odc-stac's solar day: the UTC time shifted by whole hours of longitude."""
    return (when + dt.timedelta(hours=int(lon / 15))).date()


def group_keys(
    groupby: Groupby | None,
    items: Sequence[ItemDict],
    times: Sequence[dt.datetime],
    lons: Sequence[float],
) -> list[Any]:
    """One group key per item."""
    if groupby is None or groupby == "id":
        return list(range(len(items)))
    if groupby == "all":
        return [0] * len(items)
    if callable(groupby):
        if _takes_three(groupby):
            return [
                groupby(_pystac_item(item), ParsedItemView(item, when), idx)
                for idx, (item, when) in enumerate(zip(items, times, strict=True))
            ]
        return [groupby(item) for item in items]
    if groupby == "time":
        return list(times)
    if groupby == "solar_day":
        return [solar_date(t, lon) for t, lon in zip(times, lons, strict=True)]
    if groupby == "day":
        return [t.date() for t in times]
    if groupby == "month":
        return [(t.year, t.month) for t in times]
    if not isinstance(groupby, str):
        raise StacError(f"groupby must be a string or a callable; got {type(groupby).__name__}")
    return [(item.get("properties") or {}).get(groupby) for item in items]


def group(
    keys: Sequence[Any],
    times: Sequence[dt.datetime],
    ids: Sequence[str],
    *,
    preserve_original_order: bool = False,
) -> Grouping:
    """Steps sorted by key; items inside a step by (datetime, id) or in input order."""
    members: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    order = list(members)
    try:
        order.sort(key=_sort_key)
    except TypeError as exc:
        raise StacError(f"group keys cannot be sorted: {exc}") from exc
    steps: list[tuple[int, ...]] = []
    for key in order:
        idx = members[key]
        if not preserve_original_order:
            idx = sorted(idx, key=lambda i: (times[i], ids[i]))
        steps.append(tuple(idx))
    return Grouping(
        keys=tuple(order),
        members=tuple(steps),
        times=tuple(np.datetime64(times[s[0]], "ns") for s in steps),
    )


def _sort_key(key: Any) -> Any:
    return (key is None, key if key is not None else 0)


def _takes_three(func: Callable[..., Any]) -> bool:
    """Whether `func` takes odc-stac's three positional arguments (item, parsed, idx)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: daskcog's one argument
        return False
    try:
        signature.bind(None, None, None)
    except TypeError:
        return False
    try:
        signature.bind(None)
    except TypeError:
        return True
    return True  # f(*args) takes either: odc-stac's, the name switching users bring


def _pystac_item(item: ItemDict) -> Any:
    try:
        import pystac
    except ImportError:  # pragma: no cover - pystac comes with the stac extra
        return item
    return pystac.Item.from_dict(dict(item), preserve_dict=True)


class ParsedItemView:
    """What odc-stac's `ParsedItem` offers a groupby callable: `id`, `collection` (with
    `.name`), `datetime`, `datetime_range`, `nominal_datetime` (naive UTC), `geometry`
    (the GeoJSON dict), `mid_longitude` (the geometry's centroid, as odc-stac), `solar_date`,
    `solar_date_at(lon)` and `properties`."""

    def __init__(self, item: ItemDict, when: dt.datetime) -> None:
        props = item.get("properties") or {}
        self.id = str(item.get("id", ""))
        self.collection = _Named(str(item.get("collection") or ""))
        self.properties = props
        self.geometry = item.get("geometry")
        self.nominal_datetime = when
        self.datetime = when if props.get("datetime") else None
        self.datetime_range = (_when(props.get("start_datetime")), _when(props.get("end_datetime")))

    @property
    def mid_longitude(self) -> float | None:
        """The longitude of the geometry's centroid (None without a geometry)."""
        if not self.geometry:
            return None
        from odc.geo.geom import Geometry

        ((lon, _),) = Geometry(self.geometry, "epsg:4326").centroid.points
        return float(lon)

    @property
    def solar_date(self) -> dt.datetime:
        lon = self.mid_longitude
        return self.nominal_datetime if lon is None else self.solar_date_at(lon)

    def solar_date_at(self, lon: float) -> dt.datetime:
        """odc-stac's solar time: UTC shifted by whole hours of longitude."""
        return self.nominal_datetime + dt.timedelta(hours=int(lon / 15))

    def __repr__(self) -> str:
        return f"ParsedItemView(id={self.id!r}, nominal_datetime={self.nominal_datetime!r})"


@dataclass(frozen=True)
class _Named:
    name: str


def _when(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
