"""Where one load's wall time goes: start, the chunk tasks, Dask's final join (issue 21).

    python benchmarks/wall_phases.py [--job timeseries|two-zones] [--lib daskcog|odc-stac]
                                     [--latency-ms 50] [--threads 8]

One fresh load in this process, the data and grids of `bench_timeseries.py` (6 dates) or
`bench_stac.py --scenario two-zones`, through the range server. Why a second script beside
those benchmarks: they time whole processes; this one says why a time is what it is, which
they cannot. Printed:
* wall and process CPU of `compute()`, minor faults and system time (getrusage);
* the phases from a Dask callback per task: until the first task ends (the first round
  trips), the chunk tasks, and the final join (`concatenate3`, one thread), with the join's
  own wall and system time;
* CPU per kind of thread (/proc/self/task), and how many of the process's threads were
  runnable in each 50 ms (sampled every 5 ms; >= 2 is both cores busy).
A 5 ms sampler costs a little CPU itself: use the benchmarks for times, this for shares.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_stac, bench_timeseries  # noqa: E402
from benchmarks.servers import RangeServer  # noqa: E402


def thread_cpu() -> dict[int, tuple[str, float]]:
    """Native thread id -> (kind of thread, user + system seconds so far)."""
    names = {t.native_id: t.name.rstrip("0123456789_-") for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[int(tid)] = (names.get(int(tid), "native"), (int(fields[11]) + int(fields[12])) / tick)
    return out


class Runnable:
    """Counts the process's runnable threads every 5 ms on a thread of its own."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        me = threading.get_native_id()
        while not self._stop.is_set():
            running = 0
            for tid in os.listdir("/proc/self/task"):
                if int(tid) == me:
                    continue
                try:
                    state = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1][1]
                except FileNotFoundError:
                    continue
                running += state == "R"
            self.samples.append((time.perf_counter(), running))
            time.sleep(0.005)

    def __enter__(self) -> Runnable:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cube(job: str, lib: str, base_url: str) -> Any:
    """The dask array of one load of the job's items, as the benchmarks build it."""
    if job == "timeseries":
        scenes, when = bench_timeseries.ensure_scenes(6)
        items = bench_stac.items_for("ts", base_url, scenes, size=bench_timeseries.SIZE,
                                     dates=when)
        kwargs: dict[str, Any] = {"groupby": "solar_day"}
        chunks = 1024
    else:
        items = bench_stac.items_for("two-zones", base_url, bench_stac.ensure_scenes("two-zones"))
        kwargs, chunks = {}, 2048
    if lib == "daskcog":
        import daskcog

        return daskcog.load(items, chunks=chunks, crs="EPSG:32633", resolution=bench_stac.RES,
                            client_options={"allow_http": True}, **kwargs).data
    import odc.stac
    import pystac

    os.environ.update(bench_stac.GDAL_ENV)
    ds = odc.stac.load([pystac.Item.from_dict(it) for it in items], bands=["data"],
                       crs="EPSG:32633", resolution=bench_stac.RES, resampling="nearest",
                       chunks={"x": chunks, "y": chunks}, **kwargs)
    return ds["data"].data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", choices=("timeseries", "two-zones"), default="timeseries")
    parser.add_argument("--lib", choices=("daskcog", "odc-stac"), default="daskcog")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    import dask
    import dask.array.core as array_core
    from dask.callbacks import Callback

    dask.config.set(scheduler="threads", num_workers=args.threads)
    ends: list[float] = []
    join: dict[str, float] = {}
    concatenate3 = array_core.concatenate3

    def timed_join(arrays: Any) -> Any:
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD)
        out = concatenate3(arrays)
        after = resource.getrusage(resource.RUSAGE_THREAD)
        join.update(start=start, wall=time.perf_counter() - start,
                    sys=after.ru_stime - before.ru_stime)
        return out

    array_core.concatenate3 = timed_join

    class TaskEnds(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            ends.append(time.perf_counter())

    with RangeServer(bench_stac.DATA, latency_ms=args.latency_ms) as server:
        array = cube(args.job, args.lib, server.url)
        cpu0, use0 = thread_cpu(), resource.getrusage(resource.RUSAGE_SELF)
        with Runnable() as runnable, TaskEnds():
            t0, c0 = time.perf_counter(), time.process_time()
            array.compute()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        use1, cpu1 = resource.getrusage(resource.RUSAGE_SELF), thread_cpu()
    print(f"{args.lib} {args.job}: wall {wall:.3f} s, process CPU {cpu:.3f} s, minor faults "
          f"{use1.ru_minflt - use0.ru_minflt}, system {use1.ru_stime - use0.ru_stime:.2f} s")
    first = min(ends) - t0
    tasks_end = join.get("start", t0 + wall) - t0
    print(f"phases: first task done {first:.3f} s; chunk tasks until {tasks_end:.3f} s; final "
          f"join {join.get('wall', 0.0):.3f} s (system {join.get('sys', 0.0):.3f} s)")
    per_kind: dict[str, float] = collections.Counter()
    for tid, (kind, seconds) in cpu1.items():
        per_kind[kind] += seconds - cpu0.get(tid, (kind, 0.0))[1]
    ranked = sorted(per_kind.items(), key=lambda kv: -kv[1])
    print("CPU by thread kind:", ", ".join(
        f"{kind} {seconds:.2f} s" for kind, seconds in ranked if seconds >= 0.01))
    bins: dict[int, list[int]] = collections.defaultdict(list)
    for when, running in runnable.samples:
        if t0 <= when <= t0 + wall:
            bins[int((when - t0) / 0.05)].append(running)
    print("runnable threads per 50 ms:", " ".join(
        f"{sum(v) / len(v):.1f}" for _, v in sorted(bins.items())))
    share = [min(running, 2) for when, running in runnable.samples if t0 <= when <= t0 + wall]
    if share:
        print(f"cores busy (of 2, sampled): {sum(share) / len(share):.2f} on average")


if __name__ == "__main__":
    main()
