"""The `daskcog` command line: info, stats, mosaic, demo.

    daskcog info URL                       what a file is and how daskcog reads it
    daskcog stats URL [--json]             per-band statistics, computed on Dask
    daskcog mosaic URL... -o out.tif       mosaic into a COG on a local cluster
    daskcog demo                           sample COGs, stats and a mosaic, end to end

Global options (before or after the command): `--scheduler ADDRESS` uses a
running Dask scheduler (otherwise: a local cluster for mosaic and demo, the
threaded scheduler for info and stats); `--store-option KEY=VALUE` (repeatable,
VALUE parsed as JSON when it can be, e.g. `client_options={"allow_http":true}`)
passes obstore options; `--debug` shows tracebacks.

Errors are one line on stderr (`daskcog: error: ...`); exit codes are 0 (ok),
1 (runtime error), 2 (usage) and 130 (interrupted). `main()` ends with
`os._exit(code)` after closing any cluster, so a crash of a native dependency
while the interpreter shuts down (see ../shared/notes/dependencies.md) never
changes the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from georeader.errors import GeoreaderError

PROG = "daskcog"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATS_CHUNKS = 1024
"""Chunk side for stats and the demo: 4 tiles of 512 amortise a task's overhead."""


# -- entry points ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: run, flush, and leave with `os._exit` (see the module doc)."""
    code = run(argv)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; returns the exit code (never raises)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "command", None) is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: choose a command: info, stats, mosaic or demo", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into a line
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {error_line(exc, args.debug)}", file=sys.stderr)
        return EXIT_ERROR


class UsageError(Exception):
    """Arguments that parse but make no sense together (exit code 2)."""


