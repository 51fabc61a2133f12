"""The commands' work: info, stats, mosaic and demo, each a function of plain values.

`daskcog.cli.app` parses the line and calls these; they open data, run Dask
(on the session `daskcog.cli.cluster.get_client` gives) and hand results to
`daskcog.cli.output` for printing. Each returns the exit code.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from daskcog.cli.output import (
    ChunkProgress,
    StageProgressBars,
    info_lines,
    mib,
    say_to,
    stats_table,
)
from georeader.errors import GeoreaderError

EXIT_OK = 0
STATS_CHUNKS = 1024
"""Chunk side for stats and the demo: 4 tiles of 512 amortise a task's overhead."""


# -- info ----------------------------------------------------------------------------
def describe_file(url: str, store_options: dict[str, Any]) -> dict[str, Any]:
    """What `daskcog info` prints, as a dict (header only, no pixel reads)."""
    from daskcog.runtime.io_loop import run_sync
    from daskcog.runtime.reader_cache import CACHE
    from georeader import COMPRESSION_NAMES, AsyncGeoTIFFReader, parse_location
    from georeader.io import check_store_options

    check_store_options(url, store_options)
    location = parse_location(url)
    opened = run_sync(CACHE.opened(location.url, store_options))
    reader = AsyncGeoTIFFReader.from_opened(opened)
    base = opened.levels[0].data_ifd
    tiled = base.tile_width is not None and base.tile_offsets is not None
    block_h, block_w = reader.block_shape
    compression = int(base.compression)
    layout = reader.layout
    crs = reader.crs
    mask = (
        "internal mask"
        if opened.levels[0].mask_ifd is not None
        else (f"alpha band {opened.alpha_index + 1}" if opened.alpha_index is not None else "none")
    )
    info: dict[str, Any] = {
        "url": location.url,
        "width": reader.width,
        "height": reader.height,
        "bands": reader.count,
        "dtype": str(reader.dtype),
        "nodata": reader.nodata,
        "mask": mask,
        "crs": None if crs is None else (crs.to_string()),
        "crs_name": None if crs is None else crs.name,
        "transform": list(reader.transform)[:6],
        "resolution": list(reader.res),
        "bounds": list(reader.bounds),
        "tiled": tiled,
        "block": [block_h, block_w],
        "tiles": ([-(-reader.height // block_h), -(-reader.width // block_w)] if tiled else None),
        "compression": COMPRESSION_NAMES.get(compression, f"code {compression}"),
        "predictor": int(base.predictor or 1),
        "interleave": "band" if int(base.planar_configuration) == 2 else "pixel",
        "overviews": [[lvl.width, lvl.height] for lvl in opened.levels[1:]],
        "route": layout.route,
        "route_reasons": list(layout.reasons),
        "exact": layout.exact,
        "layout": layout.describe(),
    }
    if location.is_local:
        with contextlib.suppress(OSError):
            info["file_size"] = os.path.getsize(location.local_path)
    return info


def info(url: str, *, as_json: bool, store_options: dict[str, Any]) -> int:
    described = describe_file(url, store_options)
    if as_json:
        print(json.dumps(described, indent=2))
        return EXIT_OK
    for line in info_lines(described):
        print(line)
    return EXIT_OK


# -- stats ---------------------------------------------------------------------------
def stats(
    url: str,
    *,
    overview: int,
    bands: Sequence[int] | None,
    bins: int,
    chunks: int,
    keep_fill: bool,
    as_json: bool,
    scheduler: str | None,
    store_options: dict[str, Any],
) -> int:
    import daskcog
    from daskcog.cli.cluster import get_client
    from daskcog.stats import band_stats, fill_is_missing

    out = sys.stderr if as_json else sys.stdout  # narration leaves stdout to the JSON
    say = say_to(out)
    geoarray = daskcog.open(
        url, chunks=chunks, overview_level=overview, bands=bands, **store_options
    )
    with get_client(scheduler, local=False) as session:
        say(
            f"{geoarray.data.npartitions} chunks of {url} (level {overview}, "
            f"{geoarray.width}x{geoarray.height}) on {session.description}"
        )
        start = time.perf_counter()
        results = band_stats(
            geoarray, bins=bins, ignore_fill=False if keep_fill else None,
            compute=session.compute,
        )
        elapsed = time.perf_counter() - start
    if as_json:
        print(
            json.dumps(
                {
                    "url": geoarray.source.url if geoarray.source is not None else url,
                    "overview_level": overview,
                    "shape": list(geoarray.shape),
                    "dtype": str(geoarray.dtype),
                    "nodata": geoarray.nodata,
                    "fill_value": geoarray.fill_value_default,
                    "scheduler": session.description,
                    "seconds": round(elapsed, 3),
                    "bands": [s.as_dict() for s in results],
                }
            )
        )
        return EXIT_OK
    value = f"{geoarray.fill_value_default:g}"
    fill = (
        f", fill value {value} counted" if keep_fill
        else ", pixels the file's mask or alpha hides left out" if geoarray.fills_masked
        else f", fill value {value} excluded" if fill_is_missing(geoarray)
        else f", {value} is data: no nodata, no mask"
    )
    say(
        f"statistics of valid pixels (nodata {geoarray.nodata}{fill}), {bins} bins, "
        f"{elapsed:.2f} s:"
    )
    for line in stats_table(results, out):
        say(line)
    return EXIT_OK


# -- mosaic --------------------------------------------------------------------------
def resolve_mosaic() -> Callable[..., Any] | None:
    """`daskcog.mosaic` when this installation has it (it lands separately), else None."""
    import daskcog

    candidate: Any = daskcog.mosaic if hasattr(daskcog, "mosaic") else None
    if candidate is None or not callable(candidate):
        try:
            module = importlib.import_module("daskcog.mosaics.mosaic")
        except ImportError:
            return None
        candidate = getattr(module, "mosaic", None)
    return candidate if callable(candidate) else None


def write_mosaic(
    urls: Sequence[str],
    output: Path | str,
    session: Any,
    mosaic_kwargs: dict[str, Any],
    write_kwargs: dict[str, Any],
    say: Callable[[str], None],
    stream: IO[str],
) -> Path | str:
    mosaic = resolve_mosaic()
    if mosaic is None:
        raise GeoreaderError("daskcog.mosaic is not available in this installation of daskcog")
    result = mosaic(list(urls), **{k: v for k, v in mosaic_kwargs.items() if v is not None})
    say(f"mosaic: {result!r}")
    start = time.perf_counter()
    result.to_cog(
        output, scheduler=session.scheduler, progress=ChunkProgress(stream),
        finish_progress=StageProgressBars(stream), **write_kwargs,
    )
    size = f" ({mib(output.stat().st_size)})" if isinstance(output, Path) else ""
    say(f"wrote {output}{size} in {time.perf_counter() - start:.1f} s")
    return output


def check_mosaic_arguments(
    urls: Sequence[str],
    output: Path | str,
    mosaic_kwargs: dict[str, Any],
    write_kwargs: dict[str, Any],
    store_options: dict[str, Any],
) -> None:
    """Everything `daskcog mosaic` can check without reading a pixel, before a cluster
    starts (~6 s): the inputs are given and local ones exist, the method and overview
    resampling are known, the store options are the stores' own, the output's folder
    exists and is writable. A mistake is a usage error (exit 2) naming the argument."""
    import click

    from daskcog.mosaics.methods import get_method
    from georeader import parse_location
    from georeader.errors import InvalidURLError
    from georeader.io import check_sources_options
    from georeader.write import WriteError, resampling_enum

    if not urls:
        raise click.UsageError("give the files to mosaic: daskcog mosaic URL... -o OUT.tif")
    for url in urls:
        try:
            location = parse_location(url)
        except InvalidURLError as exc:
            raise click.BadParameter(str(exc), param_hint="URL") from None
        if location.is_local and not os.path.isfile(location.local_path):
            raise click.BadParameter(f"{location.local_path}: no such file", param_hint="URL")
    if mosaic_kwargs.get("method") is not None:
        try:
            get_method(mosaic_kwargs["method"])
        except GeoreaderError as exc:
            raise click.BadParameter(str(exc), param_hint="'--method'") from None
    try:
        resampling_enum(write_kwargs.get("resampling", "nearest"))
    except WriteError as exc:
        raise click.BadParameter(str(exc), param_hint="'--overview-resampling'") from None
    check_sources_options(urls, store_options)
    if isinstance(output, Path):
        folder = output.parent
        if output.is_dir():
            raise click.BadParameter(
                f"{output} is a folder; name the output file", param_hint="'-o'"
            )
        if not folder.is_dir():
            raise click.BadParameter(
                f"{output}: the output folder {folder} does not exist", param_hint="'-o'"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise click.BadParameter(
                f"{output}: the output folder {folder} is not writable", param_hint="'-o'"
            )


def mosaic(
    urls: Sequence[str],
    *,
    output: str,
    mosaic_kwargs: dict[str, Any],
    write_kwargs: dict[str, Any],
    scheduler: str | None,
    store_options: dict[str, Any],
) -> int:
    from daskcog.cli.cluster import get_client

    if resolve_mosaic() is None:
        raise GeoreaderError("daskcog.mosaic is not available in this installation of daskcog")
    from georeader.io import is_store_url

    # an object-store URL is uploaded when the COG is finished, with the --store-option options
    path: Path | str = output if is_store_url(output) else Path(output).expanduser()
    check_mosaic_arguments(urls, path, mosaic_kwargs, write_kwargs, store_options)
    if isinstance(path, str):
        write_kwargs = {**write_kwargs, "store_options": store_options}
    say = say_to(sys.stdout)
    with get_client(scheduler, local=True) as session:
        say(f"running on {session.description}")
        write_mosaic(
            urls, path, session, {**mosaic_kwargs, **store_options}, write_kwargs, say, sys.stderr
        )
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------
def demo(*, workdir: Path | None, size: int, count: int, scheduler: str | None) -> int:
    import daskcog
    from daskcog.cli import demo as samples
    from daskcog.cli.cluster import get_client
    from daskcog.stats import band_stats_many

    say = say_to(sys.stdout)
    begin = time.perf_counter()
    workdir = (workdir or samples.DEFAULT_WORKDIR).expanduser().absolute()
    spec = samples.SceneSpec(size=size, count=count)
    say(f"daskcog demo in {workdir}")
    start = time.perf_counter()
    paths, reused = samples.make_sample_cogs(workdir, spec, say=lambda s: say("  " + s))
    if reused:
        say(
            f"[1/4] sample COGs: reusing {len(paths)} files ({spec.size}x{spec.size} {spec.dtype}, "
            f"DEFLATE, {spec.tile}-pixel tiles, overviews, nodata {samples.NODATA})"
        )
    else:
        say(f"[1/4] sample COGs written in {time.perf_counter() - start:.1f} s")
    outputs = list(paths)
    with get_client(scheduler, local=True) as session:
        say(f"[2/4] Dask: {session.description}")
        urls = [p.as_uri() for p in paths]
        arrays = [daskcog.open(u, chunks=STATS_CHUNKS) for u in urls]
        chunks = sum(a.data.npartitions for a in arrays)
        say(
            f"[3/4] stats of {len(arrays)} files ({chunks} chunks, 2 passes) "
            "with daskcog.stats.band_stats_many"
        )
        start = time.perf_counter()
        results = band_stats_many(arrays, bins=64, compute=session.compute)
        say(f"  done in {time.perf_counter() - start:.1f} s")
        rows = [(f"{p.name}:{s.band}", s) for p, st in zip(paths, results, strict=True) for s in st]
        for line in stats_table(
            [s for _, s in rows], sys.stdout, [r for r, _ in rows], "file:band"
        ):
            say(line)
        stats_path = workdir / "stats.json"
        stats_path.write_text(
            json.dumps(
                {p.name: [s.as_dict() for s in st] for p, st in zip(paths, results, strict=True)},
                indent=1,
            )
        )
        outputs.append(stats_path)
        mosaic_path = workdir / "mosaic.tif"
        if resolve_mosaic() is None:
            say("[4/4] mosaic: skipped, daskcog.mosaic is not available in this installation yet")
        else:
            say(f"[4/4] mosaic of {len(urls)} files into a COG")
            write_mosaic(
                urls,
                mosaic_path,
                session,
                {},
                {"resampling": "average"},
                lambda s: say("  " + s),
                sys.stderr,
            )
            outputs.append(mosaic_path)
    say("outputs:")
    for path in outputs:
        say(f"  {path}")
    say(f"open one: daskcog.open({urls[0]!r}, chunks={STATS_CHUNKS})")
    say(f"demo finished in {time.perf_counter() - begin:.1f} s")
    return EXIT_OK
