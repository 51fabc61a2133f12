"""`daskcog mosaic`: arguments checked before a cluster starts; Ctrl-C obeyed (issue 19, item 6).

Before: the cluster started (~6 s) before the output folder or the method name were
checked; the COG's finalisation showed nothing for ~40 s and Ctrl-C there took 34-42 s;
Ctrl-C during the compute printed ~100 lines of worker tracebacks. The Ctrl-C tests run
the command in its own process group and send SIGINT to the whole group, as a terminal
does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from tests.conftest import PROJECT_ROOT

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups (POSIX) needed"),
]


def write_noise(path: Path, size: int, seed: int, x0: float = 500_000.0) -> Path:
    """A tiled uint16 GeoTIFF of noise (incompressible: GDAL's copy takes its time)."""
    values = np.random.default_rng(seed).integers(1, 60_000, (1, size, size), dtype="uint16")
    profile = dict(
        driver="GTiff", width=size, height=size, count=1, dtype="uint16", crs="EPSG:32633",
        transform=Affine(10, 0, x0, 0, -10, 4_200_000), nodata=0, tiled=True,
        blockxsize=512, blockysize=512,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("interrupt-inputs")
    return [
        write_noise(folder / "a.tif", 3072, 1),
        write_noise(folder / "b.tif", 3072, 2, x0=510_000.0),
    ]


def cli(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "daskcog.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # a test runner may run us with SIGINT ignored, which children inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,  # type: ignore[arg-type]
    )


def interrupt_when(process: subprocess.Popen[bytes], marker: str) -> tuple[float, str]:
    """Ctrl-C the process group once `marker` shows on stderr; (seconds to exit, stderr)."""
    assert process.stderr is not None
    chunks: list[bytes] = []
    seen = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        while data := process.stderr.read1(65536):
            chunks.append(data)
            if marker.encode() in b"".join(chunks[-4:]):
                seen.set()
        seen.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    assert seen.wait(180), "the marker never showed"
    assert process.poll() is None, "finished before the Ctrl-C: " + b"".join(chunks).decode()
    start = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    seconds = time.monotonic() - start
    reader.join(5)
    return seconds, b"".join(chunks).decode(errors="replace")


def message_lines(stderr: str) -> list[str]:
    """stderr without tqdm's bars (carriage-return redrawn lines)."""
    lines = stderr.replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip() and "%|" not in line]


def test_ctrl_c_during_cog_finalisation(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    process = cli("mosaic", *inputs, "-o", out, "--compress", "lzma")
    seconds, stderr = interrupt_when(process, "COG copy:")
    assert process.returncode == 130, stderr
    assert seconds < 2.0, f"took {seconds:.1f} s to stop"
    assert message_lines(stderr) == ["daskcog: interrupted"], stderr
    assert os.listdir(tmp_path) == [], "no output, no partial or temporary file"


def test_ctrl_c_during_compute_prints_one_line(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    process = cli("mosaic", *inputs, "-o", out, "--method", "median")
    seconds, stderr = interrupt_when(process, "written:")
    assert process.returncode == 130, stderr
    assert seconds < 10.0
    assert message_lines(stderr) == ["daskcog: interrupted"], stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "maximum"], "unknown mosaic method 'maximum'"),
        (["--overview-resampling", "cubicc"], "unknown overview resampling 'cubicc'"),
        (["--store-option", "regoin=x"], "'regoin'"),
    ],
)
def test_bad_arguments_refused_before_a_cluster(
    inputs: list[Path], tmp_path: Path, args: list[str], message: str
) -> None:
    start = time.monotonic()
    process = cli("mosaic", *inputs, "-o", tmp_path / "out.tif", *args)
    _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    assert process.returncode in (1, 2) and message in text, text
    assert "local Dask cluster" not in text
    assert time.monotonic() - start < 6, "a cluster was started first"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", ["missing folder", "a folder", "missing input"])
def test_output_and_inputs_checked_before_a_cluster(
    inputs: list[Path], tmp_path: Path, case: str
) -> None:
    sources = [*inputs, tmp_path / "nope.tif"] if case == "missing input" else inputs
    output = {
        "missing folder": tmp_path / "no" / "out.tif",
        "a folder": tmp_path,
        "missing input": tmp_path / "out.tif",
    }[case]
    process = cli("mosaic", *sources, "-o", output)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2, stderr.decode()
    assert b"running on" not in stdout
    assert stderr.decode().strip().splitlines()[-1].startswith("daskcog: error:")


def test_version_flag() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "daskcog.cli", "--version"], capture_output=True, text=True,
        cwd=PROJECT_ROOT, timeout=60,
    )
    assert process.returncode == 0
    from importlib.metadata import version

    assert process.stdout.strip() == f"daskcog, version {version('daskcog')}"


def test_bounds_outside_the_files_is_an_error_not_a_file_of_fill(
    inputs: list[Path], tmp_path: Path
) -> None:
    """Degrees on UTM files: before, a 1 x 1 file of fill and exit 0."""
    process = cli("mosaic", *inputs, "-o", tmp_path / "out.tif", "--bounds", "14,45,14.1,45.1")
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "do not overlap" in text and "EPSG:32633" in text and "degrees" in text
    assert os.listdir(tmp_path) == []