def error_line(exc: BaseException, debug: bool = False) -> str:
    """One line for an error: our own messages as they are, others with their type."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, GeoreaderError | FileNotFoundError | PermissionError):
        return text or type(exc).__name__
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if debug else f"{line} (run with --debug for the traceback)"


# -- argument parsing ----------------------------------------------------------------
def parse_store_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def parse_resolution(text: str) -> float | tuple[float, float]:
    try:
        parts = [float(p) for p in text.replace(",", " ").split()]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and min(parts) > 0:
        return (parts[0], parts[1])
    raise argparse.ArgumentTypeError(f"expected a positive number or X,Y; got {text!r}")


def parse_bounds(text: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in text.replace(",", " ").split())
    except ValueError:
        parts = ()
    if len(parts) != 4 or parts[0] >= parts[2] or parts[1] >= parts[3]:
        raise argparse.ArgumentTypeError(
            f"expected LEFT,BOTTOM,RIGHT,TOP with left<right, bottom<top; got {text!r}"
        )
    left, bottom, right, top = parts
    return (left, bottom, right, top)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=default,
        help="address of a running Dask scheduler (tcp://host:8786); default: a local cluster "
        "for mosaic and demo, the threaded scheduler for info and stats",
    )
    group.add_argument(
        "--store-option",
        metavar="KEY=VALUE",
        dest="store_options",
        action="append",
        type=parse_store_option,
        default=default,
        help="obstore option, repeatable; VALUE is JSON when it parses "
        "(e.g. region=eu-west-1, client_options='{\"allow_http\":true}')",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default if suppress else False,
        help="show tracebacks",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Cloud-Optimized GeoTIFFs as Dask arrays: inspect, summarise, mosaic.",
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = commands.add_parser(
        "info", help="size, tiles, bands, CRS, overviews, how the file is read"
    )
    info.add_argument("url", help="path or URL (file://, s3://, gs://, az://, http(s)://)")
    info.add_argument("--json", action="store_true", help="print JSON")
    _global_options(info, suppress=True)
    info.set_defaults(func=cmd_info)

    stats = commands.add_parser(
        "stats", help="per-band min, max, mean, std, valid count, histogram"
    )
    stats.add_argument("url", help="path or URL")
    stats.add_argument(
        "--overview", type=int, default=0, metavar="N", help="overview level (0: full resolution)"
    )
    stats.add_argument(
        "--bands", type=_positive_int, nargs="+", metavar="B", help="1-based bands (default: all)"
    )
    stats.add_argument(
        "--bins", type=_positive_int, default=256, metavar="N", help="histogram bins (256)"
    )
    stats.add_argument(
        "--chunks",
        type=_positive_int,
        default=STATS_CHUNKS,
        metavar="N",
        help=f"chunk side in pixels ({STATS_CHUNKS})",
    )
    stats.add_argument(
        "--keep-fill", action="store_true", help="count pixels equal to the fill value as valid"
    )
    stats.add_argument("--json", action="store_true", help="print JSON (full histograms) on stdout")
    _global_options(stats, suppress=True)
    stats.set_defaults(func=cmd_stats)

    mosaic = commands.add_parser(
        "mosaic", help="mosaic files into one COG (on a local Dask cluster)"
    )
    mosaic.add_argument("urls", nargs="+", metavar="URL", help="input paths or URLs")
    mosaic.add_argument("-o", "--output", required=True, metavar="OUT.tif", help="output COG path")
    mosaic.add_argument("--crs", help="output CRS (default: the first file's)")
    mosaic.add_argument(
        "--resolution", type=parse_resolution, metavar="RES", help="output pixel size: X or X,Y"
    )
    mosaic.add_argument(
        "--bounds", type=parse_bounds, metavar="L,B,R,T", help="output bounds in the output CRS"
    )
    mosaic.add_argument("--method", help="mosaic method (default: daskcog.mosaic's)")
    _write_options(mosaic)
    _global_options(mosaic, suppress=True)
    mosaic.set_defaults(func=cmd_mosaic)

    demo = commands.add_parser(
        "demo", help="sample COGs, then stats and a mosaic on a local Dask cluster"
    )
    demo.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="folder for samples and outputs (default: ~/.cache/daskcog/demo)",
    )
    demo.add_argument(
        "--size",
        type=_positive_int,
        default=4096,
        metavar="N",
        help="sample width and height (4096)",
    )
    demo.add_argument(
        "--count", type=_positive_int, default=4, metavar="N", help="number of samples (4)"
    )
    _global_options(demo, suppress=True)
    demo.set_defaults(func=cmd_demo)
    return parser


def _write_options(parser: argparse.ArgumentParser) -> None:
    from daskcog.writing.write import COMPRESSIONS

    group = parser.add_argument_group("output options")
    group.add_argument(
        "--compress", default="deflate", choices=COMPRESSIONS, help="compression (deflate)"
    )
    group.add_argument(
        "--blocksize", type=_positive_int, default=512, metavar="N", help="tile size (512)"
    )
    group.add_argument(
        "--overview-resampling",
        default="nearest",
        metavar="METHOD",
        help="nearest (default), average, bilinear, ...",
    )


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(args.store_options or [])


def _out(args: argparse.Namespace) -> IO[str]:
    """Where narration goes: stderr when stdout carries JSON."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _say(stream: IO[str]) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    return say


# -- info ----------------------------------------------------------------------------
def describe_file(url: str, store_options: dict[str, Any]) -> dict[str, Any]:
    """What `daskcog info` prints, as a dict (header only, no pixel reads)."""
    from daskcog.reading.io_loop import run_sync
    from daskcog.reading.reader_cache import CACHE
    from georeader import tile_decode
    from georeader.async_geotiff_reader import AsyncGeoTIFFReader
    from georeader.store import parse_location

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
        "compression": tile_decode.COMPRESSION_NAMES.get(compression, f"code {compression}"),
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


def _read_how(info: dict[str, Any]) -> str:
    if info["route"] == "native":
        how = "read exactly by daskcog's async reader (async-tiff fetch, imagecodecs decode)"
        if not info["exact"]:
            how = "read by daskcog's async reader; YCbCr JPEG decoders differ from GDAL by a few DN"
    else:
        how = "routed around async-tiff: read through rasterio (GDAL) in worker threads"
    return f"{how} [{info['layout']}]"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


