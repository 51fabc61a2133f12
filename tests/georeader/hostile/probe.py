"""Run hostile-file probes in this process, under a memory cap, one JSON line per probe.

Usage: python -m tests.georeader.hostile.probe CAP_BYTES TIMEOUT_S PATH [PATH ...]

Each probe opens the file with AsyncGeoTIFFReader and reads every level whole;
rasterio reads the same file. The outcome is:

* ``exact``: both read, equal pixels (YCbCr JPEG within the documented tolerance);
* ``typed``: we raised a GeoreaderError whose message names the file (whatever
  rasterio did: GDAL is more lenient with some damaged files);
* ``read-gdal-failed``: we read the file, GDAL refused it (recorded and counted);
* anything else is a failure: ``wrong`` (both read, pixels differ), ``untyped``
  (another exception), ``unnamed`` (typed but the file is not named), ``timeout``,
  ``memory`` (MemoryError under the cap); a probe that kills the process is
  reported by the parent as ``crashed``.

The process's peak resident memory is printed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import warnings
from urllib.parse import quote

import numpy as np


def _cap(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


async def _ours(path: str, timeout: float) -> list[np.ndarray]:
    from georeader import AsyncGeoTIFFReader

    async def read() -> list[np.ndarray]:
        reader = await AsyncGeoTIFFReader.open(path)
        out = []
        for level in range(reader.overview_count + 1):
            r = reader.overview(level)
            out.append((await r.load()).values)
        return out

    return await asyncio.wait_for(read(), timeout)


def _gdal(path: str, levels: int) -> list[np.ndarray]:
    from georeader import RasterioReader

    out = []
    for level in range(levels):
        with RasterioReader(path, overview_level=level) as ref:
            out.append(ref.load().values)
    return out


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def probe(path: str, timeout: float) -> dict:
    from georeader import GeoreaderError

    started = time.monotonic()
    result: dict = {"path": path}
    try:
        ours = asyncio.run(_ours(path, timeout))
    except GeoreaderError as exc:
        text = str(exc)
        named = path in text or quote(path) in text or os.path.basename(path) in text
        result.update(
            outcome="typed" if named else "unnamed", error=type(exc).__name__, message=text[:300]
        )
    except TimeoutError:
        result.update(outcome="timeout")
    except MemoryError:
        result.update(outcome="memory")
    except Exception as exc:  # noqa: BLE001 - the point of the probe
        result.update(outcome="untyped", error=type(exc).__name__, message=str(exc)[:300])
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _gdal(path, len(ours))
        except Exception as exc:  # noqa: BLE001
            result.update(outcome="read-gdal-failed", gdal_error=str(exc)[:200])
        else:
            same = all(_equal(a, b) for a, b in zip(ours, ref, strict=True))
            result.update(outcome="exact" if same else "wrong")
    result["seconds"] = round(time.monotonic() - started, 3)
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return result


def main() -> None:
    cap, timeout = int(sys.argv[1]), float(sys.argv[2])
    _cap(cap)
    for path in sys.argv[3:]:
        print("START " + json.dumps(path), flush=True)
        print("RESULT " + json.dumps(probe(path, timeout)), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("PEAK " + json.dumps(peak), flush=True)
    sys.stdout.flush()
    os._exit(0)  # the exit-crash class is tested elsewhere; here only the probes count


if __name__ == "__main__":
    main()
