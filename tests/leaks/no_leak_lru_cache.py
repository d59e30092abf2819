"""No leak: a bounded lru_cache and per-request objects that die with their request."""

import functools

from _harness import measure


class Request:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.body = bytes(100)


@functools.lru_cache(maxsize=128)
def render(page: int) -> str:
    return f"page {page}" * 10


def handle(request_id: int) -> int:
    request = Request(request_id)
    return len(render(request_id % 500)) + len(request.body)


measure(handle, warmup=2000, leaked=4000)
