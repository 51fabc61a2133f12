"""Which inputs share an output step, and in which order they are fused: the one set of
groupby rules of `daskcog.load` (STAC items and stac-geoparquet rows) and `daskcog.stack`.

Group keys follow odc-stac, so a switch keeps the same steps:

* "id" (and None): one step per input, in input order - odc-stac's "id" is the item's
  position (`_groupby_id` returns the index), not its id string; for a stac-geoparquet
  file the row number, for `daskcog.stack` the source's position;
* "all": one step of every input (a composite over the whole period);
* "time": the exact timestamp;
* "solar_day": the UTC time shifted by whole hours of longitude (int(lon / 15)), then its
  date: one overpass of a sun-synchronous satellite stays one step even when it crosses
  midnight UTC;
* "day" / "month": the UTC date or month;
* any other string: that item property (a column of a stac-geoparquet file);
* a callable: odc-stac's `f(item, parsed, idx) -> key` (a pystac Item, a
  `ParsedItemView` with odc-stac's ParsedItem attributes most callables use, the
  item's position), or daskcog's `f(item_dict) -> key`; which one is told by the
  number of positional arguments the callable takes. `daskcog.stack` calls it on each
  source's URL, or takes a list of keys.

Steps are sorted by key, inputs without a key (None, NaN, NaT) last; keys that cannot be
compared are a GroupbyError. Inside a step, items and rows are sorted by (datetime, id),
as odc-stac does, unless `preserve_original_order=True` (items); stack's sources, which
have no datetime, keep their order. The first input of a step has the highest priority
(it wins for method="first"). A step's time coordinate is its first item's datetime
(odc-stac's rule).

Items are keyed one by one (`group_keys`, `group`); stac-geoparquet rows on whole Arrow /
numpy columns (`row_keys`, `plan_steps`), so planning 100,000 rows creates a few Python
objects per step; both follow the rules above, and a test loads the same catalogue both
ways.
"""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from georeader.errors import GeoreaderError

ItemDict = Mapping[str, Any]
Groupby = str | Callable[..., Hashable]
TIME_GROUPS = ("time", "solar_day", "day", "month", "id", "all")


class GroupbyError(GeoreaderError, ValueError):
    """A groupby that cannot give steps: unsortable keys, an unknown column, a wrong type."""


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
        raise GroupbyError(
            f"groupby must be a string or a callable; got {type(groupby).__name__}"
        )
    properties = [item.get("properties") or {} for item in items]
    if items and not any(groupby in p for p in properties):
        raise GroupbyError(_unknown_property(groupby, properties))
    return [p.get(groupby) for p in properties]


WORDS = ("id", "all", "time", "solar_day", "day", "month")
"""The groupby words that are not an item property."""


def _unknown_property(groupby: str, properties: Sequence[dict[str, Any]]) -> str:
    """Why a property no item has is refused: every item would get the key None, so all of
    them would fall into one step (odc-stac's result), and a misspelt "solarday" would
    silently mosaic a whole season into one image. The same as a stac-geoparquet file
    without that column. Some items without it are fine (their step comes last)."""
    known = sorted({k for p in properties for k in p})
    close = difflib.get_close_matches(groupby, [*WORDS, *known], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"groupby={groupby!r}{hint}: no item has that property, so every item would fall "
        f"into one step; give one of {list(WORDS)}, a callable, or a property the items "
        f"have: {known[:20]}"
    )


def group(
    keys: Sequence[Any],
    times: Sequence[Any] | None,
    ids: Sequence[str] | None,
    *,
    preserve_original_order: bool = False,
) -> Grouping:
    """Steps sorted by key (missing keys last); inputs inside a step by (datetime, id), or
    in input order (`preserve_original_order`, or no `times`: stack's sources).
    `Grouping.times` is empty without `times`."""
    members: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    order = list(members)
    try:
        order.sort(key=_sort_key)
    except TypeError as exc:
        raise GroupbyError(
            f"group keys cannot be sorted ({exc}): give keys of one type"
        ) from None
    steps: list[tuple[int, ...]] = []
    for key in order:
        idx = members[key]
        if not preserve_original_order and times is not None and ids is not None:
            idx = sorted(idx, key=lambda i: (times[i], ids[i]))
        steps.append(tuple(idx))
    return Grouping(
        keys=tuple(order),
        members=tuple(steps),
        times=() if times is None else tuple(np.datetime64(times[s[0]], "ns") for s in steps),
    )


