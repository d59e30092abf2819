"""Graph analysis benchmark: dominators and retained sizes, heapsight against guppy3.

Run:  python bench/graph.py                      # both parts
      python bench/graph.py --skip-rust          # only the real-heap part
      python bench/graph.py --objects 1000000    # size of the real heap

Part 1, synthetic graph: runs the Rust example `crates/heapsight_graph/examples/gen_bench.rs`
(10M nodes, 30M edges) in release mode under `/usr/bin/time -v`, prints its own output and
checks the goals: dominators under 15 s, peak memory under 80 B/node + 12 B/edge.

Part 2, a real heap (bench/heap.py, 1M gc-tracked objects, fresh subprocess): the
retained size of each of the 100 leaked sessions and the path that keeps each alive.
- heapsight: one in-memory capture, one dominator tree, 100 look-ups; one path search
  per session on the same capture.
- guppy3: `hpy().heap()` (warm), then `iso(obj).domisize` per session (each is two
  reachability passes over the heap, so a few are timed and extrapolated to 100) and the
  batched `View.domisize_tuple` over all 100 at once.
- objgraph: `find_backref_chain(obj, is_proper_module)` on a few, extrapolated to 100.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import heap as synthetic  # noqa: E402  (bench/ is not a package; the path is set above)

RUST_NODES = 10_000_000
RUST_EDGES = 30_000_000
RUST_SECONDS_GOAL = 15.0
RUST_BYTES_PER_NODE = 80
RUST_BYTES_PER_EDGE = 12
SAMPLE = 3
CHILD_TIMEOUT_S = 1200


# ------------------------------------------------------------------- part 1: Rust


def _parse_time_v(stderr: str) -> dict[str, float]:
    found: dict[str, float] = {}
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if rss:
        found["max_rss_bytes"] = int(rss.group(1)) * 1024
    wall = re.search(
        r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", stderr
    )
    if wall:
        hours = int(wall.group(1) or 0)
        found["wall_s"] = hours * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    return found


def _seconds_in(line: str) -> float | None:
    match = re.search(r"([\d.]+)\s*(ms|s)\b", line)
    if match is None:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def run_rust(example_args: list[str]) -> dict[str, Any]:
    """Build and run gen_bench; figures from its output plus /usr/bin/time -v."""
    example = REPO / "crates/heapsight_graph/examples/gen_bench.rs"
    if not example.exists():
        return {"missing": f"{example.relative_to(REPO)} does not exist yet"}
    build = subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "heapsight_graph", "--example", "gen_bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        return {"missing": "cargo build failed: " + build.stderr.strip()[-300:]}
    binary = REPO / "target/release/examples/gen_bench"
    if not binary.exists():
        return {"missing": f"no binary at {binary}"}
    cmd = ["/usr/bin/time", "-v", str(binary), *example_args]
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        return {"missing": f"gen_bench exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    figures: dict[str, Any] = _parse_time_v(proc.stderr)
    figures["output"] = proc.stdout
    nodes = re.search(r"([\d_,]+)\s+nodes", proc.stdout)
    edges = re.search(r"([\d_,]+)\s+edges", proc.stdout)
    figures["nodes"] = int(re.sub(r"[_,]", "", nodes.group(1))) if nodes else RUST_NODES
    figures["edges"] = int(re.sub(r"[_,]", "", edges.group(1))) if edges else RUST_EDGES
    # The example reports its phases; the goal is on the dominator/retained computation.
    for line in proc.stdout.splitlines():
        if re.search(r"dominat", line, re.IGNORECASE):
            seconds = _seconds_in(line)
            if seconds is not None:
                figures["dominators_s"] = seconds
        peak = re.search(r"peak[^\d]*([\d.]+)\s*(MiB|GiB|bytes)", line, re.IGNORECASE)
        if peak:
            scale = {"bytes": 1, "MiB": 2**20, "GiB": 2**30}[peak.group(2)]
            figures["reported_peak_bytes"] = float(peak.group(1)) * scale
    return figures


# -------------------------------------------------------------- part 2: real heap


def _median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def _caller_frames() -> list[int]:
    frame = sys._getframe()
    found = []
    while frame is not None:
        found.append(id(frame))
        frame = frame.f_back
    return found


def _heapsight_retained(heapsight_ext: Any, captured: Any, addresses: list[int]) -> list[int]:
    """Retained sizes of `addresses` from one capture, via whichever call the build has."""
    for name in ("heap_retained_sizes", "heap_retained", "retained_sizes"):
        fn = getattr(heapsight_ext, name, None)
        if fn is not None:
            return list(fn(captured, addresses))
    raise AttributeError(
        "the extension exposes no retained-size call on a capture "
        "(looked for heap_retained_sizes / heap_retained / retained_sizes)"
    )


def child_real_heap(n_objects: int, sample: int) -> dict[str, Any]:
    import guppy
    import objgraph
    from heapsight import _heapsight

    values: dict[str, Any] = {}
    missing: dict[str, str] = {}

    def record(key: str, measure: Callable[[], Any]) -> None:
        try:
            values[key] = measure()
        except Exception as exc:  # one missing piece must not hide the others
            missing[key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            print(f"  {key}: n/a ({missing[key]})", file=sys.stderr, flush=True)
            return
        print(f"  {key}: {json.dumps(values[key], default=str)[:200]}", file=sys.stderr)

    synthetic.build_heap(n_objects)
    sessions = synthetic.leaked_sessions()
    addresses = [id(s) for s in sessions]

    def heapsight_retained() -> dict[str, Any]:
        start = time.perf_counter()
        captured = _heapsight.capture_heap()
        captured_at = time.perf_counter()
        sizes = _heapsight_retained(_heapsight, captured, addresses)
        done = time.perf_counter()
        return {
            "total_s": done - start,
            "capture_s": captured_at - start,
            "dominators_s": done - captured_at,
            "median_retained_bytes": statistics.median(sizes),
        }

    record("heapsight_retained", heapsight_retained)

    def heapsight_paths() -> dict[str, Any]:
        ignore = _caller_frames()
        start = time.perf_counter()
        captured = _heapsight.capture_heap()
        paths = [_heapsight.heap_path_to(captured, a, ignore) for a in addresses]
        return {"total_s": time.perf_counter() - start, "found": sum(1 for p in paths if p)}

    record("heapsight_paths", heapsight_paths)

    def objgraph_chains() -> dict[str, Any]:
        per_object = []
        for session in sessions[:sample]:
            start = time.perf_counter()
            objgraph.find_backref_chain(session, objgraph.is_proper_module)
            per_object.append(time.perf_counter() - start)
        one = statistics.median(per_object)
        return {"per_object_s": one, "extrapolated_100_s": one * len(sessions)}

    record("objgraph_chains", objgraph_chains)

    hp = guppy.hpy()

    def guppy_retained() -> dict[str, Any]:
        start = time.perf_counter()
        hp.heap()  # first call: guppy's caches
        first = time.perf_counter() - start
        heap_s = _median_time(hp.heap, 1)
        per_object = []
        sizes = []
        for session in sessions[:sample]:
            start = time.perf_counter()
            sizes.append(hp.iso(session).domisize)
            per_object.append(time.perf_counter() - start)
        one = statistics.median(per_object)
        return {
            "first_heap_s": first,
            "heap_s": heap_s,
            "domisize_per_object_s": one,
            # domisize does not need heap(): guppy is charged for the domisize calls only.
            "domisize_100_extrapolated_s": one * len(sessions),
            "sampled": len(per_object),
            "median_retained_bytes": statistics.median(sizes),
        }

    record("guppy_retained", guppy_retained)

    def guppy_batched() -> dict[str, Any]:
        sets = tuple(hp.iso(s) for s in sessions)
        start = time.perf_counter()
        sizes = sets[0].fam.View.domisize_tuple(sets)
        return {
            "seconds": time.perf_counter() - start,
            "median_retained_bytes": statistics.median(sizes),
        }

    record("guppy_domisize_tuple", guppy_batched)

    values["gc_objects"] = n_objects
    return {"values": values, "missing": missing}


def _spawn_child(n_objects: int, sample: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = out.name
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--objects",
        str(n_objects),
        "--sample",
        str(sample),
        "--out",
        out_path,
    ]
    try:
        proc = subprocess.run(cmd, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            return {"values": {}, "missing": {"child": f"exit code {proc.returncode}"}}
        with open(out_path) as fh:
            return json.load(fh)
    except subprocess.TimeoutExpired:
        return {"values": {}, "missing": {"child": f"timed out after {CHILD_TIMEOUT_S} s"}}
    finally:
        try:
            os.unlink(out_path)
        except OSError:
            pass


# ---------------------------------------------------------------------------- report


def _verdict(ok: bool, value: str) -> str:
    return f"{'PASS' if ok else 'FAIL'} ({value})"


def report(rust: dict[str, Any] | None, real: dict[str, Any] | None, n_objects: int) -> str:
    lines = []
    if rust is not None:
        lines.append("Synthetic graph (crates/heapsight_graph/examples/gen_bench.rs):")
        lines.append("")
        lines.append("| measure | value | goal |")
        lines.append("|---|---|---|")
        if "missing" in rust:
            lines.append(f"| gen_bench | NOT MEASURED: {rust['missing']} | |")
        else:
            nodes, edges = rust["nodes"], rust["edges"]
            budget = RUST_BYTES_PER_NODE * nodes + RUST_BYTES_PER_EDGE * edges
            seconds = rust.get("dominators_s", rust.get("wall_s"))
            which = (
                "dominators" if "dominators_s" in rust else "whole run (no phase timing printed)"
            )
            lines.append(f"| graph | {nodes:,} nodes, {edges:,} edges | |")
            if seconds is not None:
                lines.append(
                    f"| time, {which} | {seconds:.2f} s | "
                    f"{_verdict(seconds < RUST_SECONDS_GOAL, f'< {RUST_SECONDS_GOAL:g} s')} |"
                )
            if "wall_s" in rust:
                lines.append(f"| whole process wall time | {rust['wall_s']:.2f} s | |")
            if "max_rss_bytes" in rust:
                rss = rust["max_rss_bytes"]
                lines.append(
                    f"| peak RSS (whole process) | {rss / 2**20:.0f} MiB = "
                    f"{rss / budget:.2f} x budget | "
                    f"{_verdict(rss < budget, f'< {budget / 2**20:.0f} MiB')} |"
                )
            if "reported_peak_bytes" in rust:
                lines.append(
                    f"| peak reported by gen_bench | {rust['reported_peak_bytes'] / 2**20:.0f} MiB"
                    " | |"
                )
        lines.append("")
    if real is not None:
        v = real["values"]
        lines.append(f"Real heap ({n_objects:,} gc-tracked objects, 100 leaked sessions):")
        lines.append("")
        lines.append("| question, 100 sessions | heapsight | peer | peer / heapsight |")
        lines.append("|---|---|---|---|")
        hs = v.get("heapsight_retained")
        gp = v.get("guppy_retained")
        gb = v.get("guppy_domisize_tuple")
        hp_paths = v.get("heapsight_paths")
        og = v.get("objgraph_chains")

        def row(label: str, ours: float | None, theirs: float | None, peer: str) -> None:
            ours_s = "n/a" if ours is None else f"{ours:.2f} s"
            theirs_s = "n/a" if theirs is None else f"{theirs:.2f} s ({peer})"
            ratio = "n/a" if not ours or theirs is None else f"{theirs / ours:.1f}x"
            lines.append(f"| {label} | {ours_s} | {theirs_s} | {ratio} |")

        ours_retained = hs["total_s"] if hs else None
        row(
            "retained sizes",
            ours_retained,
            gp["domisize_100_extrapolated_s"] if gp else None,
            f"guppy3 iso().domisize, {gp['sampled']} timed, extrapolated" if gp else "",
        )
        row(
            "retained sizes, guppy3 batched",
            ours_retained,
            gb["seconds"] if gb else None,
            "guppy3 View.domisize_tuple",
        )
        row(
            "why-kept paths",
            hp_paths["total_s"] if hp_paths else None,
            og["extrapolated_100_s"] if og else None,
            "objgraph find_backref_chain, extrapolated",
        )
        notes = []
        if hs:
            notes.append(
                f"heapsight: capture {hs['capture_s']:.2f} s, dominators + 100 look-ups "
                f"{hs['dominators_s']:.2f} s; median retained {hs['median_retained_bytes']:,.0f} B"
            )
        if gp:
            notes.append(
                f"guppy3: first heap() {gp['first_heap_s']:.2f} s, warm {gp['heap_s']:.2f} s, "
                f"domisize {gp['domisize_per_object_s']:.2f} s/object; median retained "
                f"{gp['median_retained_bytes']:,.0f} B"
            )
        if hp_paths:
            notes.append(f"heapsight paths found: {hp_paths['found']}/100")
        for key, reason in sorted(real["missing"].items()):
            notes.append(f"{key} not measured: {reason}")
        if notes:
            lines.append("")
            lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=SAMPLE, help="peer calls to time")
    parser.add_argument("--skip-rust", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument(
        "--gen-bench-args", default="", help="arguments passed to gen_bench, one string"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child_real_heap(args.objects, args.sample)
        with open(args.out, "w") as fh:
            json.dump(result, fh, default=str)
        return 0

    started = time.time()
    rust = None if args.skip_rust else run_rust(args.gen_bench_args.split())
    real = None if args.skip_real else _spawn_child(args.objects, args.sample)
    print()
    print(
        f"heapsight graph benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, took {time.time() - started:.0f} s"
    )
    print()
    print(report(rust, real, args.objects))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rust": rust, "real": real}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
