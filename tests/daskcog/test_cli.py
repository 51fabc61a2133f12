"""The `daskcog` command line, run as subprocesses (`python -m daskcog.cli ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from daskcog.cli.output import error_line, sparkline
from daskcog.cli.parse import parse_bounds, parse_resolution, parse_store_option
from tests.cogfactory import TiffSpec, cached_tiff, expected_pixels
from tests.conftest import PROJECT_ROOT, REAL_DIR

pytestmark = pytest.mark.timeout(180)

SPEC = TiffSpec(
    dtype="uint16",
    width=700,
    height=530,
    count=2,
    nodata=0,
    overviews=(2, 4),
    blockxsize=128,
    blockysize=128,
)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "daskcog.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env=env,
    )


def real(name: str) -> Path:
    path = REAL_DIR / name
    if not path.is_file():
        pytest.skip(f"real-world test file {path} not available")
    return path


@pytest.fixture(scope="module")
def cog(tiff_cache: Path) -> Path:
    return cached_tiff(SPEC, tiff_cache)


# -- info ----------------------------------------------------------------------------
def test_info_generated_file(cog: Path) -> None:
    result = run_cli("info", cog)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == cog.as_uri()
    assert "700 x 530 pixels, 2 bands, uint16" in out
    assert "128 x 128 (6 x 5 = 30 tiles)" in out
    assert "EPSG:32633" in out and "nodata      0" in out
    assert "deflate" in out
    assert "overviews   2: 350x265, 175x133" in out
    assert "read exactly by daskcog's async reader" in out and "native route" in out


def test_info_json(cog: Path) -> None:
    result = run_cli("info", cog, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    with rasterio.open(cog) as src:
        assert (info["width"], info["height"], info["bands"]) == (src.width, src.height, src.count)
        assert info["nodata"] == src.nodata
        assert info["transform"] == list(src.transform)[:6]
        assert info["block"] == list(src.block_shapes[0])
        assert info["compression"] == src.compression.value.lower()
    assert info["overviews"] == [[350, 265], [175, 133]]
    assert info["route"] == "native" and info["exact"] is True


def test_info_striped_file_says_rasterio_route() -> None:
    result = run_cli("info", real("landsat7_rgb_uncompressed_striped.tif"))
    assert result.returncode == 0, result.stderr
    assert "strips of 3 rows (not tiled)" in result.stdout
    assert "rasterio route" in result.stdout and "through rasterio (GDAL)" in result.stdout


def test_info_real_cog() -> None:
    result = run_cli("info", real("hro_rgb_ycbcr_jpeg_cog.tif"))
    assert result.returncode == 0, result.stderr
    assert "jpeg" in result.stdout and "YCbCr JPEG" in result.stdout


def test_info_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "x.tif"
    result = run_cli("info", missing)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"daskcog: error: {missing.as_uri()}: not found")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "info", tmp_path / "x.tif")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("daskcog: error: ")


def test_info_exit_code_is_always_zero(cog: Path) -> None:
    """obstore / async-tiff may crash the interpreter at exit; main() leaves with os._exit."""
    for _ in range(5):
        result = run_cli("info", cog)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


# -- usage errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["info", "--bogus", "x.tif"],
        ["stats", "x.tif", "--bins", "0"],
        ["mosaic", "a.tif"],  # no -o
        ["--store-option", "novalue", "info", "x.tif"],
        ["frobnicate"],
        [],
    ],
    ids=[
        "unknown-option",
        "bad-bins",
        "missing-output",
        "bad-store-option",
        "unknown-command",
        "no-command",
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "daskcog: error:" in result.stderr or "error:" in result.stderr


def test_help_exits_0() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("info", "stats", "mosaic", "demo"):
        assert command in result.stdout


def test_store_options_reach_the_store(cog: Path) -> None:
    result = run_cli("--store-option", 'client_options={"allow_http": true}', "info", cog)
    # issue 19: an option the store does not take is refused by name before anything is read
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("daskcog: error: unknown keyword argument 'client_options' for ")
    assert "a local file takes no store options" in lines[0]


def test_option_parsers() -> None:
    assert parse_store_option('client_options={"allow_http":true}') == (
        "client_options",
        {"allow_http": True},
    )
    assert parse_store_option("region=eu-west-1") == ("region", "eu-west-1")
    assert parse_store_option("skip_signature=true") == ("skip_signature", True)
    assert parse_resolution("10") == 10.0 and parse_resolution("10,20") == (10.0, 20.0)
    assert parse_bounds("1,2,3,4") == (1.0, 2.0, 3.0, 4.0)
    import click

    for bad in ("0", "a", "1,2,3"):
        with pytest.raises(click.BadParameter):  # a usage error (exit 2), as argparse's was
            parse_resolution(bad)
    with pytest.raises(click.BadParameter):
        parse_bounds("3,2,1,4")
    assert (
        error_line(ValueError("bad\nmore"))
        == "ValueError: bad (run with --debug for the traceback)"
    )
    assert sparkline([0, 1, 2, 4], width=4, stream=sys.stdout) in ("▁▃▅█", " :=#")


# -- stats ---------------------------------------------------------------------------
def assert_stats_equal_numpy(report: dict, spec: TiffSpec, bins: int) -> None:
    data = expected_pixels(spec).data
    assert len(report["bands"]) == spec.count
    for band, stats in zip(data, report["bands"], strict=True):
        values = band[band != spec.nodata]
        assert stats["count"] == values.size and stats["total"] == band.size
        assert stats["min"] == values.min() and stats["max"] == values.max()
        assert stats["mean"] == pytest.approx(values.astype(float).mean(), rel=1e-12)
        assert stats["std"] == pytest.approx(values.astype(float).std(), rel=1e-9)
        counts, edges = np.histogram(
            values, bins, range=(np.float64(values.min()), np.float64(values.max()))
        )
        assert stats["histogram"] == counts.tolist()
        assert stats["edges"] == pytest.approx(edges.tolist(), rel=0, abs=0)


def test_stats_json_equals_numpy(cog: Path) -> None:
    result = run_cli("stats", cog, "--json", "--bins", "40", "--chunks", "256")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert_stats_equal_numpy(report, SPEC, 40)
    assert report["shape"] == [2, 530, 700]
    assert "threaded scheduler" in report["scheduler"]
    assert "threaded scheduler" in result.stderr, "narration goes to stderr with --json"


def test_stats_table_bands_and_overview(cog: Path) -> None:
    result = run_cli("stats", cog, "--bands", "2", "--overview", "1", "--bins", "8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "threaded scheduler" in lines[0] and "350x265" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["band", "valid"])
    rows = lines[header + 1 :]
    assert len(rows) == 1 and rows[0].split()[0] == "2"
    with rasterio.open(cog, overview_level=0) as src:
        level = src.read(2)
    valid = level[level != 0]
    assert f"{valid.size:,}" in rows[0] and f"{valid.max():,}" in rows[0]


def test_stats_on_a_running_scheduler(cog: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        result = run_cli(
            "--scheduler", cluster.scheduler_address, "stats", cog, "--json", "--bins", "16"
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["scheduler"].startswith(f"Dask scheduler at {cluster.scheduler_address}")
    assert_stats_equal_numpy(report, SPEC, 16)


def test_stats_real_striped_file_matches_rasterio() -> None:
    path = real("landsat7_rgb_uncompressed_striped.tif")
    result = run_cli("stats", path, "--json")
    assert result.returncode == 0, result.stderr
    with rasterio.open(path) as src:
        data = src.read()
    for band, stats in zip(data, json.loads(result.stdout)["bands"], strict=True):
        values = band[band != 0]
        assert stats["count"] == values.size and stats["mean"] == pytest.approx(
            values.mean(), rel=1e-12
        )


# -- mosaic and demo -------------------------------------------------------------------
def test_mosaic_command(tmp_path: Path, tiff_cache: Path) -> None:
    from daskcog.cli.commands import resolve_mosaic

    left = cached_tiff(TiffSpec(dtype="uint16", width=300, height=200, nodata=0), tiff_cache)
    right = cached_tiff(
        TiffSpec(dtype="uint16", width=300, height=200, nodata=0, origin_x=399960.0 + 2000),
        tiff_cache,
    )
    out = tmp_path / "mosaic.tif"
    result = run_cli("mosaic", left, right, "-o", out, "--blocksize", "128", timeout=150)
    if resolve_mosaic() is None:
        assert result.returncode == 1
        assert "daskcog.mosaic is not available" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "local Dask cluster" in result.stdout and f"wrote {out}" in result.stdout
    from rio_cogeo.cogeo import cog_validate

    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as src:
        assert src.width == 500 and src.height == 200 and src.nodata == 0
        mosaic = src.read(1)
    first = expected_pixels(TiffSpec(dtype="uint16", width=300, height=200, nodata=0)).data[0]
    np.testing.assert_array_equal(mosaic[:, :300][first != 0], first[first != 0])  # first wins


def test_demo_end_to_end(tmp_path: Path) -> None:
    from daskcog.cli.commands import resolve_mosaic

    workdir = tmp_path / "demo"
    result = run_cli("demo", "--workdir", workdir, "--size", "1024", timeout=170)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "local Dask cluster" in out and "worker processes" in out
    samples = [workdir / f"sample_{i}.tif" for i in range(1, 5)]
    for sample in samples:
        assert f"{sample}" in out
        with rasterio.open(sample) as src:
            assert (src.width, src.height, src.dtypes[0], src.nodata) == (1024, 1024, "uint16", 0)
            assert src.compression.value == "DEFLATE" and src.block_shapes[0] == (512, 512)
            assert src.overviews(1) == [2]
    stats = json.loads((workdir / "stats.json").read_text())
    assert sorted(stats) == [s.name for s in samples]
    with rasterio.open(samples[0]) as src:
        data = src.read(1)
    assert stats["sample_1.tif"][0]["count"] == int((data != 0).sum())
    assert stats["sample_1.tif"][0]["mean"] == pytest.approx(data[data != 0].mean(), rel=1e-12)
    if resolve_mosaic() is None:
        assert "mosaic: skipped" in out
    else:
        assert (workdir / "mosaic.tif").is_file() and f"{workdir / 'mosaic.tif'}" in out
        with rasterio.open(workdir / "mosaic.tif") as src:
            assert src.width == src.height == 1024 + 768
    assert "demo finished in" in out


def test_demo_samples_are_reused(tmp_path: Path) -> None:
    from daskcog.cli.demo import SceneSpec, make_sample_cogs

    spec = SceneSpec(size=256, count=2, tile=128)
    messages: list[str] = []
    paths, reused = make_sample_cogs(tmp_path, spec, say=messages.append)
    assert not reused and messages and all(p.is_file() for p in paths)
    stamps = [p.stat().st_mtime_ns for p in paths]
    again, reused = make_sample_cogs(tmp_path, spec, say=messages.append)
    assert reused and again == paths and [p.stat().st_mtime_ns for p in paths] == stamps
    # the overlap of the two samples holds the same scene (up to noise and gain)
    with rasterio.open(paths[0]) as a, rasterio.open(paths[1]) as b:
        step = spec.step
        shared_a = a.read(1)[:, step:].astype(float)
        shared_b = b.read(1)[:, : 256 - step].astype(float)
    both = (shared_a > 0) & (shared_b > 0)
    assert np.corrcoef(shared_a[both], shared_b[both])[0, 1] > 0.9
    paths[1].unlink()
    _, reused = make_sample_cogs(tmp_path, spec, say=messages.append)
    assert not reused, "a missing sample is rewritten"
