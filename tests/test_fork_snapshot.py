"""Non-stop capture: `heapsight.snapshot(fork=True)` walks the heap in a forked child.

Real forks of this test process, files read back with heapsight's own CLI. Liveness is
checked by what the other threads did while the child walked, never by a duration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import heapsight
import pytest
from heapsight import _heapsight

pytestmark = pytest.mark.skipif(
    heapsight._fork_unsafe_reason() is not None, reason="fork capture is not the default here"
)


class ForkLeak:
    """Leaked on purpose: held by the module-level `_LEAKED` list."""

    def __init__(self, i: int) -> None:
        self.i = i
        self.payload = {"n": i}


_LEAKED: list[ForkLeak] = []


def cli_json(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "heapsight", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode in (0, 1, 2), out.stderr
    return json.loads(out.stdout)


def type_counts(path: Path) -> dict[str, int]:
    return {row["type"]: row["count"] for row in cli_json("top", str(path), "-n", "0")}


def children_of_this_process() -> list[int]:
    """Live or zombie children, from every thread's /proc children list."""
    pids: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def leak() -> Any:
    _LEAKED[:] = [ForkLeak(i) for i in range(300)]
    yield _LEAKED
    _LEAKED.clear()


@pytest.mark.parametrize("walk_threads", [1, 2])
def test_fork_snapshot_equals_in_process_snapshot(
    tmp_path: Path, leak: list, walk_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    # The child walks with a helper thread too (threads may be started after a fork).
    monkeypatch.setenv("HEAPSIGHT_WALK_THREADS", str(walk_threads))
    # The first capture of a process leaves a few objects of its own behind (what it
    # imports and caches): only the captures after it are comparable.
    heapsight.snapshot(tmp_path / "warm-up.hsnap", fork=False)
    gc.collect()
    here = tmp_path / "here.hsnap"
    forked = tmp_path / "forked.hsnap"
    summary_here = heapsight.snapshot(here, fork=False)
    summary_forked = heapsight.snapshot(forked, fork=True)
    assert summary_here["mode"] == "in-process"
    assert summary_forked["mode"] == "fork"
    assert summary_forked["child_pid"] != os.getpid()
    assert summary_here["walk_threads"] == summary_forked["walk_threads"] == walk_threads

    ours, theirs = type_counts(here), type_counts(forked)
    name = f"{__name__}.ForkLeak"
    assert ours[name] == theirs[name] == 300
    for type_name, count in ours.items():
        if count >= 200:
            assert abs(theirs.get(type_name, 0) - count) <= max(5, count // 100), type_name

    info = cli_json("info", str(forked))
    assert info["pid"] == os.getpid(), "the snapshot must describe the parent"
    assert info["rss_bytes"] > 0

    why_here = cli_json("retainers", str(here), name)
    why_forked = cli_json("retainers", str(forked), name)
    shapes = [[s["shape"] for s in why["shapes"]] for why in (why_here, why_forked)]
    assert shapes[0] == shapes[1]
    assert shapes[1][0] == f"module {__name__}: ._LEAKED[*] -> {name}"
    assert why_here["accumulation_point"]["path"] == why_forked["accumulation_point"]["path"]


def test_threads_keep_running_while_the_child_walks(tmp_path: Path) -> None:
    # A busy thread waits for the GIL at every fork, so this also checks that the child does
    # not inherit its wait (it used to hang in the GIL's condition variable).
    ticks: list[float] = []
    counts = [0]
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    def busy(k: int) -> None:
        while not stop.is_set():
            counts[k] += 1

    heap: list = []
    threads = [threading.Thread(target=ticker, daemon=True)]
    threads.append(threading.Thread(target=busy, args=(0,), daemon=True))
    for thread in threads:
        thread.start()
    try:
        # Grow the heap until the child's walk lasts long enough to see ticks inside it
        # (a debug build walks 100k objects in seconds, a release build in 0.1 s).
        for size in (100_000, 400_000, 1_600_000):
            heap += [{"i": i, "l": [i]} for i in range(size - len(heap))]
            ticks.clear()
            started = time.monotonic()
            summary = heapsight.snapshot(tmp_path / "big.hsnap", fork=True)
            if summary["walk_ms"] > 300:
                break
        again = _heapsight.snapshot_fork(str(tmp_path / "again.hsnap"), False, 120.0)
        assert again["nodes"] > 0
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    del heap
    walk_s = summary["walk_ms"] / 1e3
    assert walk_s > 0.2, "the heap is too small for this check: make it bigger"
    # The child's walk starts after the fork; the parent's other threads must tick inside
    # it (an in-process walk holds the GIL for all of it, so none would).
    walk_start = started + summary["pause_ms"] / 1e3
    inside = [t for t in ticks if walk_start + 0.05 < t < walk_start + walk_s - 0.05]
    assert inside, "no thread ran while the child walked"
    assert all(counts)
    assert children_of_this_process() == []


def test_child_errors_raise_in_the_parent_and_leave_no_temp_file(tmp_path: Path) -> None:
    # Known before forking: no child, no pause.
    with pytest.raises(OSError, match="missing is not an existing directory"):
        heapsight.snapshot(tmp_path / "missing" / "x.hsnap", fork=True)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(OSError, match="not an existing directory"):
        heapsight.snapshot(a_file / "x.hsnap", fork=True)
    # In the child: the temporary file is written, then the rename onto a directory fails.
    (tmp_path / "dir.hsnap").mkdir()
    with pytest.raises(OSError, match="cannot write .*dir.hsnap"):
        heapsight.snapshot(tmp_path / "dir.hsnap", fork=True)
    assert temp_files(tmp_path) == []
    assert children_of_this_process() == []


def test_timeout_kills_and_reaps_the_child(tmp_path: Path) -> None:
    heap = [{"i": i} for i in range(100_000)]
    with pytest.raises(TimeoutError, match="did not finish"):
        _heapsight.snapshot_fork(str(tmp_path / "slow.hsnap"), False, 0.01)
    del heap
    assert not (tmp_path / "slow.hsnap").exists()
    assert temp_files(tmp_path) == []
    assert children_of_this_process() == []


def test_killed_child_raises_and_leaves_nothing_behind(tmp_path: Path) -> None:
    heap: list = []
    for size in (200_000, 800_000, 2_000_000):
        heap += [{"i": i} for i in range(size - len(heap))]
        outcome: dict[str, Any] = {}

        def capture(outcome: dict[str, Any] = outcome) -> None:
            try:
                outcome["summary"] = heapsight.snapshot(tmp_path / "killed.hsnap", fork=True)
            except Exception as exc:  # noqa: BLE001 - examined below
                outcome["error"] = exc

        thread = threading.Thread(target=capture)
        thread.start()
        while thread.is_alive() and not children_of_this_process():
            time.sleep(0.0005)
        for pid in children_of_this_process():
            os.kill(pid, signal.SIGKILL)
        thread.join()
        if "error" in outcome:
            break
    del heap
    assert "error" in outcome, "the child finished before it could be killed"
    assert isinstance(outcome["error"], RuntimeError)
    assert "was killed" in str(outcome["error"])
    assert not (tmp_path / "killed.hsnap").exists()
    assert temp_files(tmp_path) == []
    assert children_of_this_process() == []


def test_child_reaped_by_someone_else_still_reports(tmp_path: Path) -> None:
    # SIGCHLD ignored: the kernel reaps the child, waitpid says ECHILD.
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        summary = heapsight.snapshot(tmp_path / "ign.hsnap", fork=True)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert summary["mode"] == "fork"
    assert cli_json("info", str(tmp_path / "ign.hsnap"))["pid"] == os.getpid()


def test_child_reaped_by_a_sigchld_handler_still_reports(tmp_path: Path) -> None:
    # As a gunicorn arbiter does: a Python SIGCHLD handler reaps any child (waitpid(-1)).
    reaped: list[int] = []

    def reap(signum: int, frame: Any) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            reaped.append(pid)

    previous = signal.signal(signal.SIGCHLD, reap)
    result: dict[str, Any] = {}

    def capture() -> None:
        result["summary"] = heapsight.snapshot(tmp_path / "chld.hsnap", fork=True)

    try:
        # Python handlers run in the main thread, so the capture runs in another one.
        thread = threading.Thread(target=capture)
        thread.start()
        while thread.is_alive():
            time.sleep(0.005)
        thread.join()
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert result["summary"]["mode"] == "fork"
    assert (tmp_path / "chld.hsnap").exists()
    assert children_of_this_process() == []


def test_default_forks_here_and_agent_passes_the_choice(tmp_path: Path) -> None:
    from heapsight.agent.server import AgentServer

    agent = AgentServer(str(tmp_path))
    reply = agent._cmd_snapshot({"path": str(tmp_path / "a.hsnap"), "fork": False})
    assert reply["summary"]["mode"] == "in-process"
    assert reply["forked"] is False
    # No "fork" field: heapsight.snapshot's default, which forks here.
    reply = agent._cmd_snapshot({"path": str(tmp_path / "b.hsnap"), "gc": False})
    assert reply["summary"]["mode"] == "fork"
    assert "fork_fallback" not in reply["summary"]
    assert reply["forked"] is True
    assert children_of_this_process() == []


def test_default_falls_back_in_process_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(*args: object) -> dict:
        raise _heapsight.ForkError("cannot fork a child to take the snapshot: EAGAIN")

    monkeypatch.setattr(_heapsight, "snapshot_fork", no_fork)
    summary = heapsight.snapshot(tmp_path / "fallback.hsnap")
    assert summary["mode"] == "in-process"
    assert "EAGAIN" in summary["fork_fallback"]
    assert (tmp_path / "fallback.hsnap").exists()
    with pytest.raises(_heapsight.ForkError, match="EAGAIN"):
        heapsight.snapshot(tmp_path / "forced.hsnap", fork=True)

    monkeypatch.setattr(heapsight, "_fork_unsafe_reason", lambda: "not on this platform")
    summary = heapsight.snapshot(tmp_path / "unsafe.hsnap")
    assert summary["fork_fallback"] == "not on this platform"
