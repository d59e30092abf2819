"""Heap capture benchmark: heapsight against gc, objgraph, guppy3, pympler, tracemalloc, memray.

Run:  python bench/capture.py --objects 1000000 3000000

Each heap size is built in a FRESH subprocess (heaps never mix), by bench/heap.py: a
synthetic web-app heap of N gc-tracked objects with 100 leaked `UserSession`s. In that
process, in this order:

1. peak memory of `heapsight.snapshot(fork=False)` (first, so nothing else has raised the
   resident-set high-water mark; VmHWM is reset through /proc/self/clear_refs where the
   kernel allows it) and the file size;
2. medians over `--reps` runs of `len(gc.get_objects())`, `gc.collect()`,
   `objgraph.typestats()`, `heapsight.census()`, `heapsight.snapshot(fork=False)`, and the
   default `heapsight.snapshot()`, which walks in a forked child: its CPU time is the
   parent's plus the child's (`RUSAGE_CHILDREN`);

The goals judge the in-process capture (`fork=False`): the same work as the forked one,
measured where CPU time and peak memory belong to the measuring process.
3. the why-kept question for the 100 leaked sessions: heapsight captures once and asks
   for each path; objgraph `find_backref_chain(obj, is_proper_module)` is timed on a few
   sessions and extrapolated to 100 (it runs a full collection and a `gc.get_referrers`
   scan per step, so its cost per object does not depend on the others);
4. guppy3 `hpy().heap()` in a warm process (one untimed call first), pympler
   `muppy.get_objects()` + `summary.summarize()`.

tracemalloc and memray must trace the allocations as they happen, so each gets its own
fresh process per size: the heap is built under tracing (the build slowdown is reported),
then the tracer's "what is alive now" answer is timed. pympler, tracemalloc and memray
take minutes on big heaps, so they run only up to `--slow-peers-max` objects (1M by
default), which keeps a run near ten minutes.

Every heapsight call is guarded: a piece that is not built yet shows as `n/a` with the
reason, never as a number. The summary table compares each figure with its goal.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import heap as synthetic  # noqa: E402  (bench/ is not a package; the path is set above)
from child import run_json_child  # noqa: E402

OBJGRAPH_SAMPLE = 3

# Goals: (result key, description, comparison, threshold).
GOALS = [
    ("census_over_get_objects", "census / len(gc.get_objects())", "<=", 1.5),
    ("objgraph_over_census", "objgraph.typestats / census", ">=", 2.5),
    ("snapshot_over_collect", "snapshot / gc.collect()", "<=", 0.75),
    ("guppy_over_snapshot", "guppy3 heap() / snapshot", ">=", 2.0),
    ("objgraph_over_heapsight_why", "why-kept x100: objgraph / heapsight", ">=", 50.0),
    ("snapshot_peak_bytes_per_node", "snapshot extra peak RSS, bytes/node", "<=", 40.0),
    ("snapshot_file_bytes_per_node", "snapshot file, bytes/node", "<=", 10.0),
]


# ---------------------------------------------------------------------------- helpers


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _cpu_ticks() -> tuple[int, int] | None:
    """(stolen, all) CPU ticks of the machine so far, from /proc/stat; None elsewhere.

    A virtual machine's host may run other guests on its cores ("steal"): the walk's two
    threads then share less than two cores, which the load average does not show.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


# CPU seconds of the calls timed by `_time_calls` since `Recorder.run` last cleared it: the
# machine is shared, and CPU time shows how much of a wall time is waiting for a core.
_CPU_TIMES: list[float] = []


def _time_calls(fn: Callable[[], Any], reps: int) -> list[float]:
    """Wall times of `reps` calls; the result is dropped outside the timed region."""
    times = []
    for _ in range(reps):
        cpu = time.process_time()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        _CPU_TIMES.append(time.process_time() - cpu)
        del result
    return times


