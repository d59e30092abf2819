"""A synthetic web-app-like heap for the benchmarks, plus 100 leaked `UserSession`s.

`build_heap(n_tracked)` fills the interpreter with about `n_tracked` gc-tracked objects
shaped like the state of a web application: request records (instances with a
`__dict__`), header records (`__slots__`), payload dicts and lists, closures with cells,
and the untracked leaves they hold (unique strings, large ints, atomic tuples). Each unit
is 7 tracked objects and about 9 untracked ones, so 3M tracked objects make roughly 7M
objects in all, the proportion seen on real web-app heaps.

The leak: 100 `UserSession` objects stay in the module-level dict `_SESSIONS['u<i>']` of
a module registered as `bench_webapp.auth.sessions`, and each one is also subscribed to
an application event bus through a bound method, so a backwards search from a session
fans out before it reaches a module, as it does on real leaks. Each session keeps a few
requests alive, so its retained size is more than its own few hundred bytes.

The heap is built in place (no temporary list of all objects), so the resident-set
high-water mark right after building is close to the steady state.
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any, Callable

TRACKED_PER_UNIT = 7
LEAKED_SESSIONS = 100
SESSIONS_MODULE = "bench_webapp.auth.sessions"
APP_MODULE = "bench_webapp.app"
# Requests per leaf list: big enough that containers are a small share of the heap, small
# enough that the structure has a few levels, as an app's caches do.
REQUESTS_PER_PAGE = 1000
PAGES_PER_SHARD = 64


class Headers:
    """Per-request headers: an instance with `__slots__` (no `__dict__`)."""

    __slots__ = ("host", "agent", "cookies")

    def __init__(self, host: str, agent: str, cookies: tuple) -> None:
        self.host = host
        self.agent = agent
        self.cookies = cookies


class Request:
    """A request record: an ordinary instance whose attributes live in its `__dict__`."""

    def __init__(
        self, request_id: int, path: str, headers: Headers, payload: dict, handler: Callable
    ) -> None:
        self.request_id = request_id
        self.path = path
        self.headers = headers
        self.payload = payload
        self.handler = handler
        self.elapsed = request_id * 1e-9


class UserSession:
    """The leaked object: a user's session, kept after logout by `_SESSIONS`."""

    def __init__(self, user: str, recent: list) -> None:
        self.user = user
        self.recent = recent
        self.token = f"tok-{user}-" + "x" * 48

    def on_event(self, event: str) -> None:
        self.recent.append(event)


class EventBus:
    """Application event bus: listeners are bound methods, a classic source of leaks."""

    def __init__(self) -> None:
        self.listeners: list = []

    def subscribe(self, listener: Callable) -> None:
        self.listeners.append(listener)


class App:
    """Root of the synthetic application state."""

    def __init__(self) -> None:
        self.shards: dict[str, list] = {}
        self.events = EventBus()
        self.config = {"debug": False, "workers": 4, "name": "bench-app"}


def _make_handler(payload: dict) -> Callable[[], int]:
    # A closure: the function, its closure tuple and the cell are three tracked objects.
    def handle() -> int:
        return len(payload)

    return handle


_HOSTS = ("api.example.com", "www.example.com", "admin.example.com")


def _make_request(i: int) -> Request:
    path = f"/api/v1/items/{i}"
    # Unique untracked leaves: large ints, unique strings, atomic tuples.
    request_id = 10_000_000_000 + i
    cookies = ("sid", f"s{i:08x}")
    headers = Headers(_HOSTS[i % 3], f"agent/{i}", cookies)
    items = [request_id + 1, f"item-{i}"]
    payload = {"user": f"user{i % 50_000}", "items": items, "meta": (i * 7 + 1_000_000, "m")}
    return Request(request_id, path, headers, payload, _make_handler(payload))


def _new_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


def build_heap(n_tracked: int) -> App:
    """Build about `n_tracked` gc-tracked objects of app state and the 100 leaked sessions.

    The state is reachable from the module `bench_webapp.app` (its `APP` attribute), the
    sessions from `bench_webapp.auth.sessions._SESSIONS`. Calling it again replaces both.
    Runs a full collection at the end so atomic tuples are untracked as they would be in
    a long-running process.
    """
    if n_tracked < 0:
        raise ValueError("n_tracked must be >= 0")
    app = App()
    units = n_tracked // TRACKED_PER_UNIT
    page: list = []
    shard: list = []
    shard_no = 0
    for i in range(units):
        page.append(_make_request(i))
        if len(page) == REQUESTS_PER_PAGE:
            shard.append(page)
            page = []
            if len(shard) == PAGES_PER_SHARD:
                app.shards[f"shard-{shard_no}"] = shard
                shard_no += 1
                shard = []
    if page:
        shard.append(page)
    if shard:
        app.shards[f"shard-{shard_no}"] = shard

    sessions: dict[str, UserSession] = {}
    for i in range(LEAKED_SESSIONS):
        recent = [_make_request(units + i * 3 + k) for k in range(3)]
        session = UserSession(f"u{i}", recent)
        sessions[f"u{i}"] = session
        app.events.subscribe(session.on_event)

    app_module = _new_module(APP_MODULE)
    app_module.APP = app
    for parent in ("bench_webapp", "bench_webapp.auth"):
        if parent not in sys.modules:
            _new_module(parent)
    sessions_module = _new_module(SESSIONS_MODULE)
    sessions_module._SESSIONS = sessions
    gc.collect()
    return app


def leaked_sessions() -> list[Any]:
    """The 100 leaked sessions, in `u0..u99` order (empty before `build_heap`)."""
    module = sys.modules.get(SESSIONS_MODULE)
    if module is None:
        return []
    sessions = module._SESSIONS
    return [sessions[f"u{i}"] for i in range(LEAKED_SESSIONS)]


def release_heap() -> None:
    """Drop the synthetic state so the objects can be freed."""
    for name in (SESSIONS_MODULE, "bench_webapp.auth", APP_MODULE, "bench_webapp"):
        sys.modules.pop(name, None)
    gc.collect()


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Build the synthetic heap and count it.")
    parser.add_argument("--objects", type=int, default=1_000_000, help="gc-tracked objects")
    args = parser.parse_args()
    before = len(gc.get_objects())
    start = time.perf_counter()
    build_heap(args.objects)
    elapsed = time.perf_counter() - start
    tracked = len(gc.get_objects())
    try:
        from pympler import muppy

        every = len(muppy.get_objects())
    except ImportError:
        every = -1
    print(
        f"built in {elapsed:.2f} s: {tracked - before} new gc-tracked objects "
        f"({tracked} in all); all objects (tracked and leaves, pympler): {every}"
    )
