"""Plain WSGI app served by wsgiref: `python wsgi_app.py PORT`. `/leak` keeps a `Record`
per request in a module-level list, `/cache/...` one per URL in a dict keyed by the URL;
`/ok` and `/echo` are clean."""

from __future__ import annotations

import sys
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

_RECORDS: list[Record] = []
_BY_URL: dict[str, Record] = {}


class Record:
    def __init__(self, path: str) -> None:
        self.path = path
        self.payload = [0] * 8


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/leak":
        _RECORDS.append(Record(path))
    elif path.startswith("/cache/"):
        _BY_URL[path] = Record(path)
    elif path not in ("/ok", "/echo"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body or b"ok"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    with make_server("127.0.0.1", int(sys.argv[1]), app, handler_class=_Quiet) as server:
        server.serve_forever()
