"""Requests per route, counted by the WSGI/ASGI wrappers and read by the control channel."""

from __future__ import annotations

import threading

# Raw paths (plain WSGI apps) can be unbounded; past this many distinct routes the rest are
# counted together so the agent itself never leaks.
MAX_ROUTES = 500


class RouteCounter:
    def __init__(self) -> None:
        # Held only for one dict update or copy, never across app code.
        self._lock = threading.Lock()
        self._counts: dict[tuple[object, object], int] = {}
        self._total = 0

    def record(self, method: object, route: object) -> None:
        # The key is formatted when read, not on the request path.
        key = (method, route)
        with self._lock:
            count = self._counts.get(key)
            if count is None and len(self._counts) >= MAX_ROUTES:
                key = (method, "<other>")
                count = self._counts.get(key)
            self._counts[key] = (count or 0) + 1
            self._total += 1

    def read(self) -> tuple[dict[str, int], int]:
        with self._lock:
            counts = dict(self._counts)
            total = self._total
        merged: dict[str, int] = {}
        for (method, route), n in counts.items():
            name = f"{method or '?'} {route or '?'}"
            merged[name] = merged.get(name, 0) + n
        return merged, total

    def reset_after_fork(self) -> None:
        # The parent's lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._counts = {}
        self._total = 0


COUNTER = RouteCounter()
