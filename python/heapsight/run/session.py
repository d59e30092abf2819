"""`heapsight run`: launch, drive or watch, census every worker, snapshot, diagnose."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

import heapsight
from heapsight import _heapsight
from heapsight.run import diagnose, htmlreport
from heapsight.run.diagnose import Phase, Point
from heapsight.run.drive import DriveError, Driver, wait_for_port
from heapsight.run.launcher import (
    AgentInfo,
    App,
    LaunchError,
    app_environment,
    check_interpreter,
    make_run_dir,
    target_interpreter,
)
from heapsight.run.options import RunOptions, UsageError, parse

EXIT = {"no-leak": 0, "leak": 1, "inconclusive": 2}
EXIT_ERROR = 3
AGENT_WAIT_SECONDS = 20.0
STABLE_AGENTS_SECONDS = 2.0


class RunFailed(RuntimeError):
    pass


class _Progress:
    """One updating line on stderr, only on a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.started = time.monotonic()

    def show(self, text: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"\r\x1b[2K[{elapsed:5.1f}s] {text}"[:200])
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def note(self, text: str) -> None:
        self.clear()
        sys.stderr.write(f"heapsight: {text}\n")
        sys.stderr.flush()


class Session:
    def __init__(self, options: RunOptions, app: App | None = None) -> None:
        self.options = options
        self.progress = _Progress()
        self.stop_requested = False
        if app is None:
            self.run_dir = make_run_dir(options.keep_dir)
            env = app_environment(self.run_dir, options.trace_alloc)
            self.app = App(options.app, env, self.run_dir)
        else:
            # `heapsight attach`: the processes run already, their agents were injected.
            self.run_dir, self.app = app.run_dir, app
        self.deadline = time.monotonic() + options.timeout
        self.before_snapshots: dict[int, str] = {}
        self.phases: list[Phase] = []
        self.baseline: Point | None = None
        self.final: Point | None = None
        self.notes: list[str] = []
        self.settled = False
        self.statuses: dict[str, dict[int, int]] = {}

    # --- plumbing ---------------------------------------------------------------------

    def _running(self) -> bool:
        return self.app.exit_status() is None

    def _stop(self) -> bool:
        return self.stop_requested or time.monotonic() > self.deadline

    def _agents(self) -> list[AgentInfo]:
        return self.app.agents()

    def _wait_for_agents(self) -> list[AgentInfo]:
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            agents = self._agents()
            if agents:
                return agents
            if not self._running():
                raise RunFailed(f"the app exited with status {self.app.exit_status()}")
            if self._stop():
                raise RunFailed("interrupted before the app's agent registered")
            if time.monotonic() > deadline:
                errors = self.app.agent_errors()
                detail = ("\n  " + "\n  ".join(errors)) if errors else (
                    "\n  is the app a Python program? heapsight loads its agent through "
                    "sitecustomize on PYTHONPATH, which `python -S` or `-I` disable"
                )
                raise RunFailed(f"no heapsight agent registered within "
                                f"{AGENT_WAIT_SECONDS:.0f} s{detail}")
            time.sleep(0.1)

    def census_all(self, x: float) -> Point:
        point = Point(x=x, time=time.time(), census={}, rss={}, requests={})
        for agent in self._agents():
            try:
                reply = self.app.request(agent, "census")
            except (OSError, RuntimeError, ValueError):
                continue  # a worker that exits between listing and asking
            census = reply["census"]
            point.census[agent.pid] = {k: (int(v[0]), int(v[1])) for k, v in census.items()}
            point.rss[agent.pid] = int(reply.get("rss_bytes") or 0)
            point.requests[agent.pid] = {k: int(v) for k, v in reply["requests"].items()}
        if not point.census and not self._running():
            raise RunFailed(f"the app exited with status {self.app.exit_status()}")
        return point

    def snapshot(self, agent_pid: int, name: str) -> str | None:
        for agent in self._agents():
            if agent.pid == agent_pid:
                path = os.path.join(self.run_dir, f"{name}-{agent_pid}.hsnap")
                try:
                    self.app.request(agent, "snapshot", timeout=600.0, path=path,
                                     values=self.options.include_values)
                except (OSError, RuntimeError, ValueError) as exc:
                    self.notes.append(f"snapshot of pid {agent_pid} failed: {exc}")
                    return None
                return path
        return None

    def _show(self, phase: str, point: Point | None = None) -> None:
        rss = ""
        if point is not None and point.rss:
            rss = " · RSS " + " ".join(
                f"{pid}:{size / 2**20:.0f}M" for pid, size in sorted(point.rss.items()))
        self.progress.show(f"{phase}{rss}")

    # --- the run ------------------------------------------------------------------------

    def start(self) -> None:
        interpreter = target_interpreter(self.options.app[0])
        if interpreter is not None:
            theirs = check_interpreter(interpreter, self.app.env)
            if theirs != heapsight.__version__:
                self.notes.append(f"the app's interpreter loads heapsight {theirs}, this is "
                                  f"{heapsight.__version__}; both speak control protocol v1")
        else:
            self.notes.append(f"cannot tell which Python {self.options.app[0]} runs; "
                              "the agent is loaded if it is a Python program")
        self.app.start()

    def drive(self) -> None:
        options = self.options
        ports = sorted({d.port for d in options.drives})
        for port in ports:
            self.progress.show(f"waiting for 127.0.0.1:{port}")
            wait_for_port(port, options.startup_timeout, self._running, self._stop)
        self._wait_for_agents()
        driver = Driver(self.deadline, self._running)
        try:
            next_index = {d.label: 0 for d in options.drives}
            for drive in options.drives:
                self._show(f"warm-up {drive.label}")
                next_index[drive.label] += driver.send(drive, 0, options.warmup, self._stop)
            self.baseline = self.census_all(0)
            # Every process, not only those that served the warm-up: a worker whose
            # keep-alive connection closed meanwhile (uvicorn's 5 s) hands the measured
            # requests, and so the leak, to another one, and the diff needs its baseline.
            for agent in self._agents():
                self._show(f"snapshot of pid {agent.pid} after warm-up")
                path = self.snapshot(agent.pid, "before")
                if path:
                    self.before_snapshots[agent.pid] = path
            per_round = max(1, options.requests // options.rounds)
            for drive in options.drives:
                if self._stop():
                    break
                first = self.census_all(0)
                phase = Phase(label=drive.label, points=[first])
                self.phases.append(phase)
                for round_number in range(options.rounds):
                    if self._stop():
                        break
                    sent = driver.send(drive, next_index[drive.label], per_round, self._stop)
                    next_index[drive.label] += sent
                    phase.requests_sent += sent
                    point = self.census_all(phase.requests_sent)
                    phase.points.append(point)
                    self._show(f"{drive.label} round {round_number + 1}/{options.rounds} · "
                               f"{phase.requests_sent} requests{_top_growth(phase)}", point)
                phase.label = _route_label(phase, drive.method) or drive.label
            self.statuses = {k: dict(v) for k, v in driver.statuses.items()}
        finally:
            driver.close()

    def _wait_for_stable_agents(self) -> None:
        """Until the set of processes has not changed for a while: workers that are still
        booting would count their own start-up as growth."""
        self._wait_for_agents()
        deadline = time.monotonic() + self.options.startup_timeout
        seen = {a.pid for a in self._agents()}
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < STABLE_AGENTS_SECONDS:
            if time.monotonic() > deadline or self._stop():
                return
            if not self._running():
                raise RunFailed(f"the app exited with status {self.app.exit_status()}")
            time.sleep(0.1)
            now = {a.pid for a in self._agents()}
            if now != seen:
                seen, stable_since = now, time.monotonic()
            self.progress.show(f"waiting for the app's processes ({len(seen)} so far)")

    def watch(self) -> None:
        options = self.options
        self._wait_for_stable_agents()
        started = time.monotonic()
        self.baseline = self.census_all(0)
        for agent in self._agents():
            path = self.snapshot(agent.pid, "before")
            if path:
                self.before_snapshots[agent.pid] = path
        phase = Phase(label="watched traffic", points=[self.baseline])
        self.phases.append(phase)
        end = started + options.duration
        while not self._stop() and time.monotonic() < end:
            time.sleep(min(options.interval, max(0.0, end - time.monotonic())))
            if not self._running():
                raise RunFailed(f"the app exited with status {self.app.exit_status()}")
            point = self.census_all(time.monotonic() - started)
            phase.points.append(point)
            total = sum(sum(r.values()) for r in point.requests.values())
            phase.requests_sent = total - sum(
                sum(r.values()) for r in self.baseline.requests.values())
            self._show(f"watching {point.x:.0f}/{options.duration:.0f} s · {total} requests", point)
        self.statuses = {}

    def finish(self) -> dict[str, Any]:
        """Final census, the second snapshot on the worker that grew most, the report."""
        last_x = self.phases[-1].points[-1].x if self.phases else 0
        watch = not self.options.drives
        x_unit = "seconds" if watch else "requests"
        if not watch and any(diagnose.phase_verdict(p, x_unit)["kind"] != "no_leak"
                             for p in self.phases):
            # Objects released on a timer (keep-alive timeouts) look like a leak while
            # requests keep coming; an idle pause tells them apart. (Watched traffic does
            # not pause, so there is nothing to learn from waiting.)
            pause_until = time.monotonic() + self.options.settle
            while time.monotonic() < pause_until and not self.stop_requested:
                self._show(f"letting the app settle ({pause_until - time.monotonic():.0f} s)")
                time.sleep(0.2)
            self.settled = not self.stop_requested
        self.final = self.census_all(last_x)
        worker = self._worker_that_grew_most()
        report: dict[str, Any] = {}
        after_path = None
        if worker is not None:
            self._show(f"snapshot of pid {worker} (grew most)")
            after_path = self.snapshot(worker, "after")
        if worker is not None and after_path:
            report_path = os.path.join(self.run_dir, "report.json")
            self._show("analysing the snapshots")
            report = self._report(self.before_snapshots[worker], after_path, report_path)
        self.progress.clear()
        return self._result(report, worker, after_path)

    def _report(self, before: str, after: str, report_path: str) -> dict[str, Any]:
        # A child process keeps the report command's own output off the run's summary.
        proc = subprocess.run(
            [sys.executable, "-m", "heapsight", "report", before, after, "--json"],
            capture_output=True, text=True,
        )
        if proc.returncode == EXIT_ERROR or not proc.stdout.strip():
            self.notes.append(f"report failed: {proc.stderr.strip()[-500:]}")
            return {}
        try:
            report: dict[str, Any] = json.loads(proc.stdout)
        except ValueError as exc:
            self.notes.append(f"report unreadable: {exc}")
            return {}
        _heapsight.write_atomic(report_path, proc.stdout.encode())
        return report

    def _worker_that_grew_most(self) -> int | None:
        if self.baseline is None or self.final is None:
            return None
        return diagnose.worker_to_snapshot(
            self.phases, self.baseline, self.final, list(self.before_snapshots),
            "requests" if self.options.drives else "seconds", self.settled)

    def _result(self, report: dict[str, Any], worker: int | None,
                after_path: str | None) -> dict[str, Any]:
        watch = not self.options.drives
        endpoints = []
        kinds = []
        bounded = _bounded_types(report)
        for phase in self.phases:
            verdict = diagnose.phase_verdict(phase, "seconds" if watch else "requests",
                                             self.final if self.settled else None, bounded)
            kinds.append(verdict["kind"])
            top = sorted(verdict["growth"].items(), key=lambda kv: -kv[1][0])[:5]
            endpoints.append({
                "endpoint": phase.label,
                "requests": phase.requests_sent,
                "verdict": diagnose.VERDICT_NAMES[verdict["kind"]],
                "explanation": verdict["explanation"],
                "top_growth": [{"type": n, "count": c, "bytes": b} for n, (c, b) in top if c > 0],
                "series": [{"type": v.get("type"), "verdict": diagnose.VERDICT_NAMES.get(
                    v["kind"], v["kind"]), "slope_per_request": v.get("slope_per_unit")}
                    for v in verdict["assessed"]],
                "_verdict": verdict,
            })
        overall = diagnose.overall(kinds)
        suspects = self._suspects(report, endpoints, overall) if overall != "no-leak" else []
        if self.options.trace_alloc and suspects and worker is not None:
            self._add_allocation_sites(worker, suspects)
        for e in endpoints:
            e.pop("_verdict")
        for message in self.app.agent_errors():
            if message not in self.notes:
                self.notes.append(message)
        seen = {pid for phase in self.phases for p in phase.points for pid in p.census}
        gone = sorted(seen - set(self.final.census if self.final else {}))
        if gone:
            self.notes.append(
                f"process(es) {', '.join(map(str, gone))} exited during the run (workers "
                "replaced by the server?); their growth counts only while they lived")
        workers = []
        for pid in sorted(set(self.final.census) if self.final else set()):
            workers.append({
                "pid": pid,
                "rss_before_bytes": self.baseline.rss.get(pid) if self.baseline else None,
                "rss_after_bytes": self.final.rss.get(pid) if self.final else None,
                "requests": sum((self.final.requests.get(pid) or {}).values()) if self.final else 0,
            })
        return {
            "verdict": overall,
            "suspects": suspects,
            "mode": "watch" if watch else "drive",
            "endpoints": endpoints,
            "workers": workers,
            "snapshot_worker": worker,
            "snapshots": [p for p in (self.before_snapshots.get(worker) if worker else None,
                                      after_path) if p],
            "report": os.path.join(self.run_dir, "report.json") if report else None,
            "run_dir": self.run_dir,
            "http_statuses": self.statuses,
            "notes": self.notes,
        }

    def _suspects(self, report: dict[str, Any], endpoints: list[dict[str, Any]],
                  overall: str) -> list[dict[str, Any]]:
        watch = not self.options.drives
        # Types the series themselves call leaking, per endpoint, with their growth.
        by_type: dict[str, dict[str, int]] = {}
        for endpoint in endpoints:
            verdict = endpoint["_verdict"]
            phase_leaks = verdict["kind"] == "leak"
            for name, (count, _size) in verdict["growth"].items():
                if count >= verdict.get("threshold", 1) and (phase_leaks or overall != "leak"):
                    by_type.setdefault(name, {})[endpoint["endpoint"]] = count
        leaking = {v["type"] for e in endpoints for v in e["_verdict"]["assessed"]
                   if v["kind"] == "leak" and v.get("type")}
        out = []
        confirmed = []  # whether the series themselves call each entry of `out` leaking
        covered: set[str] = set()
        for suspect in report.get("suspects", []):
            name = suspect["type_name"]
            if name in covered:
                continue  # an owned byproduct of a suspect already listed
            if suspect.get("bounded_by"):
                covered.add(name)
                note = diagnose.bounded_explanation(name, suspect["bounded_by"])
                if note not in self.notes:
                    self.notes.append(note)
                continue
            folded = {f.get("type_name") for f in suspect.get("folded", [])}
            related = ({name} | folded) & (set(by_type) | leaking)
            if overall == "leak" and not related:
                continue
            covered |= {name} | folded
            out.append(self._suspect_entry(name, suspect, by_type, watch))
            confirmed.append(bool(({name} | folded) & leaking))
        for name in sorted(leaking - covered, key=lambda n: -sum(by_type.get(n, {}).values())):
            out.append(self._suspect_entry(name, None, by_type, watch))
            confirmed.append(True)
        # The snapshots' ranking, but what the series call leaking first: a type that only
        # grew once between the two snapshots (a module imported by a first request) may
        # outweigh a small steady leak there.
        order = sorted(range(len(out)), key=lambda i: not confirmed[i])
        return [out[i] for i in order]

    def _suspect_entry(self, name: str, suspect: dict[str, Any] | None,
                       by_type: dict[str, dict[str, int]], watch: bool) -> dict[str, Any]:
        if watch and self.phases:
            ranked = diagnose.attribute_by_mix(self.phases[0].points, name)
            endpoint_names = [route for route, _ in ranked]
        else:
            grown = by_type.get(name, {})
            if not grown and suspect is not None:
                for folded in suspect.get("folded", []):
                    grown = by_type.get(folded.get("type_name"), {}) or grown
            endpoint_names = [e for e, _ in sorted(grown.items(), key=lambda kv: -kv[1])]
        count_growth, size_growth = 0, 0
        if self.baseline is not None and self.final is not None:
            pids = set(self.baseline.census) & set(self.final.census)
            c0, s0 = diagnose.total(self.baseline, pids, name)
            c1, s1 = diagnose.total(self.final, pids, name)
            count_growth, size_growth = c1 - c0, s1 - s0
        entry: dict[str, Any] = {
            "type": name,
            "count_growth": count_growth,
            "size_growth_bytes": size_growth,
            "retainer_path": list(suspect.get("representative_path", [])) if suspect else [],
            "endpoints": endpoint_names,
            "fix": diagnose.fix_text(suspect) if suspect else "",
        }
        if suspect is not None:
            entry["snapshot_count_growth"] = suspect.get("count_growth")
            entry["snapshot_size_growth_bytes"] = suspect.get("bytes_growth")
            entry["headline"] = suspect.get("headline")
            entry["shapes"] = [s.get("holder") for s in suspect.get("shapes", [])]
            acc = suspect.get("accumulation_point")
            if acc:
                entry["accumulation_point"] = " -> ".join(acc.get("path", []))
        return entry

    def _add_allocation_sites(self, worker: int, suspects: list[dict[str, Any]]) -> None:
        for agent in self._agents():
            if agent.pid != worker:
                continue
            try:
                reply = self.app.request(agent, "alloc_sites",
                                         types=[s["type"] for s in suspects])
            except (OSError, RuntimeError, ValueError) as exc:
                self.notes.append(f"allocation sites unavailable: {exc}")
                return
            for suspect in suspects:
                suspect["allocation_sites"] = reply["sites"].get(suspect["type"], [])


def _bounded_types(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Types the snapshot diff shows held by a container of fixed capacity, with the
    byproducts folded into them (a cached result's attribute dicts, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for suspect in report.get("suspects", []):
        holder = suspect.get("bounded_by")
        if not holder:
            continue
        out[suspect["type_name"]] = holder
        for folded in suspect.get("folded", []):
            if folded.get("how") == "owned" and folded.get("type_name"):
                out.setdefault(folded["type_name"], holder)
    return out


def _top_growth(phase: Phase) -> str:
    """The fastest growing types of the phase so far, for the progress line."""
    pids = diagnose.common_pids([phase.points[0], phase.points[-1]])
    grown = diagnose.growth(phase.points[0], phase.points[-1], pids)
    top = sorted(((c, n) for n, (c, _) in grown.items() if c > 0), reverse=True)[:2]
    return "".join(f" · {name} +{count}" for count, name in top)


def _route_label(phase: Phase, method: str) -> str | None:
    first, last = phase.points[0], phase.points[-1]
    counts: dict[str, int] = {}
    for pid, routes in last.requests.items():
        before = first.requests.get(pid, {})
        for route, n in routes.items():
            counts[route] = counts.get(route, 0) + n - before.get(route, 0)
    if not counts:
        return None
    route, n = max(counts.items(), key=lambda kv: kv[1])
    # A template covers (nearly) every request of the phase; raw paths of a URL with {i}
    # are each seen once, and then the drive's own URL names the endpoint better. Judged
    # against the requests the agents counted, not those sent: a worker whose last census
    # did not answer in time takes its share out of both.
    if route.endswith("<other>") or n < sum(counts.values()) / 2:
        return None
    return route if route.startswith(method + " ") else None


def summary_text(result: dict[str, Any]) -> str:
    lines = [f"heapsight run · verdict: {result['verdict'].upper()}",
             f"  {htmlreport.numbers(result)}"]
    if result["endpoints"]:
        lines.append("")
        width = max(len(e["endpoint"]) for e in result["endpoints"])
        for e in result["endpoints"]:
            growth = ", ".join(f"{g['type']} +{g['count']}" for g in e["top_growth"][:3])
            lines.append(f"  {e['endpoint']:<{width}}  {e['requests']:>6} requests  "
                         f"{e['verdict']:<12}  {growth or 'no growth'}")
    for rank, s in enumerate(result["suspects"], 1):
        lines.append("")
        lines.append(f"#{rank} {s['type']}  {s['count_growth']:+d} objects  "
                     f"{s['size_growth_bytes']:+d} bytes")
        if s["endpoints"]:
            lines.append(f"   from: {', '.join(s['endpoints'])}")
        if s["retainer_path"]:
            lines.append(f"   held by: {' -> '.join(s['retainer_path'])}")
        if s.get("accumulation_point"):
            lines.append(f"   accumulates in: {s['accumulation_point']}")
        for site in s.get("allocation_sites", [])[:2]:
            lines.append(f"   allocated at: {site['site']} ({site['count']} objects)")
        if s["fix"]:
            first, *rest = s["fix"].splitlines()
            lines.append(f"   fix: {first}")
            lines.extend(f"        {line}" for line in rest)
    if result.get("report"):
        lines.append("")
        lines.append(f"full report: {result['report']}")
        if len(result["snapshots"]) == 2:
            lines.append(f"  heapsight report {result['snapshots'][0]} {result['snapshots'][1]}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def emit_result(result: dict[str, Any], options: RunOptions, phases: list[Phase],
                command: list[str], name: str = "heapsight run") -> int:
    """The summary on the terminal, then `--json` and `--report`; the exit status."""
    out = sys.stderr if options.json_out == "-" else sys.stdout
    out.write(summary_text(result).replace("heapsight run", name, 1))
    out.flush()
    if options.json_out:
        _write_json(options.json_out, result)
    code = EXIT[result["verdict"]]
    if options.report_out:
        try:
            htmlreport.write(options.report_out, result, phases, command)
            sys.stderr.write(f"HTML report written to {options.report_out}\n")
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"error: cannot write the HTML report: {exc}\n")
            code = EXIT_ERROR
    return code


def _write_json(path: str, result: dict[str, Any]) -> None:
    text = json.dumps(result, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _heapsight.write_atomic(path, text.encode())


def main(argv: list[str]) -> int:
    try:
        options = parse(argv)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_ERROR
    session: Session | None = None
    handlers: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if session is None or session.stop_requested:
            raise KeyboardInterrupt
        session.stop_requested = True
        session.progress.note("stopping: finishing the census and writing the report "
                              "(again to abort)")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[sig] = signal.signal(sig, on_signal)
        except ValueError:
            pass  # not the main thread: no signal handling, the run still works
    code = EXIT_ERROR
    try:
        session = Session(options)
        session.start()
        if options.drives:
            session.drive()
        else:
            session.watch()
        if not session._running():
            status = session.app.exit_status()
            raise RunFailed(f"the app exited with status {status} during the run")
        result = session.finish()
        code = emit_result(result, options, session.phases, options.app)
    except (LaunchError, RunFailed, DriveError, UsageError) as exc:
        if session is not None:
            session.progress.clear()
            for message in session.app.agent_errors():
                sys.stderr.write(f"{message}\n")
        sys.stderr.write(f"error: {exc}\n")
        code = EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("heapsight: aborted\n")
        code = 130
    finally:
        if session is not None:
            session.app.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return code