def _time_forking_calls(fn: Callable[[], Any], reps: int) -> list[float]:
    """As `_time_calls`, the CPU time of waited-for children included."""
    times = []
    for _ in range(reps):
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = time.process_time()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        _CPU_TIMES.append(time.process_time() - cpu + child_cpu)
        del result
    return times


def _snapshot_in_process(path: Path) -> dict:
    import heapsight

    return heapsight.snapshot(path, fork=False)


def _median(times: list[float]) -> float:
    return statistics.median(times)


class Recorder:
    """Collects named figures; a failing measurement becomes an `n/a` with its reason."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.missing: dict[str, str] = {}

    def run(self, key: str, measure: Callable[[], Any]) -> Any | None:
        _CPU_TIMES.clear()
        try:
            value = measure()
        except Exception as exc:  # a missing or broken piece must not stop the others
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            self.missing[key] = reason
            print(f"  {key}: n/a ({reason})", file=sys.stderr, flush=True)
            if os.environ.get("HEAPSIGHT_BENCH_TRACE"):
                traceback.print_exc()
            return None
        self.values[key] = value
        if _CPU_TIMES:
            self.values[f"{key}_cpu"] = statistics.median(_CPU_TIMES)
        print(f"  {key}: {_short(value)}", file=sys.stderr, flush=True)
        return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 200 else text[:197] + "..."


def _node_count(summary: Any) -> int:
    """Node count from `heapsight.snapshot()`'s summary dict, whatever its exact key."""
    if not isinstance(summary, dict):
        raise TypeError(f"snapshot() returned {type(summary).__name__}, expected a dict")
    for key in ("nodes", "n_nodes", "node_count", "objects", "n_objects"):
        if isinstance(summary.get(key), int):
            return summary[key]
    for key, value in summary.items():
        if "node" in key and isinstance(value, int):
            return value
    raise KeyError(f"no node count in snapshot summary keys {sorted(summary)}")


def _session_ignore_list() -> list[int]:
    # The benchmark's own frames hold the session list; they are not why a session lives.
    frame = sys._getframe()
    found = []
    while frame is not None:
        found.append(id(frame))
        frame = frame.f_back
    return found


# ----------------------------------------------------------------------- child: main


