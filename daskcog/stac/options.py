"""The options of one `daskcog.load` call, as one plain value.

`load` takes them as keywords (odc-stac's names, documented there), checks nothing
itself, and hands this value to the loader of its input: items (`load._load_items`)
or a stac-geoparquet file (`geoparquet.load_geoparquet`). The store options travel
beside it, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daskcog.mosaics import grouping
from daskcog.mosaics.masks import Mask
from daskcog.mosaics.methods import MethodLike
from daskcog.runtime.io_loop import LoopChoice
from daskcog.stac.output_grid import GridRequest
from daskcog.stac.stac_stack import PropertyRequest
from georeader.geo import Bounds
from georeader.io import RetryPolicy, check_sources_options, store_kind

ODC_NOT_SUPPORTED: dict[str, str] = {
    "pool": "daskcog always builds a Dask graph; choose threads with dask.config.set("
    "scheduler='threads', num_workers=N) or a distributed Client",
    "driver": "daskcog reads GeoTIFFs with its own reader; there is no reader driver to choose",
    "fuse_func": "use method= ('first', 'last', 'min', 'max', 'mean', 'median', 'count', a "
    "percentile 'p25' / daskcog.Quantile(0.25), or a MosaicMethod subclass)",
    "align": "odc-stac's deprecated align= is anchor= in pixel fractions: give anchor=",
    "use_overviews": "daskcog reads the overview that matches the output resolution, as GDAL "
    "does; load at the file's resolution to read full-resolution pixels",
    "debug": "use stack.explain() for what a compute would read",
    "dask_chunks": "datacube's dask_chunks= is chunks=",
    "group_by": "datacube's group_by= is groupby=",
    "skip_broken_datasets": "datacube's skip_broken_datasets=True is errors='nodata'",
}
"""odc-stac's (and datacube's) keywords daskcog cannot take with the same meaning, and what
to use instead: a TypeError at call time says so."""


@dataclass(frozen=True)
class LoadOptions:
    """`daskcog.load`'s keywords but the items and the store options (see `load`)."""

    bands: str | Sequence[str] | None
    crs: Any
    resolution: float | tuple[float, float] | None
    bbox: Bounds | None
    bounds: Bounds | None
    like: Any
    groupby: grouping.Groupby | None
    method: MethodLike
    chunks: Any
    dtype: Any
    nodata: float | None
    resampling: str | Mapping[str, str]
    errors: str
    rescale: bool
    patch_url: Callable[[str], str] | None
    preserve_original_order: bool
    use_proj: bool
    batch_size: int | None
    warp_tolerance: float
    loop: LoopChoice
    grid: GridRequest = field(default_factory=GridRequest)
    """The grid keywords (odc-stac's and daskcog's), for `output_grid`."""
    with_properties: tuple[PropertyRequest, ...] = ()
    stac_cfg: Mapping[str, Any] | None = None
    """odc-stac's per-collection band configuration (`bands.apply_stac_cfg`)."""
    retry: RetryPolicy | None = None
    """How header fetches and every read of the graph retry (None: georeader's default)."""
    masks: tuple[Mask, ...] = ()
    """`mask=`: quality-band masks applied to each item's data before the method."""


def check_asset_options(
    hrefs: Iterable[str], store_options: dict[str, Any],
    patch_url: Callable[[str], str] | None, keywords: Collection[str],
) -> None:
    """The keywords `load` passes on as store options, checked at call time against the
    stores of the assets' URLs (`georeader.store.check_store_options`, once per kind of
    store): a misspelt or odc-stac keyword is a TypeError naming it (and the close one of
    `keywords`, load's own), before any header is read or graph built. With `patch_url`,
    one patched URL per kind is checked too (a signer may turn one scheme into another)."""
    firsts: dict[str, str] = {}
    for href in hrefs:
        firsts.setdefault(store_kind(href), href)
    urls = list(firsts.values())
    if patch_url is not None:
        urls += [patch_url(u) for u in urls]
    check_sources_options(urls, store_options, entry_keywords=keywords)
