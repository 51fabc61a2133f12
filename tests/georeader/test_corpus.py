"""Every corpus file read as rasterio reads it, or refused where GDAL refuses (issue 18).

The corpus: small public test files (tests/georeader/corpus/, origins in ORIGINS.md) and,
when present, the shared real files (../shared/testdata/real). Each file is opened with
`AsyncGeoTIFFReader` and read at every overview level through a few windows, then
compared with rasterio by `corpus_check` (its docstring lists the verdicts), in a
subprocess with a memory cap and a per-file timeout, so a crash, a hang or a memory
blow-up fails this test instead of the run.

Counts at issue 18: corpus 238 files: 231 exact, 2 JPEG-close, 4 refused where GDAL refuses
too (corrupt fuzz files), 1 refused on purpose (GCPs only), 0 wrong; shared real files 32:
27 exact, 4 JPEG-close, 1 refused on purpose (GCPs only), 0 wrong.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, REAL_MISSING, real_files

CORPUS = Path(__file__).parent / "corpus"
MEMORY_CAP = 4 * 2**30
"""Address space of a checking process: far above what any corpus file needs."""
FILE_TIMEOUT = 60.0
ALLOWED = {"exact", "close", "refused-as-gdal", "refused-gcps"}
"""refused-gcps: GCP-only files have no affine grid; refused with NoGeoreferenceError on
purpose (test_real_files says why)."""


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))


def run_checks(files: list[Path]) -> list[dict]:
    """Check `files` in as few subprocesses as possible; a crash or hang costs one verdict."""
    results: list[dict] = []
    pending = [str(f) for f in files]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    while pending:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.georeader.corpus_check", f"--max-bytes={MEMORY_CAP}",
             *pending],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream=proc.stdout, out=lines) -> None:
            for line in stream:
                out.put(line)
            out.put(None)

        threading.Thread(target=pump, daemon=True).start()
        current: str | None = None
        deadline = time.monotonic() + FILE_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                proc.kill()
                results.append({"file": current, "verdict": "wrong", "error": "hang (timeout)"})
                break
            if line is None:  # the process ended
                proc.wait()
                if current is not None:
                    results.append(
                        {"file": current, "verdict": "wrong",
                         "error": f"the process died (status {proc.returncode})"}
                    )
                break
            if line.startswith("START "):
                current = line[6:].strip()
                deadline = time.monotonic() + FILE_TIMEOUT
                continue
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue  # a library's stray print
            results.append(result)
            current = None
        done = {r["file"] for r in results}
        pending = [f for f in pending if f not in done]
    return results


def _report(results: list[dict]) -> str:
    counts = collections.Counter(r["verdict"].split(":")[0] for r in results)
    lines = [f"{len(results)} files: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    for r in results:
        if r["verdict"].split(":")[0] not in ALLOWED or r["verdict"] == "refused":
            lines.append(f"  {Path(r['file']).name}: {r['verdict']} {r.get('error', '')}")
    return "\n".join(lines)


def _check(files: list[Path]) -> None:
    results = run_checks(files)
    report = _report(results)
    print(report)
    assert len(results) == len(files), report
    bad = [r for r in results if r["verdict"].split(":")[0] not in ALLOWED]
    assert not bad, report


def test_corpus_reads_as_gdal_reads_it() -> None:
    files = corpus_files()
    assert len(files) >= 200, "the corpus is missing (tests/georeader/corpus)"
    _check(files)


def test_shared_real_files_read_as_gdal_reads_them() -> None:
    files = real_files()
    if not files:
        pytest.skip(REAL_MISSING)
    _check(files)


def test_a_crashing_file_costs_one_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness itself: a process that dies mid-file is reported against that file only,
    and the files after it are checked by a fresh process."""
    files = sorted((CORPUS / "libgeotiff").glob("*.tif"))[:3]
    monkeypatch.setenv("CORPUS_CHECK_CRASH_ON", files[1].name)
    results = run_checks(files)
    assert [Path(r["file"]).name for r in results] == [f.name for f in files]
    assert [r["verdict"] for r in results] == ["exact", "wrong", "exact"]
    assert "died" in results[1]["error"]