def _sort_key(key: Any) -> Any:
    missing = missing_key(key)
    return (missing, 0 if missing else key)


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


# -- stac-geoparquet rows: the same rules on whole columns ----------------------------------
ROW_NUMBER = "__daskcog_row"
"""A column of row numbers that a chunk task's table of the file carries ("id" steps)."""


def row_times(table: Any) -> np.ndarray:
    import pyarrow.compute as pc

    column = table.column("datetime")
    if "start_datetime" in table.column_names:
        column = pc.coalesce(column, table.column("start_datetime"))
    return column.cast("timestamp[us]").to_numpy(zero_copy_only=False).astype("datetime64[us]")


def row_keys(groupby: Any, table: Any, lon: float | None = None) -> np.ndarray:
    """The group key of each row, computed on columns (odc-stac's rules, like `grouping`).

    `lon`: the output grid's longitude, odc-stac's solar day for every row (else each
    row's bbox centre)."""
    if groupby is None or groupby == "id":  # the row number (odc-stac's position)
        if ROW_NUMBER in table.column_names:  # a filtered table: the rows' numbers in the file
            return table.column(ROW_NUMBER).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.arange(table.num_rows, dtype=np.int64)
    if groupby == "all":
        return np.zeros(table.num_rows, dtype=np.int64)
    if callable(groupby):
        raise GroupbyError("groupby callables need item objects; a stac-geoparquet load takes "
                           "a string groupby")
    if groupby == "time":
        return row_times(table)
    if groupby == "day":
        return row_times(table).astype("datetime64[D]")
    if groupby == "month":
        return row_times(table).astype("datetime64[M]")
    if groupby == "solar_day":
        if lon is None:
            bbox = table.column("bbox")
            lons = (_field(bbox, "xmin") + _field(bbox, "xmax")) / 2
        else:
            lons = np.full(table.num_rows, float(lon))
        hours = np.trunc(lons / 15).astype("int64").astype("timedelta64[h]")
        return (row_times(table) + hours).astype("datetime64[D]")
    if groupby not in table.column_names:
        raise GroupbyError(
            f"groupby property {groupby!r} is not a column of the stac-geoparquet file"
        )
    return table.column(groupby).to_numpy(zero_copy_only=False)


def _field(struct: Any, name: str) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.struct_field(struct, name).to_numpy(zero_copy_only=False).astype(np.float64)


@dataclass(frozen=True)
class Step:
    key: Any
    first: int
    """Earliest time of the step's rows, microseconds since the epoch."""
    last: int


def plan_steps(
    groupby: Any, table: Any, lon: float | None = None
) -> tuple[list[Step], list[np.datetime64], list[np.ndarray]]:
    """Steps sorted by key; each with its rows' time range, its first item's time, and its
    row numbers (priority order)."""
    import pyarrow.compute as pc

    keys = row_keys(groupby, table, lon)
    times = row_times(table)
    # ties broken by id through its rank (Arrow sorts strings by their UTF-8 bytes, which is
    # code point order, as numpy's str): no array of 100,000 Python-sized strings
    ids = pc.rank(table.column("id"), tiebreaker="dense").to_numpy(zero_copy_only=False)
    present = np.array([not missing_key(k) for k in keys]) if keys.dtype == object else (
        ~np.isnat(keys) if keys.dtype.kind == "M" else np.ones(len(keys), bool))
    uniq, codes = np.unique(keys[present].astype(str) if keys.dtype == object else keys[present],
                            return_inverse=True)
    full = np.full(len(keys), len(uniq), dtype=np.int64)
    full[present] = codes
    order = np.lexsort((ids, times, full))
    bounds = np.flatnonzero(np.diff(full[order])) + 1
    steps: list[Step] = []
    first_times: list[np.datetime64] = []
    groups = np.split(order, bounds)
    for members in groups:
        code = int(full[members[0]])
        key = keys[members[0]] if code < len(uniq) else None
        span = times[members].astype("int64")
        steps.append(Step(plain_key(key), int(span.min()), int(span.max())))
        first_times.append(np.datetime64(times[members[0]], "ns"))
    return steps, first_times, groups


def missing_key(value: Any) -> bool:
    """An input without a group key (None, NaN): its step sorts last."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def plain_key(key: Any) -> Any:
    """A numpy scalar key as the Python value (datetimes stay numpy's)."""
    if isinstance(key, np.datetime64):
        return key
    return key.item() if isinstance(key, np.generic) else key
