"""Checks of the benchmark harness itself (no timing assertions).

Run: python -m pytest bench/test_bench.py
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import capture  # noqa: E402
import graph  # noqa: E402
import heap  # noqa: E402


def test_heap_has_the_requested_size_and_the_leak():
    # Garbage left by earlier imports would be collected while the heap is built and
    # count against its growth.
    gc.collect()
    before = len(gc.get_objects())
    heap.build_heap(21_000)
    try:
        grown = len(gc.get_objects()) - before
        # 3,000 units of 7 tracked objects, plus 100 sessions of 23 tracked objects each
        # (session, its list, three requests) and the containers.
        assert 21_000 + 2_300 - 200 <= grown <= 21_000 + 2_300 + 200
        sessions = heap.leaked_sessions()
        assert len(sessions) == heap.LEAKED_SESSIONS
        assert all(type(s).__name__ == "UserSession" for s in sessions)
        module = sys.modules[heap.SESSIONS_MODULE]
        assert module._SESSIONS["u7"] is sessions[7]
        app = sys.modules[heap.APP_MODULE].APP
        assert len(app.events.listeners) == heap.LEAKED_SESSIONS
        assert app.events.listeners[3].__self__ is sessions[3]
    finally:
        heap.release_heap()
    assert heap.leaked_sessions() == []


def test_heap_rejects_negative_sizes():
    with pytest.raises(ValueError):
        heap.build_heap(-1)


def test_node_count_from_snapshot_summary():
    assert capture._node_count({"nodes": 12, "edges": 30}) == 12
    assert capture._node_count({"n_nodes": 5}) == 5
    with pytest.raises(KeyError):
        capture._node_count({"edges": 3})
    with pytest.raises(TypeError):
        capture._node_count(None)


def test_goal_table_judges_wall_and_cpu_and_shows_missing():
    values = {
        "census_s": 0.2,
        "census_s_cpu": 0.2,
        "get_objects_s": 0.1,
        "get_objects_s_cpu": 0.2,
        "snapshot_file_bytes_per_node": 3.0,
    }
    capture._ratios(values)
    table = capture.render({1000: {"values": values, "missing": {"snapshot_s": "not built"}}})
    assert "wall FAIL (2.00); cpu PASS (1.00)" in table
    assert "Time goals are met by the wall verdict" in table
    assert "| snapshot file, bytes/node <= 10 | PASS (3.00) |" in table
    assert "NOT MEASURED" in table
    assert "snapshot_s not measured: not built" in table


def test_conditions_note_gives_load_and_stolen_cpu_time():
    values = {"loadavg_start": 0.7, "loadavg_end": 1.1, "cpu_steal_share": 0.125}
    table = capture.render({1000: {"values": values, "missing": {}}})
    assert "load average 0.7 at the start, 1.1 at the end (2 cores); 12.5% of CPU" in table
    ticks = capture._cpu_ticks()
    if Path("/proc/stat").exists():
        assert ticks is not None and 0 <= ticks[0] <= ticks[1]


GEN_BENCH_OUT = """\
generated 200000 nodes, 600000 edges, 414 roots in 0.37s
RSS with the snapshot: 14 MiB (peak reset: true)
graph view (validate + reverse index): 0.26s wall, 0.03s cpu
dominators + retained sizes: 2.34s wall, 0.25s cpu
total analysis 6.85s wall, 0.74s cpu; peak RSS 53 MiB (39 MiB above the snapshot; \
after dominators 12 MiB above); 202.3 B/node above the snapshot with 3.0 edges/node
"""

TIME_V_ERR = """\
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:07.37
\tMaximum resident set size (kbytes): 54260
"""


def test_gen_bench_output_is_parsed_and_judged():
    figures = graph.parse_gen_bench(GEN_BENCH_OUT, TIME_V_ERR)
    assert figures["nodes"] == 200_000 and figures["edges"] == 600_000
    assert figures["index_wall_s"] == 0.26 and figures["dominators_cpu_s"] == 0.25
    assert figures["above_snapshot_after_dominators_mib"] == 12
    assert figures["wall_s"] == pytest.approx(67.37)
    assert figures["max_rss_bytes"] == 54260 * 1024
    report = graph.report(figures, None, 0)
    assert "2.60 s wall" in report
    assert "wall PASS (< 15 s); cpu PASS (< 15 s)" in report
    # 80 B/node + 12 B/edge for 200k/600k is 22 MiB: 12 MiB above the snapshot passes.
    assert "PASS (< 22 MiB)" in report
