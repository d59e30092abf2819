"""`heapsight demo`: the whole hunt on the bundled leaky WSGI app.

The app runs as its own process under `heapsight run`, driven with real HTTP requests on
127.0.0.1 (an ephemeral port), one endpoint at a time, so growth is attributed per
endpoint. When that cannot start, the older in-process hunt serves the app from a thread.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
import socket
import sys
import tempfile
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import heapsight
from heapsight import _heapsight
from heapsight.demo import app as demo_app

ENDPOINTS = ["/health", "/products/{i}", "/login/user{i}"]
ROUNDS = 4


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _drive(port: int, template: str, start: int, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(start, start + n):
            conn.request("GET", template.format(i=i))
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {template} answered {response.status}")
    finally:
        conn.close()


def _census_counts() -> dict[str, int]:
    gc.collect()
    return heapsight.typestats()


def _print(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> int:
    """The demo as users will hunt: the bundled app in its own process under `heapsight run`.
    Falls back to the in-process hunt when the app cannot be started that way."""
    parser = argparse.ArgumentParser(prog="heapsight demo")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep-dir")
    parser.add_argument("--report")
    args = parser.parse_args(argv)
    from heapsight.run import main as run_main

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    run_argv = [
        "--drive", f"GET:{base}/health",
        "--drive", f"GET:{base}/products/{{i}}",
        "--drive", f"GET:{base}/login/user{{i}}",
        "--requests", str(args.requests), "--rounds", "10",
        # wsgiref closes every connection: no keep-alive timers to wait out.
        "--settle", "1",
    ]
    if args.keep_dir:
        run_argv += ["--keep-dir", args.keep_dir]
    if args.report:
        run_argv += ["--report", args.report]
    # Imported by name rather than run as __main__, so types read heapsight.demo.app.*.
    app_argv = [sys.executable, "-c",
                "import sys; from heapsight.demo.app import serve; serve(int(sys.argv[1]))",
                str(port)]
    _print("heapsight demo · a leaky WSGI shop, hunted with:")
    _print(f"  heapsight run {' '.join(run_argv)} -- python -m heapsight.demo.app {port}")
    _print()
    started = time.monotonic()
    code = run_main([*run_argv, "--", *app_argv])
    if code != 3:
        _print(f"(demo took {time.monotonic() - started:.1f} s)")
        return code
    _print("`heapsight run` could not start the demo app; hunting in this process instead"
           + (" (no HTML report in this mode)" if args.report else ""))
    return in_process_hunt(args.requests, args.keep_dir)


def in_process_hunt(requests: int, keep_dir: str | None) -> int:
    """The whole hunt with the app served from a thread of this process."""
    args = argparse.Namespace(requests=requests, keep_dir=keep_dir)
    per_round = max(1, args.requests // ROUNDS)

    server = make_server("127.0.0.1", 0, demo_app.app, handler_class=_QuietHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    workdir = args.keep_dir or tempfile.mkdtemp(prefix="heapsight-demo-")
    os.makedirs(workdir, exist_ok=True)
    before_path = os.path.join(workdir, "before.hsnap")
    after_path = os.path.join(workdir, "after.hsnap")
    started = time.monotonic()
    try:
        _print(f"heapsight demo · leaky WSGI shop on http://127.0.0.1:{port}")
        _print("warming up every endpoint ...")
        for template in ENDPOINTS:
            _drive(port, template, 0, 100)
        gc.collect()
        heapsight.snapshot(before_path)
        growth_by_endpoint: dict[str, dict[str, int]] = {}
        next_index = 1000
        for template in ENDPOINTS:
            endpoint = "GET " + template.replace("{i}", "<id>")
            before = _census_counts()
            for _ in range(ROUNDS):
                _drive(port, template, next_index, per_round)
                next_index += per_round
            after = _census_counts()
            grown = {
                name: after[name] - before.get(name, 0)
                for name in after
                if after[name] - before.get(name, 0) >= per_round * ROUNDS // 2
            }
            growth_by_endpoint[endpoint] = grown
            top = sorted(grown.items(), key=lambda x: -x[1])[:3]
            _print(f"  {endpoint:<22} {per_round * ROUNDS} requests · "
                   + (", ".join(f"{n} +{d}" for n, d in top) or "no growth"))
        heapsight.snapshot(after_path)
    finally:
        server.shutdown()
        server.server_close()

    _print()
    if not any(growth_by_endpoint.values()):
        _print("no endpoint left objects behind")
    _print(f"snapshots: {before_path} and {after_path}")
    code = _heapsight.run_cli(["heapsight", "report", before_path, after_path])
    _print(f"(demo took {time.monotonic() - started:.1f} s)")
    return code
