"""Two heap walks at once: how much a second core adds to the capture's memory-bound walk.

    python bench/walk_scaling.py --objects 3000000

A snapshot's walk waits on memory far more than it computes, so splitting it over two
threads pays only as far as the machine serves two walkers' cache misses at once. This
measures that bound without writing the split: each walker is a separate process with its
own synthetic heap (bench/heap.py), timed first alone, then two at once, started together.
Each times `--reps` calls of `heapsight.snapshot(path, fork=False)` (the walk alone, from
the snapshot's summary, and the whole call) and of `gc.collect()`, which walks the same
heap in C. The closing line gives the throughput of two walkers against one: 2.0 when the
machine serves both in full, 1.0 when they only take turns.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heap  # noqa: E402

CHILD_TIMEOUT_S = 900


def child(objects: int, reps: int) -> None:
    import heapsight

    heap.build_heap(objects)
    gc.collect()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    path = Path(tempfile.mkdtemp(prefix="heapsight-scaling-")) / "walk.hsnap"
    walk_ms, snapshot_s, collect_s = [], [], []
    for _ in range(reps):
        started = time.perf_counter()
        summary = heapsight.snapshot(str(path), fork=False)
        snapshot_s.append(time.perf_counter() - started)
        walk_ms.append(summary["walk_ms"])
        started = time.perf_counter()
        gc.collect()
        collect_s.append(time.perf_counter() - started)
    path.unlink(missing_ok=True)
    path.parent.rmdir()
    result = {"walk_ms": walk_ms, "snapshot_s": snapshot_s, "gc_collect_s": collect_s}
    print(json.dumps(result), flush=True)


def run_together(count: int, objects: int, reps: int) -> list[dict[str, list[float]]]:
    """Starts `count` walkers, lets them build their heaps, then releases them at once."""
    command = [sys.executable, __file__, "--child", "--objects", str(objects)]
    walkers = [
        subprocess.Popen(
            [*command, "--reps", str(reps)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for walker in walkers:
            assert walker.stdout is not None
            if walker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a walker exited while building its heap ({walker.wait()})")
        for walker in walkers:
            assert walker.stdin is not None
            walker.stdin.write("go\n")
            walker.stdin.flush()
        results = []
        for walker in walkers:
            out, _ = walker.communicate(timeout=CHILD_TIMEOUT_S)
            if walker.returncode != 0:
                raise RuntimeError(f"a walker failed with exit code {walker.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for walker in walkers:
            if walker.poll() is None:
                walker.kill()
                walker.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.objects, args.reps)
        return 0

    print(f"{args.objects} gc-tracked objects per walker, {args.reps} calls each, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    rows = [("alone", run_together(1, args.objects, args.reps))]
    rows.append(("two at once", run_together(2, args.objects, args.reps)))
    print(f"{'walkers':<12} {'walk ms':>20} {'snapshot s':>20} {'gc.collect s':>20}")
    for label, results in rows:
        walks = " / ".join(f"{statistics.median(r['walk_ms']):.0f}" for r in results)
        snaps = " / ".join(f"{statistics.median(r['snapshot_s']):.3f}" for r in results)
        collects = " / ".join(f"{statistics.median(r['gc_collect_s']):.3f}" for r in results)
        print(f"{label:<12} {walks:>20} {snaps:>20} {collects:>20}")
    alone = statistics.median(rows[0][1][0]["walk_ms"])
    together = statistics.mean(statistics.median(r["walk_ms"]) for r in rows[1][1])
    print(f"walk throughput of two walkers against one: {2 * alone / together:.2f} "
          f"(2.00: the machine serves both in full; 1.00: they take turns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