def cmd_info(args: argparse.Namespace) -> int:
    info = describe_file(args.url, _options(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    rows = [
        (
            "size",
            f"{info['width']} x {info['height']} pixels, {info['bands']} band"
            f"{'s' if info['bands'] != 1 else ''}, {info['dtype']}",
        ),
        (
            "tiles",
            (
                f"{info['block'][1]} x {info['block'][0]} "
                f"({info['tiles'][1]} x {info['tiles'][0]} = "
                f"{info['tiles'][0] * info['tiles'][1]} tiles)"
                if info["tiled"]
                else f"none: strips of {info['block'][0]} rows (not tiled)"
            ),
        ),
        ("nodata", "none" if info["nodata"] is None else f"{info['nodata']:g}"),
        ("mask", info["mask"]),
        ("crs", "none" if info["crs"] is None else f"{info['crs']} ({info['crs_name']})"),
        ("resolution", ", ".join(f"{v:.10g}" for v in info["resolution"])),
        ("bounds", ", ".join(f"{v:.10g}" for v in info["bounds"])),
        (
            "compression",
            f"{info['compression']}"
            f"{', predictor ' + str(info['predictor']) if info['predictor'] != 1 else ''}, "
            f"{info['interleave']}-interleaved",
        ),
        (
            "overviews",
            (f"{len(info['overviews'])}: " + ", ".join(f"{w}x{h}" for w, h in info["overviews"]))
            if info["overviews"]
            else "none",
        ),
        ("route", _read_how(info)),
    ]
    if "file_size" in info:
        rows.append(("file size", _mib(info["file_size"])))
    print(info["url"])
    for name, value in rows:
        print(f"  {name:<12}{value}")
    return EXIT_OK


# -- stats ---------------------------------------------------------------------------
_SPARK = "▁▂▃▄▅▆▇█"
_ASCII = " .:-=+*#"


def sparkline(counts: Sequence[int], width: int = 32, stream: IO[str] | None = None) -> str:
    """A compact histogram: `counts` summed into `width` columns, one character each."""
    import numpy as np

    values = np.asarray(counts, dtype=np.float64)
    if values.size == 0 or values.sum() == 0:
        return ""
    groups = np.array_split(values, min(width, values.size))
    sums = np.array([g.sum() for g in groups])
    chars = _SPARK
    encoding = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        chars.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        chars = _ASCII
    levels = np.ceil(sums / sums.max() * (len(chars) - 1)).astype(int)
    return "".join(chars[i] for i in levels)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.6g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4g}"


def stats_table(
    stats: Sequence[Any],
    stream: IO[str] | None = None,
    labels: Sequence[str] | None = None,
    label_header: str = "band",
) -> list[str]:
    """The stats table: a header and one row per band (labelled by band, or by `labels`)."""
    labels = [str(s.band) for s in stats] if labels is None else list(labels)
    width = max([len(label_header), *(len(label) for label in labels)]) + 2
    lines = [
        f"  {label_header:<{width}}{'valid':>20}{'min':>10}{'max':>10}{'mean':>12}{'std':>12}"
        "  histogram"
    ]
    for label, s in zip(labels, stats, strict=True):
        valid = f"{s.count:,} ({100 * s.valid_fraction:.1f}%)"
        lines.append(
            f"  {label:<{width}}{valid:>20}{_fmt(s.min):>10}{_fmt(s.max):>10}{_fmt(s.mean):>12}"
            f"{_fmt(s.std):>12}  {sparkline(s.histogram, stream=stream)}"
        )
    return lines


def cmd_stats(args: argparse.Namespace) -> int:
    import daskcog
    from daskcog.cli.cluster import get_client
    from daskcog.stats import band_stats

    out = _out(args)
    say = _say(out)
    geoarray = daskcog.open(
        args.url,
        chunks=args.chunks,
        overview_level=args.overview,
        bands=args.bands,
        **_options(args),
    )
    with get_client(args.scheduler, local=False) as session:
        say(
            f"{geoarray.data.npartitions} chunks of {args.url} (level {args.overview}, "
            f"{geoarray.width}x{geoarray.height}) on {session.description}"
        )
        start = time.perf_counter()
        stats = band_stats(
            geoarray, bins=args.bins, ignore_fill=not args.keep_fill, compute=session.compute
        )
        elapsed = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {
                    "url": geoarray.source.url if geoarray.source is not None else args.url,
                    "overview_level": args.overview,
                    "shape": list(geoarray.shape),
                    "dtype": str(geoarray.dtype),
                    "nodata": geoarray.nodata,
                    "fill_value": geoarray.fill_value_default,
                    "scheduler": session.description,
                    "seconds": round(elapsed, 3),
                    "bands": [s.as_dict() for s in stats],
                }
            )
        )
        return EXIT_OK
    fill = "" if args.keep_fill else f", fill value {geoarray.fill_value_default:g} excluded"
    say(
        f"statistics of valid pixels (nodata {geoarray.nodata}{fill}), {args.bins} bins, "
        f"{elapsed:.2f} s:"
    )
    for line in stats_table(stats, out):
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


