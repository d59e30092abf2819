"""HS006: functools.cache on a module function called with per-request objects."""

import functools

from _harness import measure


class RenderContext:
    def __init__(self, request_id: int) -> None:
        self.user = f"user-{request_id}"
        self.items = (request_id, request_id + 1)


@functools.cache
def render(template: str, context: RenderContext) -> str:
    return template.format(user=context.user)


def handle(request_id: int) -> str:
    return render("hello {user}", RenderContext(request_id))


measure(handle)
