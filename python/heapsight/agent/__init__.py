"""The in-process agent of `heapsight run`.

Loaded at interpreter start by `bootstrap/sitecustomize.py` when `HEAPSIGHT_RUN_DIR` is
set: it serves the control socket (`server`), counts requests per route (`frameworks`,
`routes`) and, with `--trace-alloc`, starts tracemalloc (`tracing`). After a fork (gunicorn
workers) the child starts its own server. `heapsight attach` injects it into a running
process instead, through `start_attached()` (see docs/attach.md). Importing this package
has no side effect; `start()` does the work and never raises.
"""

from __future__ import annotations

import os
import sys

from heapsight.agent.protocol import ENV_RUN_DIR, ENV_TRACE_ALLOC

_server: object | None = None
_fork_hook = False


def _note_failure(run_dir: str, error: BaseException) -> None:
    message = f"heapsight: agent not started in pid {os.getpid()}: {type(error).__name__}: {error}"
    try:
        errors = os.path.join(run_dir, "errors")
        os.makedirs(errors, mode=0o700, exist_ok=True)
        with open(os.path.join(errors, f"{os.getpid()}.txt"), "w") as f:
            f.write(message + "\n")
    except OSError:
        sys.stderr.write(message + "\n")


def _start_server(run_dir: str) -> None:
    global _server
    from heapsight.agent.server import AgentServer

    server = AgentServer(run_dir)
    server.start()
    _server = server


def _after_fork_in_child() -> None:
    from heapsight.agent.routes import COUNTER

    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir:
        _forget_attached()
        return
    try:
        COUNTER.reset_after_fork()
        if _server is not None:
            _server.forget_after_fork()  # type: ignore[attr-defined]
        _start_server(run_dir)
    except Exception as exc:  # noqa: BLE001 - the app must keep running without us
        _note_failure(run_dir, exc)


def _forget_attached() -> None:
    """In a forked child of an attached process: the agent belongs to the parent; this
    process gets its own only when it is attached itself."""
    global _server
    try:
        if _server is not None:
            _server.forget_after_fork()  # type: ignore[attr-defined]
        _server = None
        from heapsight.agent.routes import COUNTER

        COUNTER.reset_after_fork()
    except Exception:  # noqa: BLE001
        pass


def start_attached(run_dir: str, trace_alloc: bool = False) -> dict[str, object]:
    """Starts the agent in a process that is already running (`heapsight attach`).

    Unlike `start()` this raises: the injected caller reports the reason to the user.
    Request counting is added to the servers and apps that are already running.
    """
    global _server, _fork_hook
    if _server is not None and getattr(_server, "pid", None) == os.getpid() and getattr(
            _server, "_listener", None) is not None:
        return {"ok": True, "socket": _server.socket_path, "reused": True}  # type: ignore[attr-defined]
    if trace_alloc:
        from heapsight.agent import tracing

        tracing.start()
    from heapsight.agent import frameworks
    from heapsight.attach import live

    frameworks.install()
    wrapped = live.wrap_running_apps()
    _start_server(run_dir)
    if not _fork_hook:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook = True
    return {"ok": True, "socket": _server.socket_path, "wrapped": wrapped}  # type: ignore[attr-defined]


def stop() -> None:
    """Stops the agent's server and removes its socket (`heapsight detach`)."""
    global _server
    server, _server = _server, None
    if server is not None:
        server.stop()  # type: ignore[attr-defined]
    try:
        from heapsight.attach import live

        live.unwrap()
    except Exception:  # noqa: BLE001
        pass


def start() -> bool:
    """Starts the agent if this process belongs to a run; True when it serves."""
    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir or _server is not None:
        return _server is not None
    try:
        if os.environ.get(ENV_TRACE_ALLOC) == "1":
            from heapsight.agent import tracing

            tracing.start()
        from heapsight.agent import frameworks

        frameworks.install()
        _start_server(run_dir)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        return True
    except Exception as exc:  # noqa: BLE001
        _note_failure(run_dir, exc)
        return False