def child_main(
    n_objects: int,
    reps: int,
    slow_reps: int,
    objgraph_sample: int,
    with_pympler: bool,
    single_sample: int = 10,
) -> dict:
    # Every peer is imported before the heap is built, so all of them see the same heap.
    import guppy
    import heapsight
    import objgraph
    from heapsight import _heapsight
    from pympler import muppy, summary

    rec = Recorder()
    rec.values["loadavg_start"] = os.getloadavg()[0]
    ticks_start = _cpu_ticks()
    build_start = time.perf_counter()
    synthetic.build_heap(n_objects)
    rec.values["build_s"] = time.perf_counter() - build_start
    rec.values["gc_tracked"] = len(gc.get_objects())
    rec.values["python"] = platform.python_version()
    sessions = synthetic.leaked_sessions()
    tmpdir = Path(tempfile.mkdtemp(prefix="heapsight-bench-"))
    snap_path = tmpdir / "bench.hsnap"

    # 1. Peak memory, before anything else raises the high-water mark.
    def snapshot_memory() -> dict:
        reset = _reset_peak_rss()
        rss_before = _status_kib("VmRSS")
        hwm_before = _status_kib("VmHWM")
        summary_ = _snapshot_in_process(snap_path)
        hwm_after = _status_kib("VmHWM")
        nodes = _node_count(summary_)
        extra = (hwm_after - rss_before) * 1024
        file_bytes = snap_path.stat().st_size
        return {
            "hwm_reset": reset,
            "rss_before_kib": rss_before,
            "hwm_before_kib": hwm_before,
            "hwm_after_kib": hwm_after,
            "nodes": nodes,
            "summary": summary_,
            "peak_extra_bytes": extra,
            # Without a reset the peak may hide under the build's own high-water mark.
            "peak_is_upper_bound": not reset and hwm_after == hwm_before,
            "peak_bytes_per_node": extra / nodes,
            "file_bytes": file_bytes,
            "file_bytes_per_node": file_bytes / nodes,
        }

    memory = rec.run("snapshot_memory", snapshot_memory)
    if memory is not None:
        rec.values["snapshot_nodes"] = memory["nodes"]
        rec.values["snapshot_peak_bytes_per_node"] = memory["peak_bytes_per_node"]
        rec.values["snapshot_file_bytes_per_node"] = memory["file_bytes_per_node"]

    # 2. Timings of the whole-heap walks.
    rec.run("get_objects_s", lambda: _median(_time_calls(lambda: len(gc.get_objects()), reps)))
    rec.run("gc_collect_s", lambda: _median(_time_calls(gc.collect, reps)))
    rec.run("objgraph_typestats_s", lambda: _median(_time_calls(objgraph.typestats, reps)))
    rec.run("census_s", lambda: _median(_time_calls(heapsight.census, reps)))
    rec.run("typestats_s", lambda: _median(_time_calls(heapsight.typestats, reps)))
    rec.run(
        "snapshot_s",
        lambda: _median(_time_calls(lambda: _snapshot_in_process(snap_path), reps)),
    )
    rec.run(
        "snapshot_fork_s",
        lambda: _median(_time_forking_calls(lambda: heapsight.snapshot(snap_path), reps)),
    )
    rec.run(
        "capture_heap_s",
        lambda: _median(_time_calls(_heapsight.capture_heap, reps)),
    )

    def census_agrees() -> dict:
        # A fast census that counts the wrong thing is no win: compare with objgraph.
        ours = heapsight.census()
        theirs = objgraph.typestats()
        ours_total = sum(count for count, _ in ours.values())
        return {
            "census_objects": ours_total,
            "objgraph_objects": sum(theirs.values()),
            "UserSession": sum(c for name, (c, _) in ours.items() if name.endswith("UserSession")),
        }

    rec.run("census_check", census_agrees)

    # 3. Why is each leaked session alive? (Before guppy3 and pympler add their own state.)
    def _path_stats(paths: list) -> dict:
        found = [p for p in paths if p]
        return {
            "paths_found": len(found),
            "paths_through__SESSIONS": sum(
                1 for p in found if any("_SESSIONS" in str(step) for step in p)
            ),
            "example": found[0] if found else None,
        }

    def heapsight_why() -> dict:
        # The public batch call: one capture, one search for all 100.
        cpu = time.process_time()
        start = time.perf_counter()
        paths = heapsight.paths_to(sessions)
        elapsed = time.perf_counter() - start
        _CPU_TIMES.append(time.process_time() - cpu)
        return {"total_s": elapsed, **_path_stats(paths)}

    why = rec.run("heapsight_why", heapsight_why)
    if why is not None:
        rec.values["heapsight_why100_s"] = why["total_s"]
        rec.values["heapsight_why100_s_cpu"] = rec.values["heapsight_why_cpu"]

    def heapsight_why_one_by_one() -> dict:
        # One capture, then one single-object search per session (an interactive session).
        # Timed on `single_sample` sessions and extrapolated, as each search is independent.
        ignore = _session_ignore_list()
        start = time.perf_counter()
        captured = _heapsight.capture_heap()
        captured_at = time.perf_counter()
        sample = sessions[:single_sample]
        paths = [_heapsight.heap_path_to(captured, id(s), ignore) for s in sample]
        per_path = (time.perf_counter() - captured_at) / len(sample)
        capture_s = captured_at - start
        return {
            "total_s": capture_s + per_path * len(sessions),
            "capture_s": capture_s,
            "per_path_ms": per_path * 1000,
            "sampled": len(sample),
            **_path_stats(paths),
        }

    one_by_one = rec.run("heapsight_why_one_by_one", heapsight_why_one_by_one)
    if one_by_one is not None:
        rec.values["heapsight_why100_single_s"] = one_by_one["total_s"]
        if why is None:
            rec.values["heapsight_why100_s"] = one_by_one["total_s"]

    def heapsight_public_path_to() -> float:
        # The one-call public API recaptures the heap; timed on one session for reference.
        return _median(_time_calls(lambda: heapsight.path_to(sessions[0]), 1))

    rec.run("heapsight_path_to_one_s", heapsight_public_path_to)

    def objgraph_why() -> dict:
        times = []
        chains_ok = 0
        for session in sessions[:objgraph_sample]:
            cpu = time.process_time()
            start = time.perf_counter()
            chain = objgraph.find_backref_chain(session, objgraph.is_proper_module)
            times.append(time.perf_counter() - start)
            _CPU_TIMES.append(time.process_time() - cpu)
            module = chain[0]
            if getattr(module, "__name__", None) == synthetic.SESSIONS_MODULE:
                chains_ok += 1
            del chain, module
        per_object = _median(times)
        return {
            "sampled": len(times),
            "per_object_s": per_object,
            "extrapolated_100_s": per_object * len(sessions),
            "chains_to_sessions_module": chains_ok,
        }

    objgraph_res = rec.run("objgraph_why", objgraph_why)
    if objgraph_res is not None:
        rec.values["objgraph_why100_s"] = objgraph_res["extrapolated_100_s"]
        rec.values["objgraph_why100_s_cpu"] = rec.values["objgraph_why_cpu"] * len(sessions)

    # 4. Peers that build a full view of the heap.
    hp = guppy.hpy()

    def guppy_warm() -> float:
        hp.heap()  # the first call builds guppy's caches; users pay it once per process
        return _median(_time_calls(hp.heap, slow_reps))

    rec.run("guppy_heap_s", guppy_warm)

    def pympler_summary() -> float:
        def one() -> int:
            objects = muppy.get_objects()
            rows = summary.summarize(objects)
            return len(rows)

        return _median(_time_calls(one, slow_reps))

    if with_pympler:
        rec.run("pympler_summary_s", pympler_summary)

    rec.values["loadavg_end"] = os.getloadavg()[0]
    ticks_end = _cpu_ticks()
    if ticks_start and ticks_end and ticks_end[1] > ticks_start[1]:
        stolen = ticks_end[0] - ticks_start[0]
        rec.values["cpu_steal_share"] = stolen / (ticks_end[1] - ticks_start[1])
    try:
        snap_path.unlink(missing_ok=True)
        tmpdir.rmdir()
    except OSError:
        pass
    return {"values": rec.values, "missing": rec.missing}


