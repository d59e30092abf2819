"""HS010: middleware stores per-request objects on a threading.local and never clears it."""

import threading

from _harness import measure


class Request:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.headers = {"x-request-id": str(request_id)}


_state = threading.local()


def middleware(request_id: int) -> None:
    if not hasattr(_state, "seen"):
        _state.seen = []
    _state.seen.append(Request(request_id))


measure(middleware)
