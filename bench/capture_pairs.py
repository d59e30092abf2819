"""Before/after pairs for the capture: one build against another on the same heap.

`bench/capture.py` runs every peer and takes minutes; on this shared 2-core machine one
call's CPU time moves by 20-30% from run to run, so a change to the capture is judged by
pairs of this script run back to back, one per build, each in its own virtualenv:

    for venv in .venv-bench-old .venv-bench-new .venv-bench-old .venv-bench-new; do
        $venv/bin/python bench/capture_pairs.py --objects 3000000
    done

Each run builds the synthetic heap (bench/heap.py), measures the extra peak memory of one
`heapsight.snapshot(path, fork=False)` (VmHWM reset through /proc/self/clear_refs), then
alternates `gc.collect()`, `snapshot(path, fork=False)` and `capture_heap()` and prints
the median wall and CPU time of each, the snapshot/gc.collect ratio of wall times, and
the snapshot's phases from its own summary (walk, the steps after it until packed,
compressing and writing; medians) with the number of walking threads, on one line.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heap  # noqa: E402


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import heapsight
    from heapsight import _heapsight

    heap.build_heap(args.objects)
    gc.collect()
    path = Path(tempfile.mkdtemp(prefix="heapsight-pairs-")) / "pairs.hsnap"
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    rss_kib = _status_kib("VmRSS")
    summary = heapsight.snapshot(str(path), fork=False)
    peak_per_node = (_status_kib("VmHWM") - rss_kib) * 1024 / summary["nodes"]
    file_per_node = path.stat().st_size / summary["nodes"]

    calls = {
        "gc.collect": gc.collect,
        "snapshot": lambda: heapsight.snapshot(str(path), fork=False),
        "capture_heap": _heapsight.capture_heap,
    }
    phases: dict[str, list[float]] = {"walk": [], "after": [], "write": []}
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.reps):
        for name, call in calls.items():
            started_cpu, started = _cpu_s(), time.perf_counter()
            result = call()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(_cpu_s() - started_cpu)
            if name == "snapshot":
                phases["walk"].append(result["walk_ms"])
                phases["after"].append(result["capture_ms"] - result["walk_ms"])
                phases["write"].append(result["write_ms"])
                summary = result
            del result
    wall_medians = {name: statistics.median(values) for name, values in wall.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    path.unlink()
    # Wall time is what the caller waits for; CPU time adds up the threads that share the
    # work after the walk, and so says what the parallel part costs.
    print(
        f"{Path(sys.prefix).name} {time.strftime('%H:%M:%S')} nodes={summary['nodes']:,} "
        f"peak={peak_per_node:.1f}B/node file={file_per_node:.2f}B/node "
        + " ".join(
            f"{name}={wall_medians[name]:.3f}s(cpu {cpu_medians[name]:.3f})" for name in calls
        )
        + f" snapshot/gc={wall_medians['snapshot'] / wall_medians['gc.collect']:.2f} "
        + " ".join(f"{name}={statistics.median(ms):.0f}ms" for name, ms in phases.items())
        + f" walk_threads={summary.get('walk_threads', 1)}",
        flush=True,
    )
    # The heap is dropped with the process; tearing it down object by object takes seconds.
    os._exit(0)


if __name__ == "__main__":
    main()
