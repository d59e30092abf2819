"""Starting the app under the agent, finding its workers, stopping it.

The app runs in its own session (process group) so that the whole tree - a gunicorn
master and its workers - is signalled at once, and so that a Ctrl-C in the terminal
reaches heapsight first, which then stops the app cleanly and still writes the report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time

import heapsight
from heapsight.agent.protocol import (
    ENV_EXPECTED_VERSION,
    ENV_FALLBACK_PATH,
    ENV_RUN_DIR,
    ENV_TRACE_ALLOC,
    AgentClient,
)
from heapsight.run.options import UsageError

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "agent", "bootstrap")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LaunchError(RuntimeError):
    """The app cannot be started or observed; the message says why and what to do."""


def _shebang_interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    text = head.decode("utf-8", "replace")
    first = text[2:].splitlines()[0].strip() if text[2:] else ""
    parts = first.split()
    if parts and os.path.basename(parts[0]) == "env":
        names = [p for p in parts[1:] if not p.startswith("-")]
        candidate = shutil.which(names[0]) if names else None
    elif parts and os.path.basename(parts[0]) == "sh":
        # pip's launcher for long paths: #!/bin/sh, then '''exec' "/venv/bin/python" "$0" "$@"
        found = re.search(r"exec' \"?([^\"\s]+)\"? \"\$0\"", text)
        candidate = found.group(1) if found else None
    else:
        candidate = parts[0] if parts else None
    if candidate and "python" in os.path.basename(candidate):
        return candidate
    return None


def target_interpreter(argv0: str) -> str | None:
    """The Python interpreter that `argv0` runs, when it can be told without running it."""
    path = shutil.which(argv0)
    if path is None:
        raise LaunchError(f"cannot start the app: command not found: {argv0}")
    if re.fullmatch(r"python[0-9.]*", os.path.basename(path)):
        return path
    return _shebang_interpreter(path)


_CHECK = (
    "import sys; print(sys.version.split()[0], flush=True); sys.path.insert(0, {boot!r}); "
    "import _heapsight_boot; _heapsight_boot.import_agent(); import heapsight; "
    "print(heapsight.__version__)"
)


def check_interpreter(interpreter: str, env: dict[str, str]) -> str:
    """Fails before the app starts when `interpreter` cannot load a matching agent;
    returns the heapsight version it loads."""
    check_env = {k: v for k, v in env.items() if k != ENV_RUN_DIR}
    try:
        result = subprocess.run(
            [interpreter, "-c", _CHECK.format(boot=BOOTSTRAP_DIR)],
            env=check_env, capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"cannot run {interpreter} to check it: {exc}") from None
    lines = result.stdout.split()
    if result.returncode == 0 and len(lines) >= 2:
        return lines[1]
    version = lines[0] if lines else "?"
    reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
    raise LaunchError(
        f"the app's interpreter {interpreter} (Python {version}) cannot load heapsight "
        f"{heapsight.__version__}: {reason}\n"
        f"fix: {interpreter} -m pip install 'heapsight=={heapsight.__version__}'"
    )


def make_run_dir(keep_dir: str | None) -> str:
    if keep_dir:
        os.makedirs(keep_dir, exist_ok=True)
        run_dir = os.path.realpath(keep_dir)
        os.chmod(run_dir, 0o700)
    else:
        import tempfile

        run_dir = os.path.realpath(tempfile.mkdtemp(prefix="heapsight-run-"))
    for sub in ("agents", "errors", "lib"):
        os.makedirs(os.path.join(run_dir, sub), mode=0o700, exist_ok=True)
    link = os.path.join(run_dir, "lib", "heapsight")
    if not os.path.lexists(link):
        os.symlink(PACKAGE_DIR, link)
    return run_dir


def app_environment(run_dir: str, trace_alloc: bool) -> dict[str, str]:
    env = dict(os.environ)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = BOOTSTRAP_DIR + (os.pathsep + existing if existing else "")
    env[ENV_RUN_DIR] = run_dir
    env[ENV_FALLBACK_PATH] = os.path.join(run_dir, "lib")
    env[ENV_EXPECTED_VERSION] = heapsight.__version__
    if trace_alloc:
        env[ENV_TRACE_ALLOC] = "1"
    else:
        env.pop(ENV_TRACE_ALLOC, None)
    return env


@dataclasses.dataclass
class AgentInfo:
    pid: int
    ppid: int
    argv: list[str]
    socket: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class App:
    def __init__(self, argv: list[str], env: dict[str, str], run_dir: str) -> None:
        self.argv = argv
        self.env = env
        self.run_dir = run_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._clients: dict[int, AgentClient] = {}

    def start(self) -> None:
        try:
            self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        except OSError as exc:
            raise LaunchError(f"cannot start {self.argv[0]}: {exc}") from None

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def agents(self) -> list[AgentInfo]:
        found = []
        agents_dir = os.path.join(self.run_dir, "agents")
        for name in sorted(os.listdir(agents_dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(agents_dir, name)) as f:
                    info = json.load(f)
                agent = AgentInfo(int(info["pid"]), int(info["ppid"]), list(info["argv"]),
                                  str(info["socket"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if _alive(agent.pid) and os.path.exists(agent.socket):
                found.append(agent)
        return found

    def agent_errors(self) -> list[str]:
        errors_dir = os.path.join(self.run_dir, "errors")
        messages = []
        for name in sorted(os.listdir(errors_dir)):
            try:
                with open(os.path.join(errors_dir, name)) as f:
                    messages.append(f.read().strip())
            except OSError:
                continue
        return messages

    def request(self, agent: AgentInfo, cmd: str, timeout: float = 120.0, **fields: object) -> dict:
        """One request to one agent, reconnecting once after a broken connection."""
        client = self._clients.get(agent.pid)
        for attempt in range(2):
            if client is None:
                client = AgentClient(agent.socket, timeout=timeout)
                self._clients[agent.pid] = client
            try:
                return client.request(cmd, **fields)
            except (OSError, ConnectionError):
                client.close()
                self._clients.pop(agent.pid, None)
                client = None
                if attempt == 1 or not _alive(agent.pid):
                    raise
        raise ConnectionError("unreachable")

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the app's process group, SIGKILL after `grace` seconds."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        process = self.process
        if process is None:
            return None
        pgid = process.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Workers can outlive their master; the group is checked until it is empty.
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None or _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of the group (our own child not yet reaped) do not count.
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


__all__ = ["App", "AgentInfo", "LaunchError", "UsageError"]
