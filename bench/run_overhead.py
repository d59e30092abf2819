"""Overhead of `heapsight run` on a live server: requests per second, side by side.

Run:  python bench/run_overhead.py [--seconds 1] [--reps 15]

Two servers, each in four configurations, measured in one run on 127.0.0.1:
- Flask (tests/apps/flask_app.py, GET /health) under gunicorn with 1 sync worker;
- Starlette (a two-route app written to a temporary directory) under uvicorn.
Configurations: plain; under `heapsight run` watching the traffic at its default census
interval (5 s); `PYTHONTRACEMALLOC=1`; `memray run --follow-fork`. The load is a bounded
closed loop (one client, one request at a time, new connection per request for gunicorn's
sync worker, keep-alive for uvicorn). All configurations of one server run at the same
time and the load visits them in turn, `--reps` windows of `--seconds` each (every window
starts with 300 unmeasured requests), so machine noise falls on all of them alike; the
median window is reported.

Beside requests per second, the CPU time the app's processes use per request (utime +
stime from /proc, summed over every measured window; heapsight's own CLI process is not
the app and is left out) is reported: on a busy machine it moves much less than
throughput, which depends on when the scheduler runs the server.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"
BIN = Path(sys.executable).parent

STARLETTE_APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def health(request):
    return JSONResponse({"ok": True})

async def item(request):
    return JSONResponse({"id": request.path_params["item_id"]})

app = Starlette(routes=[Route("/health", health), Route("/items/{item_id}", item)])
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} never accepted connections")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def app_processes(root: int, include_root: bool) -> list[int]:
    """`root`'s descendants (and `root` itself when it is the app)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found.extend(children)
        frontier.extend(children)
    return ([root] if include_root else []) + found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def load(port: int, path: str, seconds: float, keep_alive: bool,
         pids: list[int]) -> tuple[float, int, float]:
    """Requests per second of a one-client closed loop over `seconds`, the requests
    served, and the CPU seconds `pids` used meanwhile."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(300):
        conn.request("GET", path)
        conn.getresponse().read()
        if not keep_alive:
            conn.close()
    done = 0
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if not keep_alive:
            conn.close()
        done += 1
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    conn.close()
    return done / elapsed, done, cpu


def server_argv(server: str, port: int, workdir: Path) -> tuple[list[str], Path]:
    if server == "flask-gunicorn":
        return ([str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                 "--log-level", "warning", "flask_app:app"], APPS)
    return ([str(BIN / "uvicorn"), "--port", str(port), "--log-level", "warning",
             "--no-access-log", "starlette_bench:app"], workdir)


def wrap(config: str, argv: list[str], workdir: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if config == "plain":
        return argv, env
    if config == "heapsight run":
        return ([sys.executable, "-m", "heapsight", "run", "--duration", "3600",
                 "--keep-dir", tempfile.mkdtemp(dir=workdir), "--", *argv], env)
    if config == "PYTHONTRACEMALLOC=1":
        env["PYTHONTRACEMALLOC"] = "1"
        return argv, env
    if config == "memray run":
        out = workdir / f"memray-{time.monotonic_ns()}.bin"
        return ([sys.executable, "-m", "memray", "run", "--follow-fork", "-q", "-o", str(out),
                 argv[0], *argv[1:]], env)
    raise ValueError(config)


def start(server: str, config: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv, cwd = server_argv(server, port, workdir)
    argv, env = wrap(config, argv, workdir)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except ProcessLookupError:
        proc.wait()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one window")
    parser.add_argument("--reps", type=int, default=15, help="windows per configuration")
    args = parser.parse_args()
    configs = ["plain", "heapsight run", "PYTHONTRACEMALLOC=1"]
    try:
        import memray  # noqa: F401

        configs.append("memray run")
    except ImportError:
        print("memray not installed: skipped (pip install -r bench/requirements.txt)")
    workdir = Path(tempfile.mkdtemp(prefix="heapsight-bench-run-"))
    (workdir / "starlette_bench.py").write_text(STARLETTE_APP)
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        for server in ("flask-gunicorn", "starlette-uvicorn"):
            # Every configuration runs at once and the load visits them in turn, window by
            # window, so that the machine's noise falls on all of them alike.
            running = {config: start(server, config, workdir) for config in configs}
            try:
                for _, port in running.values():
                    wait_port(port)
                time.sleep(3.0)  # heapsight run waits for the processes to settle
                pids = {config: app_processes(proc.pid, config != "heapsight run")
                        for config, (proc, _) in running.items()}
                for rep in range(args.reps):
                    for config, (_, port) in running.items():
                        rps, done, used = load(port, "/health", args.seconds,
                                               keep_alive=server != "flask-gunicorn",
                                               pids=pids[config])
                        results.setdefault((server, config), []).append(rps)
                        totals = cpu.setdefault((server, config), [0.0, 0.0])
                        totals[0] += used
                        totals[1] += done
                        print(f"window {rep + 1} {server:<18} {config:<20} {rps:8.0f} req/s",
                              flush=True)
            finally:
                for proc, _ in running.values():
                    stop(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'server':<18} {'configuration':<20} {'req/s (median)':>15} {'vs plain':>9}"
          f" {'app CPU/request':>16} {'vs plain':>9}")
    for server in ("flask-gunicorn", "starlette-uvicorn"):
        plain = statistics.median(results[(server, "plain")])
        plain_used, plain_done = cpu[(server, "plain")]
        plain_cost = plain_used / max(plain_done, 1)
        for config in configs:
            rps = statistics.median(results[(server, config)])
            used, done = cpu[(server, config)]
            cost = used / max(done, 1)
            print(f"{server:<18} {config:<20} {rps:15.0f} {100 * (rps / plain - 1):+8.1f}%"
                  f" {cost * 1e6:13.0f} us {100 * (cost / plain_cost - 1):+8.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
