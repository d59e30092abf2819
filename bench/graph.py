"""Graph analysis benchmark: dominators and retained sizes, heapsight against guppy3.

Run:  python bench/graph.py                      # both parts
      python bench/graph.py --skip-rust          # only the real-heap part
      python bench/graph.py --objects 1000000    # size of the real heap
      python bench/graph.py --source target/bench-src   # after bench/build_release.sh
      python bench/graph.py --skip-real --sequential    # the index on one thread, per phase

Part 1, synthetic graph: runs the Rust example `crates/heapsight_graph/examples/gen_bench.rs`
(10M nodes, 30M edges) in release mode under `/usr/bin/time -v`, prints its own output and
checks issue 3's goals: the pipeline (index, dominators, retained sizes, paths and the
shapes of the top 20 types) under 15 s, on wall time and on CPU time (all threads: the
index is built on two threads as the analysis builds it, unless --sequential), and memory
above the snapshot under 80 B/node + 12 B/edge. The load average before and after is shown:
on a shared machine it explains most of the spread between runs.

Part 2, a real heap (bench/heap.py, 1M gc-tracked objects, fresh subprocess): the
retained size of each of the 100 leaked sessions and the path that keeps each alive.
- heapsight: `heapsight.snapshot()` to a file, then bench/retained (a small Rust program
  on heapsight_graph) reads it, builds the dominator tree and looks the 100 sessions up;
  an in-memory route is used too if the extension exposes a retained-size call. Paths:
  `heapsight.paths_to(sessions)` (one capture, one search).
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
from child import CHILD_TIMEOUT_S, run_json_child  # noqa: E402

RUST_NODES = 10_000_000
RUST_EDGES = 30_000_000
RUST_SECONDS_GOAL = 15.0
RUST_BYTES_PER_NODE = 80
RUST_BYTES_PER_EDGE = 12
SAMPLE = 3


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


def parse_gen_bench(stdout: str, stderr: str) -> dict[str, Any]:
    """Figures from gen_bench's output and from `/usr/bin/time -v` on stderr."""
    figures: dict[str, Any] = _parse_time_v(stderr)
    figures["output"] = stdout
    out = stdout
    generated = re.search(r"generated (\d+) nodes, (\d+) edges", out)
    figures["nodes"] = int(generated.group(1)) if generated else RUST_NODES
    figures["edges"] = int(generated.group(2)) if generated else RUST_EDGES
    # gen_bench prints "<phase>: <wall>s wall, <cpu>s cpu" per phase.
    phases = {
        "index": r"graph view[^:]*:",
        "dominators": r"dominators \+ retained sizes:",
        "paths": r"shortest paths from roots[^:]*:",
        # The default run: the whole index at once, as the analysis builds it.
        "threaded_index": r"graph index on 2 threads[^:]*:",
        "shapes": r"shapes \+ accumulation points of the top 20 types:",
        "pipeline": r"pipeline \([^)]*\):",
        "analysis": r"total analysis",
    }
    for key, prefix in phases.items():
        match = re.search(prefix + r"\s*([\d.]+)s wall, ([\d.]+)s cpu", out)
        if match:
            figures[f"{key}_wall_s"] = float(match.group(1))
            figures[f"{key}_cpu_s"] = float(match.group(2))
    split = re.search(r"calling thread ([\d.]+)s cpu, helper threads ([\d.]+)s cpu", out)
    if split:
        figures["calling_thread_cpu_s"] = float(split.group(1))
        figures["helper_threads_cpu_s"] = float(split.group(2))
    for when in ("before", "after"):
        load = re.search(rf"load average {when}: ([\d.]+)", out)
        if load:
            figures[f"load_{when}"] = float(load.group(1))
    peak = re.search(
        r"peak RSS (\d+) MiB \((\d+) MiB above the snapshot; "
        r"after (dominators|the index) (\d+) MiB above",
        out,
    )
    if peak:
        figures["peak_rss_mib"] = int(peak.group(1))
        figures["above_snapshot_mib"] = int(peak.group(2))
        figures["after"] = peak.group(3)
        figures["above_snapshot_after_dominators_mib"] = int(peak.group(4))
    return figures


