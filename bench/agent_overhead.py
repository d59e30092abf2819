"""CPU cost of the `heapsight run` agent inside the app, per request and per census.

Run:  python bench/agent_overhead.py [--requests 4000] [--reps 7]

Throughput on a shared 2-core machine swings by tens of percent from one second to the
next (bench/run_overhead.py shows it), so this measures what the agent adds in CPU time,
which the rest of the machine barely moves. Each configuration runs in its own child
interpreter, alternating, `--reps` times:
- `plain`: the app module imported as is;
- `agent`: the same interpreter started the way `heapsight run` starts the app
  (`sitecustomize` bootstrap, control socket thread, framework hooks), with the app
  wrapped by the server hook exactly as gunicorn's or uvicorn's loader would be.
Each child serves `--requests` requests by calling the WSGI or ASGI callable directly
(no sockets, so only the app's own work is timed) and reports CPU seconds per request
(`time.process_time`). The agent child also times one `heapsight.census()` of its heap:
at `heapsight run`'s default census period (5 s) that cost, spread over a fully busy
worker, is the sampling overhead. The two add up to the agent's share of a busy worker.
Peers are in bench/run_overhead.py (tracemalloc, memray): they cost per allocation, not
per request, so only a whole-server measurement compares them fairly.

CPU time still moves by +-20% on a busy machine (shared caches, other processes'
threads). `--instructions` counts instructions instead, under valgrind's callgrind:
each configuration serves N and 3N requests and the difference divided by 2N is the
instructions per request, start-up and imports cancelled out. Counts are repeatable
whatever else the machine does. `--server-instructions` does the same for the whole
server (gunicorn with 1 sync worker, uvicorn) under callgrind, driven over 127.0.0.1 by
this process: the agent's share of everything a request costs, HTTP parsing included.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "tests" / "apps"
CENSUS_PERIOD_SECONDS = 5.0
WARMUP_REQUESTS = 100

CHILD = r'''
import asyncio, json, sys, time
which, requests, with_agent = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"

def wrap(app):
    if not with_agent:
        return app
    from heapsight.agent import frameworks
    return frameworks.wrap_any(app)  # what the gunicorn/uvicorn loader hook returns

if which == "flask":
    import flask_app
    app = wrap(flask_app.app)
    def environ(i):
        return {"REQUEST_METHOD": "GET", "PATH_INFO": f"/items/{i}", "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr,
                "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
                "wsgi.version": (1, 0)}
    def start_response(status, headers, exc_info=None):
        return None
    def serve(i):
        for chunk in app(environ(i), start_response):
            pass
    run = lambda n, offset: [serve(offset + i) for i in range(n)]
else:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    async def item(request):
        return JSONResponse({"id": request.path_params["item_id"]})
    app = wrap(Starlette(routes=[Route("/items/{item_id:int}", item)]))
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        return None
    async def many(n, offset):
        for i in range(offset, offset + n):
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "GET", "scheme": "http", "path": f"/items/{i}",
                     "raw_path": f"/items/{i}".encode(), "query_string": b"", "headers": [],
                     "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1234),
                     "root_path": ""}
            await app(scope, receive, send)
    loop = asyncio.new_event_loop()
    run = lambda n, offset: loop.run_until_complete(many(n, offset))

run(500, 0)  # warm-up: imports, caches, first-call specialisation
started, thread_started = time.process_time(), time.thread_time()
run(requests, 1000)
per_request = (time.process_time() - started) / requests
main_thread = (time.thread_time() - thread_started) / requests
census = None
if with_agent:
    import heapsight
    started = time.process_time()
    heapsight.census()
    census = time.process_time() - started
import gc
print(json.dumps({"per_request": per_request, "main_thread": main_thread, "census": census,
                  "objects": len(gc.get_objects())}))
'''


def child(which: str, requests: int, with_agent: bool, run_dir: str) -> dict[str, float]:
    env = dict(os.environ)
    if with_agent:
        from heapsight.run.launcher import app_environment

        env = app_environment(run_dir, trace_alloc=False)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH"), str(APPS)) if p)
    done = subprocess.run([sys.executable, "-c", CHILD, which, str(requests),
                           "1" if with_agent else "0"],
                          env=env, cwd=APPS, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{which} child failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def instructions(which: str, requests: int, with_agent: bool, run_dir: str) -> int:
    """Instructions executed by a whole child run under callgrind."""
    env = dict(os.environ)
    if with_agent:
        from heapsight.run.launcher import app_environment

        env = app_environment(run_dir, trace_alloc=False)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (env.get("PYTHONPATH"), str(APPS)) if p)
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           sys.executable, "-c", CHILD, which, str(requests),
                           "1" if with_agent else "0"],
                          env=env, cwd=APPS, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{which} child failed under callgrind:\n{done.stderr[-2000:]}")
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def server_instructions(server: str, requests: int, with_agent: bool, workdir: Path) -> int:
    """Instructions of every process of a server under callgrind that served `requests`."""
    sys.path.insert(0, str(ROOT / "bench"))
    from run_overhead import free_port, server_argv, wait_port

    port = free_port()
    argv, cwd = server_argv(server, port, workdir)
    env = dict(os.environ)
    if with_agent:
        from heapsight.run.launcher import app_environment

        env = app_environment(str(workdir / f"run-{time.monotonic_ns()}"), trace_alloc=False)
        os.makedirs(env["HEAPSIGHT_RUN_DIR"], exist_ok=True)
    if server == "flask-gunicorn":
        argv += ["--timeout", "600"]  # workers under valgrind answer the arbiter slowly
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                             *argv], cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, timeout=300)
        keep_alive = server != "flask-gunicorn"
        # Under valgrind the first requests (imports, first calls) take seconds.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for _ in range(WARMUP_REQUESTS + requests):
            conn.request("GET", "/health")
            conn.getresponse().read()
            if not keep_alive:
                conn.close()
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    counts = [int(c) for c in re.findall(r"Collected : (\d+)", stderr)]
    if not counts:
        raise RuntimeError(f"no instruction count from callgrind:\n{stderr[-2000:]}")
    return sum(counts)


def per_request(count: Callable[[int, bool], int], requests: int) -> dict[bool, float]:
    """Instructions per request without and with the agent: runs of N and 3N requests,
    so that start-up and imports cancel out."""
    per = {}
    for with_agent in (False, True):
        small = count(requests, with_agent)
        large = count(3 * requests, with_agent)
        per[with_agent] = (large - small) / (2 * requests)
    return per


def main_server_instructions(requests: int) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install valgrind")
        return 2
    print(f"{'server':<18} {'plain instr/req':>16} {'agent instr/req':>16} {'per request':>12}")
    for server in ("flask-gunicorn", "starlette-uvicorn"):
        with tempfile.TemporaryDirectory(prefix="heapsight-bench-agent-") as tmp:
            workdir = Path(tmp)
            sys.path.insert(0, str(ROOT / "bench"))
            from run_overhead import STARLETTE_APP

            (workdir / "starlette_bench.py").write_text(STARLETTE_APP)
            per = per_request(functools.partial(server_instructions, server, workdir=workdir),
                              requests)
        print(f"{server:<18} {per[False]:16,.0f} {per[True]:16,.0f} "
              f"{100 * (per[True] / per[False] - 1):+11.1f}%", flush=True)
    return 0


def main_instructions(requests: int) -> int:
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install valgrind")
        return 2
    print(f"{'app':<10} {'plain instr/req':>16} {'agent instr/req':>16} {'per request':>12}")
    for which in ("flask", "starlette"):
        with tempfile.TemporaryDirectory(prefix="heapsight-bench-agent-") as run_dir:
            per = per_request(functools.partial(instructions, which, run_dir=run_dir), requests)
        print(f"{which:<10} {per[False]:16,.0f} {per[True]:16,.0f} "
              f"{100 * (per[True] / per[False] - 1):+11.1f}%")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind instead of CPU time")
    parser.add_argument("--server-instructions", action="store_true",
                        help="count a whole server's instructions per request under callgrind")
    args = parser.parse_args()
    if args.server_instructions:
        return main_server_instructions(args.requests)
    if args.instructions:
        return main_instructions(args.requests)
    print(f"{'app':<10} {'plain CPU/req':>14} {'agent CPU/req':>14} {'per request':>12} "
          f"{'census':>9} {'objects':>8} {'census/5 s':>11} {'agent total':>12}")
    for which in ("flask", "starlette"):
        plain, agent, census, objects = [], [], [], 0
        with tempfile.TemporaryDirectory(prefix="heapsight-bench-agent-") as run_dir:
            for _ in range(args.reps):
                plain.append(child(which, args.requests, False, run_dir)["per_request"])
                measured = child(which, args.requests, True, run_dir)
                agent.append(measured["per_request"])
                census.append(measured["census"])
                objects = int(measured["objects"])
        p, a, c = statistics.median(plain), statistics.median(agent), statistics.median(census)
        per_request = 100 * (a / p - 1)
        sampling = 100 * c / CENSUS_PERIOD_SECONDS
        print(f"{which:<10} {p * 1e6:11.1f} us {a * 1e6:11.1f} us {per_request:+11.1f}% "
              f"{c * 1e3:6.1f} ms {objects:8d} {sampling:+10.2f}% {per_request + sampling:+11.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
