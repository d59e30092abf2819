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
        self._counts: dict[str, int] = {}
        self._total = 0

    def record(self, method: object, route: object) -> None:
        key = f"{method or '?'} {route or '?'}"
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_ROUTES:
                key = f"{method or '?'} <other>"
            self._counts[key] = self._counts.get(key, 0) + 1
            self._total += 1

    def read(self) -> tuple[dict[str, int], int]:
        with self._lock:
            return dict(self._counts), self._total

    def reset_after_fork(self) -> None:
        # The parent's lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        self._counts = {}
        self._total = 0


COUNTER = RouteCounter()