def _target_dir(source: Path, default: Path) -> Path:
    # A source tree other than the checkout (bench/build_release.sh's export of HEAD)
    # shares the release wheel's target dir, so the graph crates are built once.
    return default if source == REPO else REPO / "target" / "bench-wheel"


def run_rust(example_args: list[str], source: Path) -> dict[str, Any]:
    """Build and run gen_bench; figures from its output plus /usr/bin/time -v."""
    example = source / "crates/heapsight_graph/examples/gen_bench.rs"
    if not example.exists():
        return {"missing": f"{example} does not exist yet"}
    target = _target_dir(source, REPO / "target")
    build = subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "heapsight_graph", "--example", "gen_bench"],
        cwd=source,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        return {"missing": "cargo build failed: " + build.stderr.strip()[-300:]}
    binary = target / "release/examples/gen_bench"
    if not binary.exists():
        return {"missing": f"no binary at {binary}"}
    cmd = ["/usr/bin/time", "-v", str(binary), *example_args]
    print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        return {"missing": f"gen_bench exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return parse_gen_bench(proc.stdout, proc.stderr)


# -------------------------------------------------------------- part 2: real heap


def _median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


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


def child_real_heap(n_objects: int, sample: int, retained_tool: str | None) -> dict[str, Any]:
    import guppy
    import heapsight
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

    def heapsight_retained_via_file() -> dict[str, Any]:
        # Offline route: heapsight.snapshot() writes the heap, heapsight_graph (through
        # bench/retained) reads it and computes the dominator tree.
        if retained_tool is None:
            raise FileNotFoundError("bench/retained was not built")
        tmpdir = Path(tempfile.mkdtemp(prefix="heapsight-bench-graph-"))
        path = tmpdir / "real.hsnap"
        try:
            start = time.perf_counter()
            heapsight.snapshot(path)
            snapshot_s = time.perf_counter() - start
            start = time.perf_counter()
            proc = subprocess.run(
                [retained_tool, str(path), *map(str, addresses)],
                capture_output=True,
                text=True,
            )
            analysis_s = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"bench/retained failed: {proc.stderr.strip()}")
        finally:
            path.unlink(missing_ok=True)
            tmpdir.rmdir()
        data = json.loads(proc.stdout)
        sizes = [size for size in data["retained"] if size is not None]
        if not sizes:
            raise ValueError("none of the sessions is a node of the snapshot")
        return {
            "total_s": snapshot_s + analysis_s,
            "snapshot_s": snapshot_s,
            "analysis_s": analysis_s,
            "read_s": data["read_s"],
            "index_s": data["index_s"],
            "dominators_s": data["dominators_s"],
            "nodes": data["nodes"],
            "edges": data["edges"],
            "found": len(sizes),
            "median_retained_bytes": statistics.median(sizes),
        }

    record("heapsight_retained_file", heapsight_retained_via_file)

    def heapsight_paths() -> dict[str, Any]:
        start = time.perf_counter()
        paths = heapsight.paths_to(sessions)
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


def build_retained_tool(source: Path) -> str | None:
    """Builds bench/retained (release) against `source`'s crates; its path, or None."""
    target = _target_dir(source, REPO / "target" / "bench-tools")
    build = subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "-q",
            "--manifest-path",
            str(source / "bench" / "retained" / "Cargo.toml"),
        ],
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
    )
    binary = target / "release" / "heapsight_bench_retained"
    if build.returncode != 0 or not binary.exists():
        print("bench/retained did not build:\n" + build.stderr[-1000:], file=sys.stderr)
        return None
    return str(binary)


