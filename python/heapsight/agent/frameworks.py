"""Request attribution: wrappers around WSGI/ASGI entry points, installed at import time.

Servers (gunicorn, uvicorn, wsgiref) get an outer wrapper around the app they load; it
counts every request under the route template a framework hook left in the environ/scope
(`heapsight.route`), or the raw path. Framework hooks (Flask, Django, Starlette/FastAPI)
record the template and, when no server wrapper is outside them, count the request too.
Every hook swallows its own errors: attribution is best effort, the app's behaviour is not.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import inspect
import sys
import threading
from types import ModuleType
from typing import Any, Callable

from heapsight.agent.routes import COUNTER

ROUTE_KEY = "heapsight.route"
OUTER_KEY = "heapsight.outer"
_WRAPPED = "__heapsight_wrapped__"


def _record(method: object, route: object) -> None:
    try:
        COUNTER.record(method, route)
    except Exception:  # noqa: BLE001 - counting must never fail a request
        pass


def _record_wsgi(environ: dict[str, Any]) -> None:
    _record(environ.get("REQUEST_METHOD"), environ.get(ROUTE_KEY) or environ.get("PATH_INFO"))


def wrap_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(app, _WRAPPED, False):
        return app

    @functools.wraps(app)
    def heapsight_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if _pending:
            apply_pending()
        environ[OUTER_KEY] = True
        try:
            return app(environ, start_response)
        finally:
            _record_wsgi(environ)

    setattr(heapsight_wsgi, _WRAPPED, True)
    return heapsight_wsgi


def wrap_asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    if getattr(app, _WRAPPED, False):
        return app

    async def heapsight_asgi(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if _pending:
            apply_pending()
        if scope.get("type") != "http":
            return await app(scope, receive, send)
        scope[OUTER_KEY] = True
        try:
            return await app(scope, receive, send)
        finally:
            _record(scope.get("method"), scope.get(ROUTE_KEY) or scope.get("path"))

    setattr(heapsight_asgi, _WRAPPED, True)
    return heapsight_asgi


def is_asgi(app: object) -> bool:
    if inspect.isclass(app):
        return False
    if inspect.isfunction(app) or inspect.ismethod(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__)


def wrap_any(app: Any) -> Any:
    if not callable(app) or inspect.isclass(app):
        return app
    return wrap_asgi(app) if is_asgi(app) else wrap_wsgi(app)


# --- servers ---------------------------------------------------------------------------


def _patch_gunicorn(module: ModuleType) -> None:
    original = module.import_app

    @functools.wraps(original)
    def import_app(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        try:
            return wrap_any(app)
        except Exception:  # noqa: BLE001
            return app

    module.import_app = import_app


def _patch_uvicorn(module: ModuleType) -> None:
    original = module.import_from_string

    @functools.wraps(original)
    def import_from_string(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        try:
            # Only ASGI3 apps: uvicorn inspects what it loads to pick the interface, and a
            # factory or a WSGI app must reach it unchanged.
            return wrap_asgi(app) if is_asgi(app) else app
        except Exception:  # noqa: BLE001
            return app

    module.import_from_string = import_from_string


def _patch_wsgiref(module: ModuleType) -> None:
    original = module.WSGIServer.set_app

    def set_app(self: Any, application: Any) -> None:
        try:
            application = wrap_wsgi(application)
        except Exception:  # noqa: BLE001
            pass
        original(self, application)

    module.WSGIServer.set_app = set_app


# --- frameworks ------------------------------------------------------------------------


def _patch_flask(module: ModuleType) -> None:
    flask_cls = module.Flask
    original_wsgi_app = flask_cls.wsgi_app

    @functools.wraps(original_wsgi_app)
    def wsgi_app(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get(OUTER_KEY):
            return original_wsgi_app(self, environ, start_response)
        try:
            return original_wsgi_app(self, environ, start_response)
        finally:
            _record_wsgi(environ)

    flask_cls.wsgi_app = wsgi_app
    # The route is read where Flask matched it, on the request object itself: going
    # through the `flask.request` proxy on every request cost more than the rest of the
    # agent together (bench/agent_overhead.py).
    ctx_module = sys.modules.get("flask.ctx")
    context_cls = getattr(ctx_module, "RequestContext", None)
    original_match = getattr(context_cls, "match_request", None)
    if context_cls is None or original_match is None:
        return

    @functools.wraps(original_match)
    def match_request(self: Any) -> None:
        original_match(self)
        try:
            rule = self.request.url_rule
            if rule is not None:
                self.request.environ[ROUTE_KEY] = rule.rule
        except Exception:  # noqa: BLE001 - attribution must never fail a request
            pass

    context_cls.match_request = match_request


def _patch_django_base(module: ModuleType) -> None:
    handler_cls = module.BaseHandler
    original = handler_cls.resolve_request

    @functools.wraps(original)
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        try:
            route = getattr(match, "route", None)
            if route is not None:
                template = "/" + route.lstrip("^").rstrip("$")
                for carrier in (getattr(request, "environ", None), getattr(request, "scope", None)):
                    if isinstance(carrier, dict):
                        carrier[ROUTE_KEY] = template
        except Exception:  # noqa: BLE001
            pass
        return match

    handler_cls.resolve_request = resolve_request


def _patch_django_wsgi(module: ModuleType) -> None:
    handler_cls = module.WSGIHandler
    original = handler_cls.__call__

    @functools.wraps(original)
    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get(OUTER_KEY):
            return original(self, environ, start_response)
        try:
            return original(self, environ, start_response)
        finally:
            _record_wsgi(environ)

    handler_cls.__call__ = __call__


def _starlette_route(app: Any, scope: dict[str, Any]) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return None
    for candidate in getattr(app, "routes", ()):
        if getattr(candidate, "endpoint", None) is endpoint:
            found = getattr(candidate, "path", None)
            return found if isinstance(found, str) else None
    return None


def _patch_starlette(module: ModuleType) -> None:
    app_cls = module.Starlette
    original = app_cls.__call__

    @functools.wraps(original)
    async def __call__(self: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            return await original(self, scope, receive, send)
        try:
            return await original(self, scope, receive, send)
        finally:
            try:
                route = _starlette_route(self, scope)
                if route:
                    scope[ROUTE_KEY] = route
            except Exception:  # noqa: BLE001
                pass
            if not scope.get(OUTER_KEY):
                _record(scope.get("method"), scope.get(ROUTE_KEY) or scope.get("path"))

    app_cls.__call__ = __call__


HOOKS: dict[str, Callable[[ModuleType], None]] = {
    "gunicorn.util": _patch_gunicorn,
    "uvicorn.importer": _patch_uvicorn,
    "wsgiref.simple_server": _patch_wsgiref,
    "flask.app": _patch_flask,
    "django.core.handlers.base": _patch_django_base,
    "django.core.handlers.wsgi": _patch_django_wsgi,
    "starlette.applications": _patch_starlette,
}


# Hooked modules that were still executing when install() ran (an agent injected into a
# process while it imports its app: a gunicorn worker that is booting): the hook needs the
# finished module, and the import finder below is not consulted for a module already in
# sys.modules. They are patched once complete, before the next request an outer wrapper
# sees or at the next import.
_pending: set[str] = set()
_pending_lock = threading.RLock()  # a hook's getattr may import: the finder retries


def _initializing(module: ModuleType) -> bool:
    """Whether the module's code is still running (importlib marks its spec meanwhile)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _apply(name: str, module: ModuleType, executed: bool = False) -> None:
    """`executed`: the module's code has run (its spec says initializing until importlib
    returns)."""
    if getattr(module, "__heapsight_patched__", False):
        return
    if not executed and _initializing(module):
        with _pending_lock:
            _pending.add(name)
        return
    try:
        HOOKS[name](module)
        module.__heapsight_patched__ = True  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unknown framework version stays unattributed
        pass


def apply_pending() -> None:
    """Patches the hooked modules that have finished importing since install() saw them
    half-executed. Never raises."""
    try:
        with _pending_lock:
            ready = [n for n in _pending
                     if (m := sys.modules.get(n)) is not None and not _initializing(m)]
            for name in ready:
                _pending.discard(name)
                _apply(name, sys.modules[name])
            # A module whose import failed is gone from sys.modules; the finder patches it
            # if it is imported again.
            _pending.difference_update([n for n in _pending if n not in sys.modules])
    except Exception:  # noqa: BLE001 - attribution must never fail a request
        pass


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Lets the normal finders locate a hooked module, then patches it once it has run."""

    def __init__(self) -> None:
        self._busy = threading.local()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if _pending:
            apply_pending()
        if name not in HOOKS:
            return None
        busy: set[str] = self._busy.__dict__.setdefault("names", set())
        if name in busy:
            return None
        busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            busy.discard(name)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            _apply(name, module, executed=True)

        # On the loader instance, not a wrapper, so the module keeps its own __loader__.
        loader.exec_module = exec_module
        return spec


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    for name in HOOKS:
        module = sys.modules.get(name)
        if module is not None:
            _apply(name, module)
    sys.meta_path.insert(0, _PostImportFinder())
