"""The agent on its own: bootstrap through sitecustomize, the control socket's
permissions and protocol, fork handling, and the interpreter check before a run."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from heapsight.agent.protocol import AgentClient
from heapsight.run.launcher import app_environment, make_run_dir

from .conftest import APPS, BIN, Runner, free_port

LEAKY_SOURCE = """
import time
class Leaky:
    def __init__(self):
        self.items = [1]
kept = [Leaky() for _ in range(7)]
while True:
    time.sleep(0.1)
"""
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _agents(run_dir: str) -> list[dict]:
    found = []
    for path in Path(run_dir, "agents").glob("*.json"):
        found.append(json.loads(path.read_text()))
    return found


@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    run_dir = make_run_dir(str(tmp_path / "run"))
    env = app_environment(run_dir, trace_alloc=True)
    proc = subprocess.Popen([sys.executable, "-c", LEAKY_SOURCE], env=env, cwd=APPS)
    try:
        _wait_for(lambda: any(a["pid"] == proc.pid for a in _agents(run_dir)))
        yield proc, run_dir
    finally:
        proc.kill()
        proc.wait()


def test_socket_is_private_and_answers_the_protocol(agent_process) -> None:  # type: ignore[no-untyped-def]
    proc, run_dir = agent_process
    sock_path = os.path.join(run_dir, "agents", f"{proc.pid}.sock")
    assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    client = AgentClient(sock_path)
    try:
        assert client.request("ping")["pid"] == proc.pid
        census = client.request("census")["census"]
        assert census["__main__.Leaky"][0] == 7
        stats = client.request("stats")
        assert stats["rss_bytes"] > 0 and stats["requests_total"] == 0
        sites = client.request("alloc_sites", types=["__main__.Leaky"])["sites"]
        assert sites["__main__.Leaky"][0]["count"] == 7
        with pytest.raises(RuntimeError, match="only as <run dir>"):
            client.request("snapshot", path="/tmp/elsewhere.hsnap")
        snap = client.request("snapshot", path=os.path.join(run_dir, "x.hsnap"))
        assert os.path.getsize(snap["path"]) > 0
    finally:
        client.close()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "not a JSON line"),
        (b"[1, 2]\n", "a request is a JSON object"),
        (b'{"cmd": "ping"}\n', "unsupported protocol version"),
        (b'{"v": 2, "cmd": "ping"}\n', "unsupported protocol version"),
        (b'{"v": 1, "cmd": "rm -rf"}\n', "unknown command"),
        (b'{"v": 1, "cmd": "snapshot"}\n', "needs a string 'path'"),
        (b'{"v": 1, "cmd": "alloc_sites", "types": [1]}\n', "list of type names"),
        (b"\xff\xfe\n", "not a JSON line"),
    ],
)
def test_malformed_requests_get_error_replies(agent_process, line: bytes, error: str) -> None:  # type: ignore[no-untyped-def]
    proc, run_dir = agent_process
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.path.join(run_dir, "agents", f"{proc.pid}.sock"))
        s.sendall(line + b'{"v": 1, "cmd": "ping"}\n')
        data = b""
        while data.count(b"\n") < 2:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
    first, second = (json.loads(x) for x in data.splitlines()[:2])
    assert first["ok"] is False and error in first["error"]
    assert second["ok"] is True  # the connection and the app survive
    assert proc.poll() is None


def test_huge_request_is_refused_without_harm(agent_process) -> None:  # type: ignore[no-untyped-def]
    proc, run_dir = agent_process
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.path.join(run_dir, "agents", f"{proc.pid}.sock"))
        try:
            s.sendall(b"x" * (200 * 1024))
        except OSError:
            pass
        reply = s.recv(65536)
    assert b"too long" in reply or reply == b""
    assert proc.poll() is None


def test_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS_RAN'] = 'yes'\n")
    run_dir = make_run_dir(str(tmp_path / "run"))
    env = app_environment(run_dir, trace_alloc=False)
    env["PYTHONPATH"] += os.pathsep + str(theirs)
    out = subprocess.run(
        [sys.executable, "-c", "import os, sys, heapsight.agent as a; "
         "print(os.environ.get('THEIRS_RAN'), a._server is not None)"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.stdout.split() == ["yes", "True"], out.stderr


def test_gunicorn_preload_workers_get_their_own_agent(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    run_dir = make_run_dir(str(tmp_path / "run"))
    env = app_environment(run_dir, trace_alloc=False)
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--preload", "-w", "2", "-b", f"127.0.0.1:{port}",
         "flask_app:app"], env=env, cwd=APPS, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: len(_agents(run_dir)) >= 3)
        agents = _agents(run_dir)
        workers = [a for a in agents if a["ppid"] == proc.pid]
        assert len(workers) == 2
        for agent in agents:
            client = AgentClient(agent["socket"])
            try:
                assert client.request("ping")["pid"] == agent["pid"]
            finally:
                client.close()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.skipif(not PY39.exists(), reason="needs another CPython")
def test_interpreter_that_cannot_load_heapsight_is_refused_before_start(
    run_heapsight: Runner,
) -> None:
    port = free_port()
    result = run_heapsight(
        ["--drive", f"GET:http://127.0.0.1:{port}/ok"], [str(PY39), "wsgi_app.py", str(port)],
        timeout=60,
    )
    assert result.code == 3
    assert "cannot load heapsight" in result.stderr
    assert f"fix: {PY39} -m pip install 'heapsight==" in result.stderr
    assert not list(Path(run_heapsight.run_dirs[0], "agents").glob("*.json"))