def _spawn_child(n_objects: int, sample: int, retained_tool: str | None) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--objects",
        str(n_objects),
        "--sample",
        str(sample),
    ]
    if retained_tool is not None:
        cmd += ["--retained-tool", retained_tool]
    return run_json_child(cmd)


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
            budget_mib = (RUST_BYTES_PER_NODE * nodes + RUST_BYTES_PER_EDGE * edges) / 2**20
            lines.append(f"| graph | {nodes:,} nodes, {edges:,} edges | |")
            if "dominators_wall_s" in rust:
                # Retained sizes from a loaded snapshot need the graph view and the tree.
                wall = rust["index_wall_s"] + rust["dominators_wall_s"]
                cpu = rust["index_cpu_s"] + rust["dominators_cpu_s"]
                lines.append(
                    f"| graph view + dominators + retained sizes | {wall:.2f} s wall "
                    f"({cpu:.2f} s cpu; dominators alone {rust['dominators_wall_s']:.2f} s) | "
                    f"wall {_verdict(wall < RUST_SECONDS_GOAL, f'< {RUST_SECONDS_GOAL:g} s')}; "
                    f"cpu {_verdict(cpu < RUST_SECONDS_GOAL, f'< {RUST_SECONDS_GOAL:g} s')} |"
                )
            if "threaded_index_wall_s" in rust:
                split = ""
                if "calling_thread_cpu_s" in rust:
                    split = (
                        f"; calling thread {rust['calling_thread_cpu_s']:.2f} s, "
                        f"helper threads {rust['helper_threads_cpu_s']:.2f} s"
                    )
                lines.append(
                    "| index on 2 threads (dominators + retained sizes beside BFS paths + "
                    "shapes) | "
                    f"{rust['threaded_index_wall_s']:.2f} s wall "
                    f"({rust['threaded_index_cpu_s']:.2f} s cpu{split}) | |"
                )
            # Issue 3's goal: dominators, retained sizes and the retainer shapes of the
            # top 20 types, i.e. everything but the 100 single-object path queries.
            pipeline: tuple[float, float] | None = None
            if "pipeline_wall_s" in rust:
                pipeline = (rust["pipeline_wall_s"], rust["pipeline_cpu_s"])
            elif all(f"{k}_cpu_s" in rust for k in ("index", "dominators", "paths", "shapes")):
                phases = ("index", "dominators", "paths", "shapes")
                pipeline = (
                    sum(rust[f"{k}_wall_s"] for k in phases),
                    sum(rust[f"{k}_cpu_s"] for k in phases),
                )
            if pipeline is not None:
                wall, cpu = pipeline
                lines.append(
                    "| pipeline: index + dominators + retained sizes + BFS paths + shapes "
                    f"of the top 20 types | {wall:.2f} s wall ({cpu:.2f} s cpu) | "
                    f"wall {_verdict(wall < RUST_SECONDS_GOAL, f'< {RUST_SECONDS_GOAL:g} s')}; "
                    f"cpu {_verdict(cpu < RUST_SECONDS_GOAL, f'< {RUST_SECONDS_GOAL:g} s')} |"
                )
            if "analysis_wall_s" in rust:
                lines.append(
                    "| whole analysis (+ reverse index and 100 single paths) | "
                    f"{rust['analysis_wall_s']:.2f} s wall ({rust['analysis_cpu_s']:.2f} s cpu) | |"
                )
            if "above_snapshot_mib" in rust:
                # Peak after the index (after the dominators alone with --sequential),
                # and of the whole analysis (+ reverse index for the single paths).
                dom = rust["above_snapshot_after_dominators_mib"]
                what = (
                    "index (dominators, paths, shapes)"
                    if rust.get("after") == "the index"
                    else "index + dominators"
                )
                lines.append(
                    f"| memory above the snapshot, {what} | {dom} MiB "
                    f"({dom * 2**20 / nodes:.1f} B/node) | "
                    f"{_verdict(dom < budget_mib, f'< {budget_mib:.0f} MiB')} |"
                )
                above = rust["above_snapshot_mib"]
                lines.append(
                    f"| memory above the snapshot, whole analysis | {above} MiB "
                    f"({above * 2**20 / nodes:.1f} B/node) | "
                    f"{_verdict(above < budget_mib, f'< {budget_mib:.0f} MiB')} |"
                )
            if "max_rss_bytes" in rust:
                lines.append(
                    f"| peak RSS of the process (snapshot included) | "
                    f"{rust['max_rss_bytes'] / 2**20:.0f} MiB | |"
                )
            if "wall_s" in rust:
                lines.append(f"| whole process, generation included | {rust['wall_s']:.2f} s | |")
            if "load_before" in rust:
                lines.append(
                    f"| 1-minute load average, before / after | {rust['load_before']:.2f} / "
                    f"{rust.get('load_after', float('nan')):.2f} | |"
                )
        lines.append("")
    if real is not None:
        v = real["values"]
        lines.append(f"Real heap ({n_objects:,} gc-tracked objects, 100 leaked sessions):")
        lines.append("")
        lines.append("| question, 100 sessions | heapsight | peer | peer / heapsight |")
        lines.append("|---|---|---|---|")
        hs = v.get("heapsight_retained")
        hf = v.get("heapsight_retained_file")
        gp = v.get("guppy_retained")
        gb = v.get("guppy_domisize_tuple")
        hp_paths = v.get("heapsight_paths")
        og = v.get("objgraph_chains")

        def row(label: str, ours: float | None, theirs: float | None, peer: str) -> None:
            ours_s = "n/a" if ours is None else f"{ours:.2f} s"
            theirs_s = "n/a" if theirs is None else f"{theirs:.2f} s ({peer})"
            ratio = "n/a" if not ours or theirs is None else f"{theirs / ours:.1f}x"
            lines.append(f"| {label} | {ours_s} | {theirs_s} | {ratio} |")

        routes = []
        if hs:
            routes.append(("in memory", hs["total_s"]))
        if hf:
            routes.append(("snapshot file + heapsight_graph", hf["total_s"]))
        if not routes:
            routes.append(("", None))
        for route, ours in routes:
            label = f"retained sizes ({route})" if route else "retained sizes"
            row(
                label,
                ours,
                gp["domisize_100_extrapolated_s"] if gp else None,
                f"guppy3 iso().domisize, {gp['sampled']} timed, extrapolated" if gp else "",
            )
            row(
                label + " vs guppy3 batched",
                ours,
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
        if hf:
            notes.append(
                f"heapsight via file: snapshot {hf['snapshot_s']:.2f} s, read "
                f"{hf['read_s']:.2f} s, reverse index {hf['index_s']:.2f} s, dominators "
                f"{hf['dominators_s']:.2f} s on {hf['nodes']:,} nodes / {hf['edges']:,} edges; "
                f"{hf['found']}/100 sessions found, median retained "
                f"{hf['median_retained_bytes']:,.0f} B"
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
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="build the index on one thread, timing each phase (gen_bench --sequential)",
    )
    parser.add_argument(
        "--source",
        default=str(REPO),
        help="workspace to build the Rust parts from (bench/build_release.sh exports HEAD "
        "to target/bench-src)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--retained-tool", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child_real_heap(args.objects, args.sample, args.retained_tool)
        with open(args.out, "w") as fh:
            json.dump(result, fh, default=str)
        return 0

    started = time.time()
    source = Path(args.source).resolve()
    gen_args = args.gen_bench_args.split() + (["--sequential"] if args.sequential else [])
    rust = None if args.skip_rust else run_rust(gen_args, source)
    real = None
    if not args.skip_real:
        real = _spawn_child(args.objects, args.sample, build_retained_tool(source))
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
