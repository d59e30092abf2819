"""`heapsight attach` and the commands on a PID, against servers started WITHOUT heapsight:
the agent is injected into the running processes (with gdb before 3.14, with
sys.remote_exec on 3.14: scripts/test-py314.sh runs this file there), must find the leak,
and must leave nothing behind on detach. Every refusal is checked to leave the target
running and untouched, with a message and no traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import heapsight
import pytest

from .conftest import APPS, BIN, assert_contract, free_port

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None and sys.version_info < (3, 14),
                                reason="attaching before Python 3.14 needs gdb")

RUNUSER = shutil.which("runuser") or next(
    (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None)
PACKAGE_PARENT = str(Path(heapsight.__file__).resolve().parent.parent)
FAST = ["--requests", "80", "--warmup", "150", "--rounds", "8"]
LOGIN_DRIVE = "GET /login/user{i}"  # the label of `--drive GET:<base>/login/user{i}`


class Servers:
    """Processes started for one test; every one is killed (its whole group) at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], port: int | None = None, stdin: int | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=APPS, start_new_session=True, stdin=stdin, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        if port is not None:
            deadline = time.monotonic() + 60
            while not _serves(port):
                assert proc.poll() is None, f"{argv} exited with {proc.returncode}"
                assert time.monotonic() < deadline, f"{argv} did not listen on {port}"
                time.sleep(0.2)
        else:
            time.sleep(0.5)  # past interpreter start: the main loop runs
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdin is not None:
                proc.stdin.close()


def _serves(port: int, path: str = "/") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5):
            return True
    except urllib.error.HTTPError as answered:
        answered.close()  # it holds the response (an unclosed one warns on 3.14)
        return True
    except OSError:
        return False


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return int(reply.status)


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def attach_base(tmp_path: Path) -> Path:
    base = tmp_path / "attach"
    base.mkdir()
    return base


