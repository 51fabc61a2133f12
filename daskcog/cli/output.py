"""What the command line prints: one-line errors, the info and stats tables, progress.

Pure formatting, no I/O beyond the stream a caller hands in: the commands
(`daskcog.cli.commands`) compute, these functions turn results into lines.
Progress bars are tqdm's, fed by the writers' `progress(done, total)` callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from georeader.errors import GeoreaderError

_SPARK = "▁▂▃▄▅▆▇█"
_ASCII = " .:-=+*#"


def error_line(exc: BaseException, debug: bool = False) -> str:
    """One line for an error: our own messages as they are, others with their type."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, GeoreaderError | FileNotFoundError | PermissionError):
        return text or type(exc).__name__
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if debug else f"{line} (run with --debug for the traceback)"


def say_to(stream: IO[str]) -> Callable[[str], None]:
    """A `say(text)` that prints a line to `stream` at once (narration, not results)."""

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    return say


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"


def _read_how(info: dict[str, Any]) -> str:
    if info["route"] == "native":
        how = "read exactly by daskcog's async reader (async-tiff fetch, imagecodecs decode)"
        if not info["exact"]:
            how = "read by daskcog's async reader; YCbCr JPEG decoders differ from GDAL by a few DN"
    else:
        how = "routed around async-tiff: read through rasterio (GDAL) in worker threads"
    return f"{how} [{info['layout']}]"


def info_lines(info: dict[str, Any]) -> list[str]:
    """`daskcog info`'s text: the URL, then one `name value` row per property."""
    tiles = (
        f"{info['block'][1]} x {info['block'][0]} "
        f"({info['tiles'][1]} x {info['tiles'][0]} = {info['tiles'][0] * info['tiles'][1]} tiles)"
        if info["tiled"]
        else f"none: strips of {info['block'][0]} rows (not tiled)"
    )
    predictor = f", predictor {info['predictor']}" if info["predictor"] != 1 else ""
    overviews = (
        f"{len(info['overviews'])}: " + ", ".join(f"{w}x{h}" for w, h in info["overviews"])
        if info["overviews"]
        else "none"
    )
    rows = [
        (
            "size",
            f"{info['width']} x {info['height']} pixels, {info['bands']} band"
            f"{'s' if info['bands'] != 1 else ''}, {info['dtype']}",
        ),
        ("tiles", tiles),
        ("nodata", "none" if info["nodata"] is None else f"{info['nodata']:g}"),
        ("mask", info["mask"]),
        ("crs", "none" if info["crs"] is None else f"{info['crs']} ({info['crs_name']})"),
        ("resolution", ", ".join(f"{v:.10g}" for v in info["resolution"])),
        ("bounds", ", ".join(f"{v:.10g}" for v in info["bounds"])),
        ("compression", f"{info['compression']}{predictor}, {info['interleave']}-interleaved"),
        ("overviews", overviews),
        ("route", _read_how(info)),
    ]
    if "file_size" in info:
        rows.append(("file size", mib(info["file_size"])))
    return [info["url"], *(f"  {name:<12}{value}" for name, value in rows)]


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


class ChunkProgress:
    """A tqdm bar for `progress(done, total)` callbacks (chunk writes); closes when done."""

    def __init__(self, stream: IO[str], label: str = "written") -> None:
        self.stream, self.label = stream, label
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=total, file=self.stream, unit=" chunks", desc=self.label, mininterval=0.1
            )
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


class StageProgressBars:
    """tqdm bars for `finish_progress(stage, fraction)` (GDAL's overviews, then its copy):
    one bar per stage, in percent, each closed when its stage ends or the next begins."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, fraction: float) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=100, file=self.stream, desc=stage, unit="%", mininterval=0.2,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
            )
        done = int(round(fraction * 100))
        if self.bar is not None and done > self.bar.n:
            self.bar.update(done - self.bar.n)
        if fraction >= 1.0:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
