"""`heapsight demo`: the whole hunt on the bundled leaky WSGI app, in this process.

The app is served by `wsgiref` on 127.0.0.1 (an ephemeral port) in a thread and driven
with real HTTP requests, one endpoint at a time, so growth is attributed per endpoint.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import os
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="heapsight demo")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep-dir")
    args = parser.parse_args(argv)
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
            _print(f"  {endpoint:<22} {per_round * ROUNDS} requests · "
                   + (", ".join(f"{n} +{d}" for n, d in sorted(grown.items(), key=lambda x: -x[1])[:3])
                      or "no growth"))
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
