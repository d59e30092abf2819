"""A deliberately leaky WSGI application, with no dependencies beyond the standard library.

`GET /login/<user>` stores a `UserSession` in a module-level dict keyed by a fresh token
and never removes it: the classic per-request cache leak. The other endpoints are clean;
`GET /products/<id>` uses a bounded cache that fills and then stops growing.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable
from typing import Callable

_SESSIONS: dict[str, UserSession] = {}
_token_counter = itertools.count()


class UserSession:
    def __init__(self, user: str, token: str) -> None:
        self.user = user
        self.token = token
        self.cart: list[str] = []
        self.history = bytearray(512)


@functools.lru_cache(maxsize=64)
def _product(product_id: int) -> dict[str, object]:
    return {"id": product_id, "name": f"product {product_id}", "price": product_id * 3}


def _login(user: str) -> dict[str, object]:
    token = f"t{next(_token_counter)}"
    _SESSIONS[token] = UserSession(user, token)
    return {"token": token}


def _health() -> dict[str, object]:
    return {"ok": True}


def _route(path: str) -> tuple[str, Callable[[], dict[str, object]]] | None:
    parts = [p for p in path.split("/") if p]
    if parts == ["health"]:
        return "/health", _health
    if len(parts) == 2 and parts[0] == "login":
        return "/login/<user>", lambda: _login(parts[1])
    if len(parts) == 2 and parts[0] == "products" and parts[1].isdigit():
        return "/products/<id>", lambda: _product(int(parts[1]) % 200)
    return None


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    found = _route(environ.get("PATH_INFO", "/"))
    if found is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not found"}']
    _route_template, handler = found
    body = json.dumps(handler()).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def serve(port: int) -> None:
    """Serves the app on 127.0.0.1:`port` until interrupted (`heapsight demo` runs this)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    with make_server("127.0.0.1", port, app, handler_class=_QuietHandler) as server:
        print(f"demo app on http://127.0.0.1:{port} (GET /login/<user>, /products/<id>, /health)",
              flush=True)
        server.serve_forever()


if __name__ == "__main__":
    import sys

    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
