"""No leak, though it grows between the snapshots: a bounded lru_cache still filling up
(urllib.parse.urlsplit's cache under a web framework is the real-world case)."""

import functools

from _harness import measure


class Page:
    def __init__(self, page: int) -> None:
        self.page = page
        self.html = f"<p>page {page}</p>" * 4


@functools.lru_cache(maxsize=5000)
def render(page: int) -> Page:
    return Page(page)


def handle(request_id: int) -> int:
    return len(render(request_id).html)


measure(handle, warmup=200, leaked=1500)
