"""`heapsight attach | snapshot | census | detach PID`: the Python side of the commands
on a running process (the Rust CLI parsed them and forwards normalised arguments)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import stat
import sys
import threading
import time
from types import FrameType
from typing import Any

from heapsight.attach.inject import existing_agent, inject
from heapsight.attach.target import AttachError, Target, alive, children, inspect_process, owner
from heapsight.run.drive import DriveError
from heapsight.run.launcher import AgentInfo, App, LaunchError
from heapsight.run.options import UsageError, parse
from heapsight.run.session import EXIT_ERROR, RunFailed, Session, emit_result

DEFAULT_INJECT_TIMEOUT = 30.0


class AttachedApp(App):
    """The `App` of a Session whose processes run already: its agents come from
    injection, and stopping the session leaves the processes running."""

    def __init__(self, agents: list[AgentInfo], run_dir: str) -> None:
        super().__init__([], {}, run_dir)
        self._attached = agents

    def start(self) -> None:
        pass

    def exit_status(self) -> int | None:
        return None if any(alive(a.pid) for a in self._attached) else 0

    def agents(self) -> list[AgentInfo]:
        return [a for a in self._attached if alive(a.pid) and os.path.exists(a.socket)]

    def agent_errors(self) -> list[str]:
        return []

    def stop(self, grace: float = 10.0) -> int | None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        return None


def _note(text: str) -> None:
    sys.stderr.write(f"heapsight: {text}\n")
    sys.stderr.flush()


_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver",
            "multiprocessing.semaphore_tracker")


def _targets(pid: int, all_workers: bool) -> list[Target]:
    if not all_workers:
        target = inspect_process(pid)
        kids = children(pid)
        if kids:
            _note(f"process {pid} has {len(kids)} child process(es) ({', '.join(map(str, kids))})"
                  "; if it is a gunicorn or uvicorn master, its workers serve the requests: "
                  "add --all-workers")
        return [target]
    owner(pid)  # a clear error when the master itself does not exist
    found, skipped = [], []
    for child in children(pid):
        try:
            target = inspect_process(child)
            helper = next((h for h in _HELPERS if any(h in arg for arg in target.argv)), None)
            if helper:
                # uvicorn's spawned workers come with multiprocessing's resource tracker,
                # whose main thread waits on a pipe and would never run the loader.
                skipped.append(f"{child}: {helper} (not a worker)")
                continue
            found.append(target)
        except AttachError as exc:
            skipped.append(f"{child}: {str(exc).splitlines()[0]}")
    if not found:
        detail = ("; skipped " + "; ".join(skipped)) if skipped else ""
        raise AttachError(f"process {pid} has no Python child processes{detail}. "
                          "--all-workers attaches to the workers of a gunicorn or uvicorn "
                          "master; give the master's pid")
    for line in skipped:
        _note(f"not attached to child {line}")
    return found


def _attach_all(targets: list[Target], timeout: float,
                trace_alloc: bool) -> list[tuple[AgentInfo, bool]]:
    """Injects into every target at once: an idle worker may take seconds to next run
    Python code, and the waits should not add up. Returns each agent and whether it was
    loaded now."""
    results: dict[int, tuple[AgentInfo, str, bool] | AttachError] = {}

    def one(target: Target) -> None:
        try:
            results[target.pid] = inject(target, timeout, trace_alloc)
        except AttachError as exc:
            results[target.pid] = exc

    threads = [threading.Thread(target=one, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    agents: list[tuple[AgentInfo, bool]] = []
    failure: AttachError | None = None
    for target in targets:
        result = results.get(target.pid)
        if isinstance(result, AttachError) or result is None:
            failure = failure or result or AttachError(f"attaching to {target.pid} failed")
            continue
        _note(result[1])
        agents.append((result[0], result[2]))
    if failure is not None:
        for agent, loaded_now in agents:  # all or nothing: none of ours left behind
            if loaded_now:
                _detach_agent(agent)
        raise failure
    return agents


def _split_attach_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="heapsight attach", add_help=False)
    parser.add_argument("--all-workers", action="store_true")
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--inject-timeout", type=float, default=DEFAULT_INJECT_TIMEOUT)
    parser.add_argument("--pid", type=int, required=True)
    return parser.parse_known_args(argv)


def attach_main(argv: list[str]) -> int:
    try:
        flags, rest = _split_attach_flags(argv)
        options = parse([*rest, "--", str(flags.pid)])
    except (UsageError, SystemExit) as exc:
        if isinstance(exc, UsageError):
            sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    session: Session | None = None
    agents: list[AgentInfo] = []
    loaded_now: list[AgentInfo] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if session is None or session.stop_requested:
            raise KeyboardInterrupt
        session.stop_requested = True
        session.progress.note("stopping: finishing the census and writing the report")

    try:
        previous = signal.signal(signal.SIGINT, on_signal)
    except ValueError:
        previous = None  # not the main thread: no Ctrl-C handling, the rest works
    try:
        targets = _targets(flags.pid, flags.all_workers)
        uids = {t.uid for t in targets}
        if len(uids) > 1:
            raise AttachError(f"the workers run as different users ({sorted(uids)}); attach "
                              "to them one at a time")
        attached = _attach_all(targets, flags.inject_timeout, options.trace_alloc)
        agents = [agent for agent, _ in attached]
        loaded_now = [agent for agent, now in attached if now]
        run_dirs = {agent_run_dir(a) for a in agents}
        if len(run_dirs) > 1:
            raise AttachError("some of the processes already had an agent from `heapsight run` "
                              "and some not; attach to them one at a time")
        run_dir = run_dirs.pop()
        session_dir = os.path.join(run_dir, "sessions",
                                   f"{flags.pid}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(session_dir, mode=0o700, exist_ok=True)
        if os.geteuid() != targets[0].uid:
            os.chown(session_dir, targets[0].uid, -1, follow_symlinks=False)
        session = Session(options, AttachedApp(agents, session_dir))
        if options.drives:
            session.drive()
        else:
            session.watch()
        result = session.finish()
        result["attached"] = [a.pid for a in agents]
        command = ["heapsight", "attach", str(flags.pid)]
        if flags.all_workers:
            command.append("--all-workers")
        code = emit_result(result, options, session.phases, command, "heapsight attach")
        if not flags.detach and loaded_now:
            out = sys.stderr if options.json_out == "-" else sys.stdout
            out.write(f"note: the agent stays in {', '.join(str(a.pid) for a in loaded_now)}; "
                      f"`heapsight detach {flags.pid}"
                      f"{' --all-workers' if flags.all_workers else ''}` removes it\n")
            out.flush()
        return code
    except (AttachError, LaunchError, RunFailed, DriveError, UsageError, OSError) as exc:
        if session is not None:
            session.progress.clear()
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("heapsight: aborted\n")
        return 130
    finally:
        if session is not None:
            session.app.stop()
        if flags.detach:
            for agent in loaded_now:  # an agent that was there before stays
                _detach_agent(agent)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def agent_run_dir(agent: AgentInfo) -> str:
    """The directory an agent serves from: <dir>/agents/<pid>.sock."""
    return os.path.dirname(os.path.dirname(agent.socket))


def _one_agent(pid: int, timeout: float) -> tuple[Target, AgentInfo]:
    target = inspect_process(pid)
    agent, note, _loaded_now = inject(target, timeout)
    _note(note)
    return target, agent


def _request(agent: AgentInfo, cmd: str, timeout: float = 600.0, **fields: Any) -> dict[str, Any]:
    app = App([], {}, "")
    try:
        return app.request(agent, cmd, timeout=timeout, **fields)
    except (OSError, RuntimeError, ValueError) as exc:
        raise AttachError(f"the agent in process {agent.pid} did not answer {cmd}: {exc}") from None
    finally:
        app.stop()


def _move(src: str, dst: str) -> None:
    """Moves the agent's file into place atomically, across file systems too."""
    # The directory belongs to the target's user: only a regular file is taken, never
    # what a link there points to.
    if not stat.S_ISREG(os.lstat(src).st_mode):
        raise AttachError(f"{src} is not a regular file; the snapshot was not moved")
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system, copied below
            raise
    tmp = f"{dst}.tmp-{secrets.token_hex(4)}"
    try:
        with os.fdopen(os.open(src, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fin, \
                open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
    finally:
        for path in (tmp, src):
            try:
                os.unlink(path)
            except OSError:
                pass


def snapshot_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="heapsight snapshot")
    parser.add_argument("pid", type=int)
    parser.add_argument("--output", required=True)
    parser.add_argument("--inject-timeout", type=float, default=DEFAULT_INJECT_TIMEOUT)
    parser.add_argument("--in-process", action="store_true")
    ns = parser.parse_args(argv)
    out = os.path.abspath(ns.output)
    try:
        if not os.path.isdir(os.path.dirname(out)):
            raise AttachError(f"cannot write {ns.output}: its directory does not exist")
        _target, agent = _one_agent(ns.pid, ns.inject_timeout)
        # The agent writes only under its own directory (an agent of `heapsight run` has
        # the run's).
        tmp = os.path.join(agent_run_dir(agent), f"snapshot-{ns.pid}-{secrets.token_hex(4)}.hsnap")
        # No "fork" field: the process's heapsight forks where that is safe (docs/fork-capture.md).
        fields: dict[str, Any] = {"fork": False} if ns.in_process else {}
        reply = _request(agent, "snapshot", path=tmp, **fields)
        _move(tmp, out)
    except (AttachError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    summary = reply.get("summary") or {}
    how = "a forked copy of" if reply.get("forked") else "inside"
    print(f"wrote {ns.output}: {summary.get('nodes', '?')} objects, "
          f"{summary.get('edges', '?')} references, captured in {how} process {ns.pid}")
    why = reply.get("fork_error") or summary.get("fork_fallback")
    if why and not ns.in_process:
        _note(f"fork-based capture was not possible ({why}); captured in the process instead")
    return 0


def census_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="heapsight census")
    parser.add_argument("pid", type=int)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--inject-timeout", type=float, default=DEFAULT_INJECT_TIMEOUT)
    ns = parser.parse_args(argv)
    try:
        _target, agent = _one_agent(ns.pid, ns.inject_timeout)
        reply = _request(agent, "census", gc=not ns.no_gc)
    except (AttachError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    rows = sorted(((int(c), int(b), name) for name, (c, b) in reply["census"].items()),
                  key=lambda r: (-r[1], -r[0], r[2]))
    if ns.json:
        data = {k: reply.get(k) for k in ("pid", "gc_objects", "rss_bytes", "requests",
                                          "requests_total")}
        data["types"] = [{"type": n, "count": c, "bytes": b} for c, b, n in rows]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return 0
    rss = reply.get("rss_bytes")
    print(f"process {ns.pid}: {reply.get('gc_objects', 0)} gc objects"
          + (f", RSS {rss / 2**20:.1f} MiB" if rss else "")
          + f", {reply.get('requests_total', 0)} requests counted since the agent started")
    print(f"{'count':>10}  {'bytes':>12}  type")
    for count, size, name in rows[:max(ns.top, 0)]:
        print(f"{count:>10}  {size:>12}  {name}")
    return 0


def _detach_agent(agent: AgentInfo) -> bool:
    try:
        _request(agent, "detach", timeout=30.0)
    except AttachError as exc:
        _note(str(exc))
        return False
    deadline = time.monotonic() + 10
    while os.path.exists(agent.socket) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not os.path.exists(agent.socket)


def detach_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="heapsight detach")
    parser.add_argument("pid", type=int)
    parser.add_argument("--all-workers", action="store_true")
    ns = parser.parse_args(argv)
    try:
        owner(ns.pid)
        pids = children(ns.pid) if ns.all_workers else [ns.pid]
        found = 0
        for pid in pids:
            existing = existing_agent(pid, owner(pid))
            if existing is None:
                continue
            found += 1
            if _detach_agent(existing[0]):
                print(f"detached from process {pid}: its agent stopped, {existing[0].socket} "
                      "removed")
            else:
                raise AttachError(f"the agent in process {pid} did not stop")
        if not found:
            print(f"no heapsight agent in process {ns.pid}"
                  f"{' or its children' if ns.all_workers else ''}; nothing to detach")
    except (AttachError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    return 0
