"""The `daskcog` command line: info, stats, mosaic, demo (on click).

    daskcog info URL                       what a file is and how daskcog reads it
    daskcog stats URL [--json]             per-band statistics, computed on Dask
    daskcog mosaic URL... -o out.tif       mosaic into a COG on a local cluster
    daskcog demo                           sample COGs, stats and a mosaic, end to end

Global options (before or after the command): `--scheduler ADDRESS` uses a
running Dask scheduler (otherwise: a local cluster for mosaic and demo, the
threaded scheduler for info and stats); `--store-option KEY=VALUE` (repeatable,
VALUE parsed as JSON when it can be, e.g. `client_options={"allow_http":true}`)
passes obstore options; `--debug` shows tracebacks.

A line flows: click parses it (`daskcog.cli.parse`), the command's function in
`daskcog.cli.commands` does the work, `daskcog.cli.output` formats what it
prints. Errors are one line on stderr (`daskcog: error: ...`); exit codes are 0
(ok), 1 (runtime error), 2 (usage) and 130 (interrupted). `main()` ends with
`os._exit(code)` after closing any cluster, so a crash of a native dependency
while the interpreter shuts down (see ../shared/notes/dependencies.md) never
changes the exit code.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from daskcog.cli import commands
from daskcog.cli.output import error_line
from daskcog.cli.parse import (
    BANDS,
    BOUNDS,
    POSITIVE,
    RESOLUTION,
    Settings,
    global_options,
    settings,
)
from daskcog.writing.write import COMPRESSIONS

PROG = "daskcog"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
URL_HELP = "path or URL (file://, s3://, gs://, az://, http(s)://)"


# -- entry points ------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: run, flush, and leave with `os._exit` (see the module doc).

    Ctrl-C leaves at once (`cluster.FAST_EXIT`): the local cluster's workers exit with
    this process. Its multiprocessing resource tracker would then warn about the
    cluster's semaphores the OS frees anyway; that warning is silenced in the tracker
    (it is started with this interpreter's `-W` options)."""
    from daskcog.cli import cluster

    cluster.FAST_EXIT = True
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    code = run(argv)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse and run one command; returns the exit code (never raises)."""
    state = Settings()
    try:
        code = cli.main(
            list(sys.argv[1:] if argv is None else argv),
            prog_name=PROG,
            obj=state,
            standalone_mode=False,
        )
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        print(f"{PROG}: error: {exc.format_message()}", file=sys.stderr)
        return EXIT_USAGE
    except (click.Abort, KeyboardInterrupt):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into a line
        if state.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {error_line(exc, state.debug)}", file=sys.stderr)
        return EXIT_ERROR
    return int(code or EXIT_OK)


@click.group(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Cloud-Optimized GeoTIFFs as Dask arrays: inspect, summarise, mosaic.",
)
@click.version_option(package_name="daskcog", prog_name=PROG)
@global_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        raise click.UsageError("choose a command: info, stats, mosaic or demo", ctx)


@cli.command(help="size, tiles, bands, CRS, overviews, how the file is read")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@global_options
@click.pass_context
def info(ctx: click.Context, url: str, as_json: bool) -> int:
    return commands.info(url, as_json=as_json, store_options=settings(ctx).store_options)


@cli.command(help="per-band min, max, mean, std, valid count, histogram")
@click.argument("url")
@click.option(
    "--overview", type=int, default=0, metavar="N", help="overview level (0: full resolution)"
)
@click.option(
    "--bands", type=BANDS, multiple=True, help="1-based bands, e.g. 1,3 (repeatable; default: all)"
)
@click.option("--bins", type=POSITIVE, default=256, metavar="N", help="histogram bins (256)")
@click.option(
    "--chunks",
    type=POSITIVE,
    default=commands.STATS_CHUNKS,
    metavar="N",
    help=f"chunk side in pixels ({commands.STATS_CHUNKS})",
)
@click.option(
    "--keep-fill", is_flag=True,
    help="count pixels equal to the fill value as valid (by default they are left out only "
    "where they mark missing pixels: a nodata, a mask or an alpha band)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON (full histograms) on stdout")
@global_options
@click.pass_context
def stats(ctx: click.Context, url: str, bands: tuple[tuple[int, ...], ...], **options: Any) -> int:
    found = settings(ctx)
    return commands.stats(
        url,
        bands=[b for group in bands for b in group] or None,
        scheduler=found.scheduler,
        store_options=found.store_options,
        **options,
    )


@cli.command(help="mosaic files into one COG (on a local Dask cluster)")
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option("-o", "--output", required=True, metavar="OUT.tif", help="output COG path or URL")
@click.option("--crs", help="output CRS (default: the first file's)")
@click.option("--resolution", type=RESOLUTION, help="output pixel size: X or X,Y")
@click.option("--bounds", type=BOUNDS, help="output bounds in the output CRS")
@click.option("--method", help="mosaic method (default: daskcog.mosaic's)")
@click.option(
    "--compress", default="deflate", type=click.Choice(COMPRESSIONS), help="compression (deflate)"
)
@click.option("--blocksize", type=POSITIVE, default=512, metavar="N", help="tile size (512)")
@click.option(
    "--overview-resampling",
    default="nearest",
    metavar="METHOD",
    help="nearest (default), average, bilinear, ...",
)
@global_options
@click.pass_context
def mosaic(
    ctx: click.Context,
    urls: tuple[str, ...],
    output: str,
    crs: str | None,
    resolution: Any,
    bounds: Any,
    method: str | None,
    compress: str,
    blocksize: int,
    overview_resampling: str,
) -> int:
    found = settings(ctx)
    return commands.mosaic(
        urls,
        output=output,
        mosaic_kwargs=dict(crs=crs, resolution=resolution, bounds=bounds, method=method),
        write_kwargs=dict(compress=compress, blocksize=blocksize, resampling=overview_resampling),
        scheduler=found.scheduler,
        store_options=found.store_options,
    )


@cli.command(help="sample COGs, then stats and a mosaic on a local Dask cluster")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="folder for samples and outputs (default: ~/.cache/daskcog/demo)",
)
@click.option(
    "--size", type=POSITIVE, default=4096, metavar="N", help="sample width and height (4096)"
)
@click.option("--count", type=POSITIVE, default=4, metavar="N", help="number of samples (4)")
@global_options
@click.pass_context
def demo(ctx: click.Context, workdir: Path | None, size: int, count: int) -> int:
    return commands.demo(workdir=workdir, size=size, count=count, scheduler=settings(ctx).scheduler)


if __name__ == "__main__":
    main()