class ProgressLine:
    """A text progress bar for `progress(done, total)` callbacks (chunk writes)."""

    def __init__(self, stream: IO[str], label: str = "writing", width: int = 30) -> None:
        self.stream, self.label, self.width = stream, label, width
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        filled = int(self.width * done / max(total, 1))
        self.stream.write(
            f"\r[{'#' * filled:<{self.width}}] {100 * done // max(total, 1):3d}% "
            f"{done}/{total} chunks {self.label} | {now - self.start:.1f}s"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def write_mosaic(
    urls: Sequence[str],
    output: Path,
    session: Any,
    mosaic_kwargs: dict[str, Any],
    write_kwargs: dict[str, Any],
    say: Callable[[str], None],
    stream: IO[str],
) -> Path:
    mosaic = resolve_mosaic()
    if mosaic is None:
        raise GeoreaderError("daskcog.mosaic is not available in this installation of daskcog")
    result = mosaic(list(urls), **{k: v for k, v in mosaic_kwargs.items() if v is not None})
    say(f"mosaic: {result!r}")
    start = time.perf_counter()
    result.to_cog(
        output,
        scheduler=session.scheduler,
        progress=ProgressLine(stream, "written"),
        **write_kwargs,
    )
    say(f"wrote {output} ({_mib(output.stat().st_size)}) in {time.perf_counter() - start:.1f} s")
    return output


def cmd_mosaic(args: argparse.Namespace) -> int:
    from daskcog.cli.cluster import get_client

    if resolve_mosaic() is None:
        raise GeoreaderError("daskcog.mosaic is not available in this installation of daskcog")
    output = Path(args.output).expanduser()
    say = _say(sys.stdout)
    mosaic_kwargs = dict(
        crs=args.crs, resolution=args.resolution, bounds=args.bounds, method=args.method
    )
    mosaic_kwargs.update(_options(args))
    with get_client(args.scheduler, local=True) as session:
        say(f"running on {session.description}")
        write_mosaic(
            args.urls,
            output,
            session,
            mosaic_kwargs,
            dict(
                compress=args.compress,
                blocksize=args.blocksize,
                resampling=args.overview_resampling,
            ),
            say,
            sys.stderr,
        )
    return EXIT_OK


# -- demo ----------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    import daskcog
    from daskcog.cli import demo
    from daskcog.cli.cluster import get_client
    from daskcog.stats import band_stats_many

    say = _say(sys.stdout)
    begin = time.perf_counter()
    workdir = (args.workdir or demo.DEFAULT_WORKDIR).expanduser().absolute()
    spec = demo.SceneSpec(size=args.size, count=args.count)
    say(f"daskcog demo in {workdir}")
    start = time.perf_counter()
    paths, reused = demo.make_sample_cogs(workdir, spec, say=lambda s: say("  " + s))
    if reused:
        say(
            f"[1/4] sample COGs: reusing {len(paths)} files ({spec.size}x{spec.size} {spec.dtype}, "
            f"DEFLATE, {spec.tile}-pixel tiles, overviews, nodata {demo.NODATA})"
        )
    else:
        say(f"[1/4] sample COGs written in {time.perf_counter() - start:.1f} s")
    outputs = list(paths)
    with get_client(args.scheduler, local=True) as session:
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


if __name__ == "__main__":
    main()
