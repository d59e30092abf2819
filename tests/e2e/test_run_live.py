"""`heapsight run` without --drive (watching real traffic), interrupted runs, and
--trace-alloc."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import APPS, BIN, Runner, assert_contract, free_port


def _wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("port never opened")


def _traffic(port: int, stop: threading.Event) -> None:
    """Real-looking traffic: a changing mix of a leaking and two clean routes."""
    rng = random.Random(7)
    _wait_port(port)
    n = 0
    while not stop.is_set():
        for path, weight in (("/login/u{n}", rng.randint(0, 6)), ("/health", rng.randint(0, 6)),
                             ("/items/{n}", rng.randint(0, 6))):
            for _ in range(weight):
                n += 1
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", path.format(n=n))
                    conn.getresponse().read()
                    conn.close()
                except OSError:
                    if stop.is_set():
                        return
        time.sleep(0.05)


def test_watching_real_traffic_attributes_growth_to_the_route(run_heapsight: Runner) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(target=_traffic, args=(port, stop), daemon=True)
    thread.start()
    try:
        result = run_heapsight(
            ["--duration", "8", "--interval", "0.5"],
            [str(BIN / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}", "flask_app:app"],
        )
    finally:
        stop.set()
        thread.join(10)
    assert result.code == 1, result.stdout + result.stderr
    data = result.json
    assert data is not None
    assert_contract(data)
    assert data["mode"] == "watch"
    suspect = data["suspects"][0]
    assert suspect["type"] == "flask_app.UserSession"
    assert suspect["endpoints"][0] == "GET /login/<user>"
    assert suspect["retainer_path"][:2] == ["module flask_app", "._SESSIONS"]


def test_ctrl_c_stops_the_app_and_still_reports(tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heapsight", "run", "--drive",
         f"GET:http://127.0.0.1:{port}/leak", "--requests", "1000000", "--warmup", "150",
         "--keep-dir", str(run_dir), "--json", str(out), "--", "python", "wsgi_app.py",
         str(port)],
        cwd=APPS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(run_dir.glob("before-*.hsnap")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        app_pids = [json.loads(p.read_text())["pid"] for p in (run_dir / "agents").glob("*.json")]
        assert app_pids
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (1, 2), stderr
    assert "stopping" in stderr
    data = json.loads(out.read_text())
    assert data["verdict"] in ("leak", "inconclusive")
    assert "verdict" in stdout
    for pid in app_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_trace_alloc_names_the_allocation_site(run_heapsight: Runner) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    result = run_heapsight(
        ["--drive", f"GET:{base}/leak", "--requests", "80", "--warmup", "150", "--rounds", "8",
         "--settle", "1", "--trace-alloc"],
        ["python", "wsgi_app.py", str(port)],
    )
    assert result.code == 1, result.stderr
    data = result.json
    assert data is not None
    sites = data["suspects"][0]["allocation_sites"]
    assert sites and sites[0]["count"] >= 80
    assert any("wsgi_app.py" in frame for frame in sites[0]["stack"])
    assert "allocated at:" in result.stdout
