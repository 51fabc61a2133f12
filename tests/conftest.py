"""Project-wide test set-up.

* `REAL_DIR`: ../shared/testdata/real beside the project root; tests that need
  it skip with a clear reason on a fresh clone that does not have it.
* The exit-crash guard: after obstore / async-tiff have been used, CPython may
  abort or segfault while finalising (upstream pyo3-async-runtimes issue 40).
  We let pytest print its summary, then leave with `os._exit(status)` so a green
  run can never turn red at interpreter exit (and a red one stays red).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = PROJECT_ROOT.parent / "shared" / "testdata" / "real"
REAL_MISSING = (
    f"real-world test files not found at {REAL_DIR} (they live in ../shared beside the project; "
    "a fresh clone does not have them)"
)


def real_files() -> list[Path]:
    """The shared real-world GeoTIFFs, or [] when the folder is absent."""
    return sorted(REAL_DIR.glob("*.tif")) if REAL_DIR.is_dir() else []


def real_expected() -> dict:
    path = REAL_DIR / "expected_rasterio.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not REAL_DIR.is_dir():
        pytest.skip(REAL_MISSING)
    return REAL_DIR


@pytest.fixture(scope="session")
def tiff_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder for generated TIFFs (shared by all tests)."""
    return tmp_path_factory.mktemp("tiffs")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._daskcog_exitstatus = int(exitstatus)  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    status = getattr(config, "_daskcog_exitstatus", None)
    if status is None or os.environ.get("DASKCOG_NO_HARD_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
