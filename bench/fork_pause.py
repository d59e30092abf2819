"""Pause of a serving process during a heap capture: in-process against fork, and peers.

Run:  python bench/fork_pause.py --objects 3000000

A fresh child interpreter builds the synthetic web-app heap (bench/heap.py) and runs a
"request loop": a thread that sleeps 1 ms, wakes, and records how late it woke. Its worst
lateness while a capture runs is the worst latency a request would have seen, since a
request handler needs the GIL exactly as the ticker does. Measured for:

- heapsight.snapshot(fork=False): the walk holds the GIL (the in-process capture);
- heapsight.snapshot(fork=True): the GIL is held only across fork(); also `pause_ms`,
  heapsight's own figure for that;
- peers, each asked the same kind of question on the same heap: objgraph.typestats(),
  guppy3 hpy().heap() (first call: what an app pays), tracemalloc.take_snapshot() (in its
  own child, since the heap must be built under tracing; skipped above --tracemalloc-max).

Goal: the worst latency with fork <= 50 ms on 3M gc-tracked objects.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import heap as synthetic  # noqa: E402  (bench/ is not a package; the path is set above)
from child import run_json_child  # noqa: E402

GOAL_FORK_WORST_MS = 50.0
TICK_S = 0.001
SETTLE_S = 0.3


class Ticker:
    """A thread that wakes every millisecond and keeps its worst lateness per window."""

    def __init__(self) -> None:
        self._worst = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            time.sleep(TICK_S)
            late = time.perf_counter() - before - TICK_S
            with self._lock:
                self._worst = max(self._worst, late)

    def take_worst(self) -> float:
        """Worst lateness in ms since the previous call."""
        with self._lock:
            worst, self._worst = self._worst, 0.0
        return worst * 1e3

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure(ticker: Ticker, call: Callable[[], Any]) -> dict[str, Any]:
    """Worst ticker lateness over the call and a settling time after it."""
    time.sleep(SETTLE_S)
    ticker.take_worst()
    start = time.perf_counter()
    result = call()
    wall = time.perf_counter() - start
    time.sleep(SETTLE_S)  # a late tick after the call still counts
    return {"worst_ms": ticker.take_worst(), "wall_s": wall, "result": result}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _guarded(out: dict, key: str, fn: Callable[[], Any]) -> None:
    try:
        out[key] = fn()
    except Exception as exc:  # a missing peer must not stop the others
        out.setdefault("missing", {})[key] = f"{type(exc).__name__}: {exc}"[:200]
    print(f"  {key}: {out.get(key, out.get('missing', {}).get(key))}", file=sys.stderr)


def child_main(n_objects: int, reps: int) -> dict:
    import heapsight

    out: dict[str, Any] = {"objects": n_objects}
    start = time.perf_counter()
    synthetic.build_heap(n_objects)
    out["build_s"] = time.perf_counter() - start
    out["gc_tracked"] = len(gc.get_objects())
    ticker = Ticker()
    ticker.start()
    out["idle"] = [measure(ticker, lambda: time.sleep(1.0))["worst_ms"] for _ in range(reps)]
    tmp = Path(tempfile.mkdtemp(prefix="heapsight-bench-fork-"))

    def snapshot_runs(fork: bool) -> list[dict]:
        runs = []
        for i in range(reps):
            path = tmp / f"{'fork' if fork else 'inproc'}{i}.hsnap"
            m = measure(ticker, lambda p=path: heapsight.snapshot(p, fork=fork))
            summary = m.pop("result")
            m["pause_ms"] = summary.get("pause_ms")
            m["pause_cpu_ms"] = summary.get("pause_cpu_ms")
            m["rss_bytes"] = _rss_bytes()
            m["nodes"] = summary.get("nodes")
            runs.append(m)
            path.unlink(missing_ok=True)
        return runs

    # Fork first: the in-process capture leaves more of the heap's pages recently written.
    _guarded(out, "fork", lambda: snapshot_runs(True))
    _guarded(out, "in_process", lambda: snapshot_runs(False))
    os.rmdir(tmp)

    def objgraph_typestats() -> dict:
        import objgraph

        m = measure(ticker, objgraph.typestats)
        m.pop("result")
        return m

    def guppy_heap() -> dict:
        import guppy

        hp = guppy.hpy()
        m = measure(ticker, lambda: hp.heap().size)
        m.pop("result")
        return m

    _guarded(out, "objgraph_typestats", objgraph_typestats)
    _guarded(out, "guppy_heap", guppy_heap)
    ticker.stop()
    return out


def child_tracemalloc(n_objects: int) -> dict:
    import tracemalloc

    out: dict[str, Any] = {}
    tracemalloc.start()
    start = time.perf_counter()
    synthetic.build_heap(n_objects)
    out["traced_build_s"] = time.perf_counter() - start
    ticker = Ticker()
    ticker.start()

    def take() -> dict:
        m = measure(ticker, tracemalloc.take_snapshot)
        m.pop("result")
        return m

    _guarded(out, "tracemalloc_take_snapshot", take)
    ticker.stop()
    tracemalloc.stop()
    return out


def _cpu_context() -> dict[str, Any]:
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    return {"cores": os.cpu_count(), "loadavg": load, "python": sys.version.split()[0]}


def render(result: dict, tm: dict | None) -> str:
    def worst(runs: list[dict] | None) -> str:
        if not runs:
            return "n/a"
        values = [r["worst_ms"] for r in runs]
        return f"{statistics.median(values):.1f} (max {max(values):.1f})"

    def single(entry: dict | None) -> str:
        return "n/a" if not entry else f"{entry['worst_ms']:.1f}"

    def wall(entry: Any) -> str:
        if not entry:
            return "n/a"
        if isinstance(entry, list):
            return f"{statistics.median(r['wall_s'] for r in entry):.2f}"
        return f"{entry['wall_s']:.2f}"

    lines = [
        f"heap: {result['objects']:,} requested, {result.get('gc_tracked', 0):,} gc-tracked",
        "",
        "| capture | worst request-loop latency, ms (median of runs) | call wall time, s |",
        "|---|---|---|",
        f"| idle (no capture, 1 s) | {worst([{'worst_ms': v} for v in result['idle']])} | - |",
        f"| heapsight snapshot, fork | {worst(result.get('fork'))} | {wall(result.get('fork'))} |",
        f"| heapsight snapshot, in-process | {worst(result.get('in_process'))} "
        f"| {wall(result.get('in_process'))} |",
        f"| objgraph.typestats() | {single(result.get('objgraph_typestats'))} "
        f"| {wall(result.get('objgraph_typestats'))} |",
        f"| guppy3 hpy().heap() (first call) | {single(result.get('guppy_heap'))} "
        f"| {wall(result.get('guppy_heap'))} |",
    ]
    tm_entry = (tm or {}).get("tracemalloc_take_snapshot")
    lines.append(
        f"| tracemalloc.take_snapshot() | {single(tm_entry)} | {wall(tm_entry)} |"
        if tm is not None
        else "| tracemalloc.take_snapshot() | skipped | - |"
    )
    fork_runs, inproc_runs = result.get("fork"), result.get("in_process")
    lines.append("")
    if fork_runs:
        pauses = [r["pause_ms"] for r in fork_runs if r.get("pause_ms") is not None]
        cpu = [r["pause_cpu_ms"] for r in fork_runs if r.get("pause_cpu_ms") is not None]
        rss = [r["rss_bytes"] for r in fork_runs if r.get("rss_bytes")]
        if pauses:
            lines.append(
                f"fork(): GIL held (pause_ms) median {statistics.median(pauses):.1f} ms"
                + (f", CPU time of the fork {statistics.median(cpu):.1f} ms" if cpu else "")
                + (f", parent RSS {statistics.median(rss) / 2**20:.0f} MiB" if rss else "")
            )
        fork_worst = statistics.median(r["worst_ms"] for r in fork_runs)
        verdict = "PASS" if fork_worst <= GOAL_FORK_WORST_MS else "FAIL"
        lines.append(f"goal: fork worst latency <= {GOAL_FORK_WORST_MS:.0f} ms: {verdict}")
        if inproc_runs:
            inproc_worst = statistics.median(r["worst_ms"] for r in inproc_runs)
            lines.append(f"in-process / fork worst latency: {inproc_worst / fork_worst:.1f}x")
    for name, missing in {**result.get("missing", {}), **(tm or {}).get("missing", {})}.items():
        lines.append(f"n/a {name}: {missing}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--tracemalloc-max",
        type=int,
        default=3_000_000,
        help="build a traced heap for tracemalloc only up to this many objects",
    )
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--child", choices=["main", "tracemalloc"])
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        if args.child == "main":
            result = child_main(args.objects, args.reps)
        else:
            result = child_tracemalloc(args.objects)
        with open(args.out, "w") as fh:
            json.dump(result, fh, default=str)
        return 0

    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--objects", str(args.objects)]
    context_before = _cpu_context()
    result = run_json_child([*me, "--child", "main", *common, "--reps", str(args.reps)])
    tm = None
    if args.objects <= args.tracemalloc_max:
        tm = run_json_child([*me, "--child", "tracemalloc", *common])
    context_after = _cpu_context()
    if "objects" not in result:
        print(f"the measuring child failed: {result.get('missing')}", file=sys.stderr)
        return 3
    print(render(result, tm))
    print(
        f"\ncontext: {context_before['cores']} cores, Python {context_before['python']}, "
        f"load average before {' '.join(context_before['loadavg'])}, "
        f"after {' '.join(context_after['loadavg'])}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"main": result, "tracemalloc": tm, "context": [context_before, context_after]},
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
