"""Plain WSGI app that dies after a number of requests: `python crash_app.py PORT N`."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

_served = [0]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    _served[0] += 1
    if _served[0] > int(sys.argv[2]):
        os._exit(7)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    with make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=_Quiet) as server:
        server.serve_forever()
