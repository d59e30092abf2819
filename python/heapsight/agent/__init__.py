"""The in-process agent of `heapsight run`.

Loaded at interpreter start by `bootstrap/sitecustomize.py` when `HEAPSIGHT_RUN_DIR` is
set: it serves the control socket (`server`), counts requests per route (`frameworks`,
`routes`) and, with `--trace-alloc`, starts tracemalloc (`tracing`). After a fork (gunicorn
workers) the child starts its own server. Importing this package has no side effect;
`start()` does the work and never raises.
"""

from __future__ import annotations

import os
import sys

from heapsight.agent.protocol import ENV_RUN_DIR, ENV_TRACE_ALLOC

_server: object | None = None


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
        return
    try:
        COUNTER.reset_after_fork()
        if _server is not None:
            _server.forget_after_fork()  # type: ignore[attr-defined]
        _start_server(run_dir)
    except Exception as exc:  # noqa: BLE001 - the app must keep running without us
        _note_failure(run_dir, exc)


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
