"""Runs inside an attached process: adds request counting to servers already serving.

`heapsight run` wraps the app when the server loads it; an attached process loaded it long
ago. The framework hooks of `agent.frameworks` patch classes, so live Flask, Django and
Starlette/FastAPI instances count from now on. Servers hold their own reference to the app,
so the ones we know are found with `gc` and given the counting wrapper, outermost:
gunicorn workers (`worker.wsgi`, read per request), uvicorn (`config.loaded_app`, read per
new connection), wsgiref and werkzeug servers. `unwrap()` restores them on detach.

A gunicorn worker attached while it boots has no app yet (or is importing it, past the
`import_app` hook): its app is wrapped when its main loop starts, before it accepts a
connection, so no request it serves goes uncounted.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import Any, Callable

from heapsight.agent.frameworks import _WRAPPED, is_asgi, wrap_any, wrap_asgi, wrap_wsgi

# (holder, attribute, original, wrapper) of every wrapper installed, for unwrap().
_installed: list[tuple[Any, str, Any, Any]] = []
# (worker, its `run` replacement) of gunicorn workers of this process still booting.
_deferred: list[tuple[Any, Any]] = []
# The loader (main thread) and a booting worker's main loop install, detach (the agent's
# thread) removes.
_lock = threading.RLock()


def _targets() -> list[tuple[type, str, Callable[[Any], Any], str]]:
    """(class, attribute holding the app, wrapper, label) for each server module loaded."""
    out: list[tuple[type, str, Callable[[Any], Any], str]] = []
    gunicorn = sys.modules.get("gunicorn.workers.base")
    if gunicorn is not None and isinstance(getattr(gunicorn, "Worker", None), type):
        out.append((gunicorn.Worker, "wsgi", wrap_any, "gunicorn worker"))
    uvicorn = sys.modules.get("uvicorn.config")
    if uvicorn is not None and isinstance(getattr(uvicorn, "Config", None), type):
        # Only ASGI3 apps: a WSGI app under uvicorn is adapted by uvicorn's own middleware,
        # which is itself ASGI3 and outermost.
        out.append((uvicorn.Config, "loaded_app", _wrap_asgi_only, "uvicorn"))
    wsgiref = sys.modules.get("wsgiref.simple_server")
    if wsgiref is not None and isinstance(getattr(wsgiref, "WSGIServer", None), type):
        out.append((wsgiref.WSGIServer, "application", wrap_wsgi, "wsgiref"))
    werkzeug = sys.modules.get("werkzeug.serving")
    if werkzeug is not None and isinstance(getattr(werkzeug, "BaseWSGIServer", None), type):
        out.append((werkzeug.BaseWSGIServer, "app", wrap_wsgi, "werkzeug"))
    return out


def _wrap_asgi_only(app: Any) -> Any:
    return wrap_asgi(app) if is_asgi(app) else app


def wrap_running_apps() -> list[str]:
    """Wraps the app of every known server object in this process; returns what it did."""
    targets = _targets()
    if not targets:
        return []
    classes = tuple(t[0] for t in targets)
    done: list[str] = []
    # type() and issubclass() on plain classes run no Python code, unlike isinstance(),
    # which asks proxies (werkzeug's LocalProxy) for their __class__.
    for obj in gc.get_objects():
        cls = type(obj)
        if not issubclass(cls, classes):
            continue
        for klass, attr, wrap, label in targets:
            if not issubclass(cls, klass):
                continue
            where = f"{label} ({cls.__module__}.{cls.__qualname__}.{attr})"
            try:
                if _wrap(obj, attr, wrap):
                    done.append(where)
                elif label == "gunicorn worker" and _defer_until_booted(obj, attr, wrap):
                    done.append(f"{where}, once it has booted")
            except Exception:  # noqa: BLE001 - a server we cannot wrap stays uncounted
                continue
    return done


def _wrap(obj: Any, attr: str, wrap: Callable[[Any], Any]) -> bool:
    """Wraps the app in `obj.<attr>`; whether a wrapper was installed now."""
    with _lock:
        original = obj.__dict__.get(attr)
        if original is None or getattr(original, _WRAPPED, False):
            return False
        wrapper = wrap(original)
        if wrapper is original:
            return False
        setattr(obj, attr, wrapper)
        _installed.append((obj, attr, original, wrapper))
        return True


def _defer_until_booted(worker: Any, attr: str, wrap: Callable[[Any], Any]) -> bool:
    """This process's gunicorn worker, still loading its app: `init_process` calls
    `self.run()` once `self.wsgi` is set, so an instance attribute `run` wraps it first.
    (Other workers' objects, copied from the master at fork, are never run here.)"""
    if getattr(worker, "pid", None) != os.getpid() or getattr(worker, "booted", True):
        return False
    if "run" in worker.__dict__ or not callable(getattr(worker, "run", None)):
        return False
    original_run = worker.run

    def run(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            if worker.__dict__.get("run") is run:  # else detached meanwhile
                del worker.__dict__["run"]
                _deferred.remove((worker, run))
                try:
                    _wrap(worker, attr, wrap)
                except Exception:  # noqa: BLE001 - the worker must run regardless
                    pass
        return original_run(*args, **kwargs)

    with _lock:
        worker.run = run
        _deferred.append((worker, run))
    return True


def unwrap() -> None:
    """Puts back every app that wrap_running_apps() replaced, unless someone replaced it
    again since, and cancels the wrapping of workers still booting."""
    with _lock:
        while _deferred:
            worker, run = _deferred.pop()
            try:
                if worker.__dict__.get("run") is run:
                    del worker.__dict__["run"]
            except Exception:  # noqa: BLE001
                continue
        while _installed:
            holder, attr, original, wrapper = _installed.pop()
            try:
                if holder.__dict__.get(attr) is wrapper:
                    setattr(holder, attr, original)
            except Exception:  # noqa: BLE001
                continue