# -------------------------------------------------------------------- child: tracers


def child_tracemalloc(n_objects: int, reps: int) -> dict:
    import tracemalloc

    rec = Recorder()
    tracemalloc.start()
    start = time.perf_counter()
    synthetic.build_heap(n_objects)
    rec.values["traced_build_s"] = time.perf_counter() - start
    rec.run(
        "tracemalloc_snapshot_s",
        lambda: _median(_time_calls(tracemalloc.take_snapshot, reps)),
    )

    tracemalloc.stop()
    return {"values": rec.values, "missing": rec.missing}


def child_memray(n_objects: int) -> dict:
    import memray

    rec = Recorder()
    tmpdir = Path(tempfile.mkdtemp(prefix="heapsight-bench-memray-"))
    capture = tmpdir / "build.bin"
    start = time.perf_counter()
    # Without trace_python_allocators memray sees pymalloc arenas, not objects.
    with memray.Tracker(capture, trace_python_allocators=True):
        synthetic.build_heap(n_objects)
    rec.values["traced_build_s"] = time.perf_counter() - start
    rec.values["memray_file_bytes"] = capture.stat().st_size

    def live_allocations() -> dict:
        # memray's answer to "what is alive now": the allocations not freed when the
        # tracker stopped, grouped by stack. It knows stacks, not references.
        start = time.perf_counter()
        reader = memray.FileReader(capture)
        records = list(reader.get_leaked_allocation_records(merge_threads=True))
        return {
            "seconds": time.perf_counter() - start,
            "stacks": len(records),
            "allocations": sum(r.n_allocations for r in records),
        }

    live = rec.run("memray_live", live_allocations)
    if live is not None:
        rec.values["memray_live_s"] = live["seconds"]
    capture.unlink(missing_ok=True)
    tmpdir.rmdir()
    return {"values": rec.values, "missing": rec.missing}