def heapsight_cli(args: list[str], attach_base: Path, timeout: float = 120,
                  env: dict[str, str] | None = None,
                  prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(env if env is not None else os.environ)
    env.setdefault("PATH", os.environ.get("PATH", ""))
    env["HEAPSIGHT_ATTACH_DIR"] = str(attach_base)
    argv = [*(prefix or [sys.executable]), "-m", "heapsight", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def _sockets(attach_base: Path) -> list[str]:
    return sorted(p.name for p in attach_base.glob("heapsight-attach-*/agents/*.sock"))


def _refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 3, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def _untouched(proc: subprocess.Popen[bytes], attach_base: Path) -> None:
    assert proc.poll() is None, "the target must keep running"
    assert f"{proc.pid}.sock" not in _sockets(attach_base)


LOOP = "import time\nwhile True:\n    time.sleep(0.05)\n"
# Ends as soon as anything is added to (or removed from) __main__'s namespace.
CLEAN_MAIN_LOOP = ("import time\nexpected = None\nexpected = sorted(globals())\n"
                   "while sorted(globals()) == expected:\n    time.sleep(0.05)\n")


def test_flask_gunicorn_two_workers(servers: Servers, attach_base: Path, tmp_path: Path) -> None:
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    port = free_port()
    # --timeout 12: an idle sync worker runs Python code (and so the injected loader) at
    # least every 6 s, and survives the seconds gdb keeps it stopped on a loaded machine
    # (gunicorn kills a worker silent for --timeout seconds).
    master = servers.start([str(BIN / "gunicorn"), "-w", "2", "--timeout", "12", "-b",
                            f"127.0.0.1:{port}", "flask_app:app"], port)
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "attach.json"
    page = tmp_path / "attach.html"
    # Only the leaking endpoint: `run`'s tests check that clean endpoints are told apart,
    # and the same Session does it here.
    workers_before = sorted(_descendants(master.pid))
    result = heapsight_cli(["attach", str(master.pid), "--all-workers",
                            "--drive", f"GET:{base}/login/user{{i}}",
                            *FAST, "--settle", "1", "--json", str(out), "--report", str(page)],
                           attach_base)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(out.read_text())
    assert_contract(data)
    assert data["verdict"] == "leak"
    workers = sorted(data["attached"])
    assert workers == workers_before  # none replaced by gunicorn while gdb held it
    suspect = data["suspects"][0]
    assert suspect["type"] == "flask_app.UserSession"
    assert suspect["endpoints"] == ["GET /login/<user>"]
    assert suspect["retainer_path"][:2] == ["module flask_app", "._SESSIONS"]
    assert [(e["endpoint"], e["verdict"]) for e in data["endpoints"]] == [
        ("GET /login/<user>", "leak")]
    _counted_every_request(data, workers)
    assert "heapsight attach · verdict: LEAK" in result.stdout
    # The same HTML report as `run --report` (checked in a browser by test_html_report).
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "flask_app.UserSession" in html
    assert f"heapsight attach {master.pid} --all-workers" in html
    assert _sockets(attach_base) == sorted(f"{pid}.sock" for pid in workers)

    # Attaching again reuses the agent instead of injecting a second one.
    again = heapsight_cli(["census", str(workers[0]), "--top", "3"], attach_base)
    assert again.returncode == 0, again.stderr
    assert "already has a heapsight agent" in again.stderr
    assert "gc objects" in again.stdout

    detached = heapsight_cli(["detach", str(master.pid), "--all-workers"], attach_base)
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.count("detached from process") == 2
    assert _sockets(attach_base) == []
    assert master.poll() is None
    for _ in range(4):
        assert _get(port, "/health") == 200


def _counted_every_request(data: dict[str, Any], workers: list[int]) -> None:
    """The wrappers added on attach counted every request driven after it (warm-up and
    measured), whichever worker took it: the kernel hands each new connection to either
    sync worker, and one of them can win every accept (measured: 47 of 48 sequential
    requests), so no per-worker share is asserted. The driver counts whatever answer it
    got (and fails the run after three failed attempts at one request), so every answer
    is checked to be a 200: the sums are then exact."""
    assert data["http_statuses"] == {LOGIN_DRIVE: {"200": 150 + 80}}, data["http_statuses"]
    assert [e["requests"] for e in data["endpoints"]] == [80]
    assert sorted(w["pid"] for w in data["workers"]) == workers, data["workers"]
    assert sum(w["requests"] for w in data["workers"]) == 150 + 80, data["workers"]


# Imported by the app's processes through PYTHONPATH: the first import of click, which
# flask.app runs early in its own import, signals `<pid>.importing` in HEAPSIGHT_TEST_MARKS
# and pauses, so the worker is attached while flask.app is half-executed.
PAUSE_IN_FLASK_IMPORT = """\
import importlib.abc, os, sys, time
class _Pause(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "click" and "flask.app" in sys.modules:
            marks = os.environ["HEAPSIGHT_TEST_MARKS"]
            open(os.path.join(marks, f"{os.getpid()}.importing"), "w").close()
            time.sleep(3)
        return None
sys.meta_path.insert(0, _Pause())
"""


def test_flask_gunicorn_workers_attached_while_booting(servers: Servers, attach_base: Path,
                                                       tmp_path: Path) -> None:
    """Workers attached in the middle of importing the app: gunicorn's `import_app`
    already runs, so the app comes back unwrapped, and flask.app is in sys.modules but
    not yet executed. The workers must still count every request, under the route."""
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    shim, marks = tmp_path / "shim", tmp_path / "marks"
    shim.mkdir()
    marks.mkdir()
    (shim / "sitecustomize.py").write_text(PAUSE_IN_FLASK_IMPORT)
    env = dict(os.environ, PYTHONPATH=str(shim), HEAPSIGHT_TEST_MARKS=str(marks))
    port = free_port()
    master = servers.start([str(BIN / "gunicorn"), "-w", "2", "--timeout", "20", "-b",
                            f"127.0.0.1:{port}", "flask_app:app"], env=env)
    deadline = time.monotonic() + 60
    while len(list(marks.glob("*.importing"))) < 2:
        assert master.poll() is None, f"gunicorn exited with {master.returncode}"
        assert time.monotonic() < deadline, "the workers did not start importing the app"
        time.sleep(0.05)
    workers = sorted(_descendants(master.pid))
    assert sorted(int(p.stem) for p in marks.glob("*.importing")) == workers
    out = tmp_path / "attach.json"
    result = heapsight_cli(["attach", str(master.pid), "--all-workers", "--detach",
                            "--drive", f"GET:http://127.0.0.1:{port}/login/user{{i}}",
                            *FAST, "--settle", "1", "--json", str(out)], attach_base)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("SyncWorker.wsgi), once it has booted") == 2, result.stderr
    data = json.loads(out.read_text())
    assert sorted(data["attached"]) == workers
    assert [(e["endpoint"], e["verdict"]) for e in data["endpoints"]] == [
        ("GET /login/<user>", "leak")]
    _counted_every_request(data, workers)
    assert _sockets(attach_base) == []
    assert master.poll() is None


def test_fastapi_uvicorn_attach_snapshot_detach(servers: Servers, attach_base: Path,
                                               tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = free_port()
    # Keep-alive connections close after 1 s, so a short settling pause tells them from a
    # leak.
    server = servers.start([str(BIN / "uvicorn"), "--port", str(port), "--log-level",
                            "warning", "--timeout-keep-alive", "1", "fastapi_app:app"], port)
    base = f"http://127.0.0.1:{port}"
    out = tmp_path / "attach.json"
    # Only the leaking endpoint (the Flask test checks that clean ones are told apart).
    result = heapsight_cli(["attach", str(server.pid), "--drive", f"GET:{base}/users/{{i}}",
                            *FAST, "--settle", "2.5", "--json", str(out)], attach_base)
    assert result.returncode == 1, result.stderr
    assert "counting requests of uvicorn" in result.stderr
    data = json.loads(out.read_text())
    assert_contract(data)
    suspect = data["suspects"][0]
    assert suspect["type"] == "fastapi_app.Profile"
    assert suspect["endpoints"] == ["GET /users/{user_id}"]
    assert suspect["retainer_path"][:2] == ["module fastapi_app", "._PROFILES"]
    assert [e["verdict"] for e in data["endpoints"]] == ["leak"]

    snap = tmp_path / "live.hsnap"
    taken = heapsight_cli(["snapshot", str(server.pid), "-o", str(snap)], attach_base)
    assert taken.returncode == 0, taken.stderr
    # Linux, a GIL: the default walks a forked copy while the server keeps serving.
    assert "captured in a forked copy of process" in taken.stdout, taken.stdout + taken.stderr
    top = heapsight_cli(["top", str(snap), "--json", "--limit", "0"], attach_base)
    counts = {row["type"]: row["count"] for row in json.loads(top.stdout)}
    assert counts["fastapi_app.Profile"] >= 80 + 150

    detached = heapsight_cli(["detach", str(server.pid)], attach_base)
    assert detached.returncode == 0, detached.stderr
    assert _sockets(attach_base) == []
    assert _get(port, "/ping") == 200
    assert server.poll() is None


def test_not_python(servers: Servers, attach_base: Path) -> None:
    sleeper = servers.start(["sleep", "100"])
    _refused(heapsight_cli(["attach", str(sleeper.pid)], attach_base),
             "not a CPython process", f"heapsight watch {sleeper.pid}")
    _untouched(sleeper, attach_base)


def test_no_such_process(attach_base: Path) -> None:
    proc = subprocess.run(["true"])
    assert proc.returncode == 0
    _refused(heapsight_cli(["census", str(2**22 + 12345)], attach_base), "does not exist")


def test_unsupported_version(servers: Servers, attach_base: Path) -> None:
    old = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
    if not old.exists():
        pytest.skip("no Python 3.8 here")
    target = servers.start([str(old), "-c", LOOP])
    _refused(heapsight_cli(["census", str(target.pid)], attach_base),
             "Python 3.8", "3.9 to 3.14")
    _untouched(target, attach_base)


def test_other_interpreter_without_heapsight(servers: Servers, attach_base: Path) -> None:
    """Injection works on another CPython (the newest found), but this heapsight's extension
    is built for our version only: the loader reports it and removes what it imported."""
    ours = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    pyenv = sorted(Path("/root/.pyenv/versions").glob("3.1[2-3]*/bin/python3.1[2-3]"))
    system = sorted(Path("/usr/bin").glob("python3.1[2-3]"))  # Debian sid's, for 3.14 runs
    found = [p for p in [*pyenv, *system] if p.name != ours]
    if not found:
        pytest.skip("no other Python 3.12 or 3.13 here")
    code = ("import sys, time\n"
            "expected = None\nexpected = sorted(globals())\n"
            "while sorted(globals()) == expected and not any(\n"
            "        m.startswith('heapsight') for m in sys.modules):\n"
            "    time.sleep(0.05)\n")  # ends if a name or a heapsight module stays behind
    target = servers.start([str(found[-1]), "-c", code])
    _refused(heapsight_cli(["census", str(target.pid)], attach_base),
             "the agent did not start", "pip install")
    time.sleep(0.5)
    _untouched(target, attach_base)


def _nobody_python() -> tuple[list[str], dict[str, str]] | None:
    """An interpreter the `nobody` user can run that imports this heapsight."""
    for python in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if not python:
            continue
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": PACKAGE_PARENT}
        check = subprocess.run([RUNUSER, "-u", "nobody", "--", "env", *_env_args(env),
                                python, "-c", "import heapsight._heapsight"],
                               capture_output=True, cwd="/", timeout=60)
        if check.returncode == 0:
            return [RUNUSER, "-u", "nobody", "--", "env", *_env_args(env), python], env
    return None


def _env_args(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


@pytest.mark.skipif(os.geteuid() != 0 or RUNUSER is None,
                    reason="needs root and runuser to run heapsight as another user")
def test_no_permission_to_trace_another_users_process(servers: Servers, tmp_path: Path) -> None:
    found = _nobody_python()
    if found is None:
        pytest.skip("no interpreter that user nobody can run with heapsight importable")
    prefix, env = found
    target = servers.start([sys.executable, "-c", LOOP])  # owned by root
    base = tmp_path / "nobody"
    base.mkdir()
    os.chown(base, *_nobody_ids())
    result = subprocess.run([*prefix, "-m", "heapsight", "attach", str(target.pid)],
                            env={**env, "HEAPSIGHT_ATTACH_DIR": str(base)}, cwd="/",
                            capture_output=True, text=True, timeout=60)
    _refused(result, "no permission to attach", "uid 0", "CAP_SYS_PTRACE",
             "ptrace_scope", "--cap-add=SYS_PTRACE")
    _untouched(target, base)


def _nobody_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@pytest.mark.skipif(os.geteuid() != 0 or RUNUSER is None,
                    reason="needs root and runuser to start a process as another user")
def test_root_attaches_to_another_users_process(servers: Servers) -> None:
    found = _nobody_python()
    if found is None:
        pytest.skip("no interpreter that user nobody can run with heapsight importable")
    prefix, env = found
    # The agent runs as nobody and must reach the attach directory (pytest's is root's).
    attach_base = Path(tempfile.mkdtemp(prefix="heapsight-test-", dir="/tmp"))
    attach_base.chmod(0o755)
    try:
        _root_attaches(servers, prefix, attach_base)
    finally:
        shutil.rmtree(attach_base, ignore_errors=True)


def _root_attaches(servers: Servers, prefix: list[str], attach_base: Path) -> None:
    target = servers.start([*prefix, "-c", CLEAN_MAIN_LOOP])
    pid = _child_python(target.pid)
    census = heapsight_cli(["census", str(pid), "--top", "3"], attach_base)
    assert census.returncode == 0, census.stderr
    sock_dir = attach_base / f"heapsight-attach-{_nobody_ids()[0]}" / "agents"
    assert (sock_dir / f"{pid}.sock").exists()
    assert heapsight_cli(["detach", str(pid)], attach_base).returncode == 0
    assert not (sock_dir / f"{pid}.sock").exists()
    assert target.poll() is None


def _child_python(pid: int) -> int:
    """runuser and env exec or fork; the python process is `pid` or its descendant."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for candidate in [pid, *_descendants(pid)]:
            try:
                exe = os.readlink(f"/proc/{candidate}/exe")
            except OSError:
                continue
            if "python" in os.path.basename(exe):
                return candidate
        time.sleep(0.1)
    raise AssertionError("the python process did not start")


def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            out.append(int(child))
            out.extend(_descendants(int(child)))
    return out


def test_gdb_missing(servers: Servers, attach_base: Path, tmp_path: Path) -> None:
    target = servers.start([sys.executable, "-c", CLEAN_MAIN_LOOP])
    bare = tmp_path / "bin"
    bare.mkdir()
    env = dict(os.environ, PATH=str(bare))
    if sys.version_info >= (3, 14):
        # PEP 768: the interpreter itself runs the loader; no debugger is involved.
        census = heapsight_cli(["census", str(target.pid), "--top", "3"], attach_base, env=env)
        assert census.returncode == 0, census.stderr
        assert "with sys.remote_exec" in census.stderr
        assert "gc objects" in census.stdout
        assert heapsight_cli(["detach", str(target.pid)], attach_base, env=env).returncode == 0
        _untouched(target, attach_base)  # and __main__ gained no name (CLEAN_MAIN_LOOP)
        return
    _refused(heapsight_cli(["attach", str(target.pid)], attach_base, env=env),
             "gdb is needed", "apt-get install gdb", "package `gdb`")
    _untouched(target, attach_base)


def test_process_exits_during_injection(servers: Servers, attach_base: Path) -> None:
    # The main thread sleeps in C (no bytecode, so the injected loader waits) until another
    # thread ends the process.
    code = ("import os, threading, time\n"
            "threading.Timer(5, os._exit, [0]).start()\n"
            "time.sleep(100)\n")
    target = servers.start([sys.executable, "-c", code])
    _refused(heapsight_cli(["census", str(target.pid)], attach_base),
             "exited while heapsight was attaching")
    assert _sockets(attach_base) == []


def test_blocked_main_thread_times_out_and_stays_untouched(servers: Servers,
                                                           attach_base: Path) -> None:
    # The main thread blocks in a C read (no bytecode) until the test writes a byte; then
    # it runs what was queued and withdrawn: before 3.14 the pending call gdb queued,
    # PyCallable_Check(NULL), and more of them (had gdb left its breakpoint in, the trap
    # would now kill the process); on 3.14 the sys.remote_exec loader, which finds that
    # heapsight gave up, starts nothing and removes its files.
    code = ("import os, time\nos.read(0, 1)\n"
            "for _ in range(100):\n    callable(len)\n    time.sleep(0.01)\n"
            "time.sleep(100)\n")
    target = servers.start([sys.executable, "-c", code], stdin=subprocess.PIPE)
    _refused(heapsight_cli(["census", str(target.pid), "--inject-timeout", "2"], attach_base),
             "ran no Python code within 2 s")
    _untouched(target, attach_base)
    assert target.stdin is not None
    target.stdin.write(b"x")
    target.stdin.flush()
    time.sleep(2)
    assert target.poll() is None, f"the target died with status {target.returncode}"
    _untouched(target, attach_base)
    queued = list(attach_base.glob("heapsight-attach-*/inject/*"))
    assert queued == [], queued
