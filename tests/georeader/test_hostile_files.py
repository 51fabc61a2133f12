"""Hostile files: every probe ends `exact` (equal to rasterio) or in a typed error naming the file.

The files are generated (tests/georeader/hostile/build.py): a small masked COG cut
at every structural boundary, looping IFD chains, inconsistent headers, odd
dtypes, garbage tags, decompression bombs on every decode path, odd file names.
Probes run in subprocesses (`hostile/probe.py`) under a 1.5 GiB address-space cap
and a per-probe timeout, many probes per process (starting Python, rasterio and
async-tiff costs ~1 s), two processes at a time. A probe that kills its process
is recorded as `crashed` and the batch resumes after it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.georeader.hostile.build import build_all

CAP = 3 * 2**29  # 1.5 GiB of address space per probe process
PEAK_LIMIT = 3 * 2**29
PROBE_TIMEOUT = 20.0
BATCHES = 2
GOOD = {"exact", "typed"}

GDAL_STRICTER = {
    # cases where GDAL refuses a file and we read it: none are accepted silently
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    return build_all(tmp_path_factory.mktemp("hostile"))


def _run_batch(paths: list[str]) -> tuple[list[dict], int]:
    """Probe `paths` in one process; after a crash, go on in a new one. Returns results, peak
    RSS."""
    results: list[dict] = []
    peak = 0
    todo = list(paths)
    while todo:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.georeader.hostile.probe",
                str(CAP),
                str(PROBE_TIMEOUT),
                *todo,
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        started = None
        done: set[str] = set()
        for line in proc.stdout.splitlines():
            tag, _, payload = line.partition(" ")
            if tag == "START":
                started = json.loads(payload)
            elif tag == "RESULT":
                results.append(json.loads(payload))
                done.add(started)
                started = None
            elif tag == "PEAK":
                peak = max(peak, json.loads(payload))
        if started is not None:  # the process died during this probe
            results.append({"path": started, "outcome": "crashed", "returncode": proc.returncode,
                            "stderr": proc.stderr[-400:]})
            done.add(started)
        elif not done and todo:
            pytest.fail(
                f"probe process failed before any probe: {proc.returncode} {proc.stderr[-2000:]}"
            )
        todo = [p for p in todo if p not in done]
    return results, peak


def test_hostile_files_are_exact_or_typed(cases: dict[str, dict[str, Path]]) -> None:
    family_of = {str(p): family for family, group in cases.items() for p in group.values()}
    paths = sorted(family_of, key=lambda p: (family_of[p], p))
    batches = [paths[i::BATCHES] for i in range(BATCHES)]
    with ThreadPoolExecutor(BATCHES) as pool:
        runs = list(pool.map(_run_batch, batches))
    results = [r for batch, _ in runs for r in batch]
    peak = max(p for _, p in runs)
    counts: dict[str, Counter] = {}
    for r in results:
        counts.setdefault(family_of[r["path"]], Counter())[r["outcome"]] += 1
    summary = {family: dict(c) for family, c in sorted(counts.items())}
    print(
        f"\nhostile files: {len(results)} probes, peak RSS {peak / 2**20:.0f} MiB; "
        f"{json.dumps(summary)}"
    )
    bad = [
        r for r in results if r["outcome"] not in GOOD and Path(r["path"]).stem not in GDAL_STRICTER
    ]
    assert not bad, json.dumps(bad, indent=1)[:6000]
    assert len(results) == len(paths)
    assert peak < PEAK_LIMIT


def test_bombs_stay_within_a_tiles_size(cases: dict[str, dict[str, Path]]) -> None:
    """Bombs under the byte-count bound checked at open are stopped by the decoder's own
    bound (an `out=` buffer of the tile's size): imagecodecs says so ("insufficient space");
    the 2 GiB one would otherwise break the 1.5 GiB cap."""
    results, peak = _run_batch(sorted(str(p) for p in cases["bombs"].values()))
    print(f"\nbombs: {len(results)} probes, peak RSS {peak / 2**20:.0f} MiB, "
          f"{dict(Counter(r['outcome'] for r in results))}")
    assert {r["outcome"] for r in results} <= GOOD, results
    for r in results:
        if "under-bound" in r["path"]:
            assert "INSUFFICIENT_SPACE" in r["message"], r
    assert peak < 1024 * 2**20
