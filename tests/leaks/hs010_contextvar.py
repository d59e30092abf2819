"""HS010: a ContextVar set per request in the long-lived main context, never reset."""

import contextvars

from _harness import measure


class Request:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.headers = {"x-request-id": str(request_id)}


_breadcrumbs: contextvars.ContextVar[tuple] = contextvars.ContextVar("breadcrumbs", default=())


def middleware(request_id: int) -> None:
    # Each request appends to the breadcrumbs of the (shared, never reset) context.
    _breadcrumbs.set((*_breadcrumbs.get(), Request(request_id)))


measure(middleware, leaked=600)