# ----------------------------------------------------------------------------- parent


def _spawn(args: list[str]) -> dict:
    return run_json_child([sys.executable, str(Path(__file__).resolve()), *args])


def _ratios(values: dict) -> None:
    def ratio(key: str, num: str, den: str) -> None:
        if isinstance(values.get(num), (int, float)) and values.get(den):
            values[key] = values[num] / values[den]
        if isinstance(values.get(f"{num}_cpu"), (int, float)) and values.get(f"{den}_cpu"):
            values[f"{key}_cpu"] = values[f"{num}_cpu"] / values[f"{den}_cpu"]

    ratio("census_over_get_objects", "census_s", "get_objects_s")
    ratio("objgraph_over_census", "objgraph_typestats_s", "census_s")
    ratio("snapshot_over_collect", "snapshot_s", "gc_collect_s")
    ratio("guppy_over_snapshot", "guppy_heap_s", "snapshot_s")
    ratio("pympler_over_snapshot", "pympler_summary_s", "snapshot_s")
    ratio("objgraph_over_heapsight_why", "objgraph_why100_s", "heapsight_why100_s")
    ratio("tracemalloc_over_snapshot", "tracemalloc_snapshot_s", "snapshot_s")
    ratio("memray_live_over_snapshot", "memray_live_s", "snapshot_s")


ROWS = [
    ("gc_tracked", "gc-tracked objects", "{:,}"),
    ("snapshot_nodes", "snapshot nodes (tracked + leaves)", "{:,}"),
    ("build_s", "heap build, s", "{:.2f}"),
    ("get_objects_s", "len(gc.get_objects()), s", "{:.3f}"),
    ("gc_collect_s", "gc.collect(), s", "{:.3f}"),
    ("objgraph_typestats_s", "objgraph.typestats(), s", "{:.3f}"),
    ("census_s", "heapsight.census(), s", "{:.3f}"),
    ("typestats_s", "heapsight.typestats(), s", "{:.3f}"),
    ("snapshot_s", "heapsight.snapshot(path, fork=False), s", "{:.3f}"),
    ("snapshot_fork_s", "heapsight.snapshot(path) forked (cpu: parent + child), s", "{:.3f}"),
    ("capture_heap_s", "heapsight capture_heap() (in memory), s", "{:.3f}"),
    ("guppy_heap_s", "guppy3 hpy().heap() warm, s", "{:.3f}"),
    ("pympler_summary_s", "pympler muppy.get_objects+summarize, s", "{:.3f}"),
    ("tracemalloc_build_s", "build under tracemalloc, s", "{:.2f}"),
    ("tracemalloc_snapshot_s", "tracemalloc.take_snapshot(), s", "{:.3f}"),
    ("memray_build_s", "build under memray.Tracker, s", "{:.2f}"),
    ("memray_live_s", "memray read live allocations, s", "{:.3f}"),
    ("heapsight_why100_s", "why-kept x100: heapsight.paths_to, s", "{:.3f}"),
    ("heapsight_path_to_one_s", "heapsight.path_to(one session), s", "{:.3f}"),
    ("heapsight_why100_single_s", "why-kept x100: capture + heap_path_to each, s", "{:.3f}"),
    ("objgraph_why100_s", "why-kept x100: objgraph (extrapolated), s", "{:.1f}"),
    ("census_over_get_objects", "ratio census / get_objects", "{:.2f}"),
    ("objgraph_over_census", "ratio objgraph / census", "{:.2f}"),
    ("snapshot_over_collect", "ratio snapshot / gc.collect", "{:.2f}"),
    ("guppy_over_snapshot", "ratio guppy3 / snapshot", "{:.2f}"),
    ("pympler_over_snapshot", "ratio pympler / snapshot", "{:.2f}"),
    ("tracemalloc_over_snapshot", "ratio tracemalloc snapshot / snapshot", "{:.2f}"),
    ("objgraph_over_heapsight_why", "ratio why-kept objgraph / heapsight", "{:.1f}"),
    ("snapshot_peak_bytes_per_node", "snapshot extra peak RSS, B/node", "{:.1f}"),
    ("snapshot_file_bytes_per_node", "snapshot file, B/node", "{:.2f}"),
]


