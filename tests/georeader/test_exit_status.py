"""A user script that catches a typed error and exits gets its own exit status, every time.

After async-tiff / obstore use, CPython could abort or segfault while finalising
(pyo3-async-runtimes issue 40): Rust futures outliving their Python callers
called back into the finalising interpreter. Measured before the fix (a script
with reads left in flight on a background loop): 2 of 40 runs died with -6;
a hostile-file script died with -11 in 1 of 209 runs. `georeader.io.shutdown_safety`
lets every Rust call finish and drains live loops at exit (bounded).

The runs are subprocesses, 4 at a time; `GEOREADER_EXIT_RUNS=200` runs each
script 200 times (the figure in the closing note); the default keeps CI short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.georeader.hostile.build import patched, write_base

RUNS = int(os.environ.get("GEOREADER_EXIT_RUNS", "16"))

IN_FLIGHT = textwrap.dedent(
    """
    import asyncio, sys, threading
    from rasterio.windows import Window
    from georeader import AsyncGeoTIFFReader, GeoreaderError

    good, bad = sys.argv[1], sys.argv[2]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    reader = asyncio.run_coroutine_threadsafe(AsyncGeoTIFFReader.open(good), loop).result(60)
    for _ in range(50):  # left in flight at exit
        asyncio.run_coroutine_threadsafe(reader.read_window(Window(0, 0, 128, 128)), loop)
    try:
        hostile = asyncio.run_coroutine_threadsafe(AsyncGeoTIFFReader.open(bad), loop).result(60)
        asyncio.run_coroutine_threadsafe(hostile.load(), loop).result(60)
    except GeoreaderError:
        sys.exit(3)
    sys.exit(0)
    """
)

GATHER = textwrap.dedent(
    """
    import asyncio, sys
    from rasterio.windows import Window
    from georeader import AsyncGeoTIFFReader, GeoreaderError

    async def main(path):
        reader = await AsyncGeoTIFFReader.open(path)
        await asyncio.gather(*(reader.read_window(Window(0, 0, 128, 128)) for _ in range(20)))

    try:
        asyncio.run(main(sys.argv[2]))
    except GeoreaderError:
        sys.exit(3)
    sys.exit(0)
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("exit")
    good = write_base(folder / "good.tif", compress="deflate", mask=True)
    data = good.read_bytes()
    bad = folder / "past-end.tif"  # one tile's offset beyond the end: fails while others are read
    bad.write_bytes(patched(data, lambda t: t.set_values(0, 324, t.values(0, 324)[:3] + [10**7])))
    return good, bad


@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", ["in-flight", "gather"])
def test_scripts_exit_with_their_own_status(tmp_path: Path, files, script: str) -> None:
    path = tmp_path / "script.py"
    path.write_text(IN_FLIGHT if script == "in-flight" else GATHER)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}

    def run(_: int) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, str(path), *map(str, files)], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        return proc.returncode, proc.stderr[-500:]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(RUNS)))
    codes = Counter(code for code, _ in results)
    print(f"\n{script}: {RUNS} runs, exit codes {dict(codes)}")
    assert codes == {3: RUNS}, [err for code, err in results if code != 3][:3]