def _cell(values: dict, key: str, fmt: str) -> str:
    value = values.get(key)
    if value is None:
        return "n/a"
    cpu = values.get(f"{key}_cpu")
    if cpu is not None:
        return f"{fmt.format(value)} (cpu {fmt.format(cpu)})"
    return fmt.format(value)


def _verdict(value: float, op: str, threshold: float) -> str:
    ok = value <= threshold if op == "<=" else value >= threshold
    return f"{'PASS' if ok else 'FAIL'} ({value:.2f})"


def render(results: dict[int, dict]) -> str:
    sizes = sorted(results)
    header = "| measure | " + " | ".join(f"N={n:,}" for n in sizes) + " |"
    lines = [header, "|---|" + "---|" * len(sizes)]
    for key, label, fmt in ROWS:
        cells = [_cell(results[n]["values"], key, fmt) for n in sizes]
        if all(c == "n/a" for c in cells):
            continue
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| goal | " + " | ".join(f"N={n:,}" for n in sizes) + " |")
    lines.append("|---|" + "---|" * len(sizes))
    for key, label, op, threshold in GOALS:
        cells = []
        for n in sizes:
            value = results[n]["values"].get(key)
            if value is None:
                cells.append("NOT MEASURED")
                continue
            cell = _verdict(value, op, threshold)
            cpu = results[n]["values"].get(f"{key}_cpu")
            if cpu is not None:
                cell = f"wall {cell}; cpu {_verdict(cpu, op, threshold)}"
            cells.append(cell)
        lines.append(f"| {label} {op} {threshold:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Time goals are met by the wall verdict: how long the call keeps its caller (and,"
        " while it holds the GIL, the application) waiting. The cpu verdict adds up every"
        " thread the call uses (the snapshot walks on two), for reference."
    )
    notes = []
    for n in sizes:
        values = results[n]["values"]
        why = values.get("objgraph_why")
        if why:
            notes.append(
                f"N={n:,}: objgraph find_backref_chain timed on {why['sampled']} sessions "
                f"({why['per_object_s']:.2f} s each, {why['chains_to_sessions_module']} "
                f"reached {synthetic.SESSIONS_MODULE}) and extrapolated to 100."
            )
        hw = values.get("heapsight_why")
        if hw:
            notes.append(
                f"N={n:,}: heapsight.paths_to found {hw['paths_found']}/100 paths "
                f"({hw['paths_through__SESSIONS']} through _SESSIONS); "
                f"example: {hw['example']}"
            )
        single = values.get("heapsight_why_one_by_one")
        if single:
            notes.append(
                f"N={n:,}: one capture {single['capture_s']:.2f} s + "
                f"{single['per_path_ms']:.2f} ms per heap_path_to (timed on "
                f"{single.get('sampled', 100)}, extrapolated to 100); found "
                f"{single['paths_found']}/{single.get('sampled', 100)} "
                f"({single['paths_through__SESSIONS']} via _SESSIONS)"
            )
        mem = values.get("snapshot_memory")
        if mem:
            how = "VmHWM reset via clear_refs" if mem["hwm_reset"] else "VmHWM not resettable"
            bound = " (upper bound)" if mem["peak_is_upper_bound"] else ""
            notes.append(
                f"N={n:,}: snapshot peak +{mem['peak_extra_bytes'] / 2**20:.1f} MiB over "
                f"RSS {mem['rss_before_kib'] / 1024:.0f} MiB{bound} ({how}); file "
                f"{mem['file_bytes'] / 2**20:.1f} MiB."
            )
        if "loadavg_start" in values:
            notes.append(
                f"N={n:,}: 1-minute load average {values['loadavg_start']:.1f} at the start, "
                f"{values.get('loadavg_end', float('nan')):.1f} at the end (2 cores)"
                + (
                    f"; {values['cpu_steal_share']:.1%} of CPU time stolen by the host."
                    if "cpu_steal_share" in values
                    else "."
                )
            )
        check = values.get("census_check")
        if check:
            notes.append(
                f"N={n:,}: census counted {check['census_objects']:,} objects, objgraph "
                f"{check['objgraph_objects']:,}; UserSession {check['UserSession']}."
            )
        for key, reason in sorted(results[n]["missing"].items()):
            notes.append(f"N={n:,}: {key} not measured: {reason}")
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--reps", type=int, default=3, help="repetitions of fast calls")
    parser.add_argument("--slow-reps", type=int, default=1, help="reps of guppy3/pympler")
    parser.add_argument("--objgraph-sample", type=int, default=OBJGRAPH_SAMPLE)
    parser.add_argument(
        "--slow-peers-max",
        type=int,
        default=1_000_000,
        help="run pympler, tracemalloc and memray (minutes each on big heaps) only on heaps "
        "up to this many objects, so a run stays near 10 minutes",
    )
    parser.add_argument("--no-pympler", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--child", choices=["main", "tracemalloc", "memray"])
    parser.add_argument(
        "--from-json", help="print the tables of an earlier run saved with --json, run nothing"
    )
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        n = args.objects[0]
        if args.child == "main":
            result = child_main(
                n, args.reps, args.slow_reps, args.objgraph_sample, not args.no_pympler
            )
        elif args.child == "tracemalloc":
            result = child_tracemalloc(n, args.reps)
        else:
            result = child_memray(n)
        with open(args.out, "w") as fh:
            json.dump(result, fh, default=str)
        return 0

    if args.from_json:
        with open(args.from_json) as fh:
            saved = {int(n): r for n, r in json.load(fh).items()}
        for result in saved.values():
            _ratios(result["values"])
        print(render(saved))
        return 0

    results: dict[int, dict] = {}
    started = time.time()
    for n in args.objects:
        common = ["--objects", str(n), "--reps", str(args.reps)]
        slow_peers = n <= args.slow_peers_max
        merged = _spawn(
            [
                "--child",
                "main",
                *common,
                "--slow-reps",
                str(args.slow_reps),
                "--objgraph-sample",
                str(args.objgraph_sample),
                *([] if slow_peers else ["--no-pympler"]),
            ]
        )
        if slow_peers:
            for tracer in ("tracemalloc", "memray"):
                traced = _spawn(["--child", tracer, *common])
                for key, value in traced["values"].items():
                    merged["values"][f"{tracer}_build_s" if key == "traced_build_s" else key] = (
                        value
                    )
                for key, reason in traced["missing"].items():
                    merged["missing"][f"{tracer}:{key}"] = reason
        _ratios(merged["values"])
        results[n] = merged

    print()
    print(
        f"heapsight capture benchmark: Python {platform.python_version()} "
        f"({platform.python_implementation()}), {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"reps={args.reps}, slow reps={args.slow_reps}, took {time.time() - started:.0f} s"
    )
    print("Times are medians of wall-clock seconds; (cpu ...) is the process CPU time of the")
    print("same calls: on a shared machine the gap is time spent waiting for a core.")
    print()
    print(render(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({str(n): r for n, r in results.items()}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
