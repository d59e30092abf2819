"""Flask app with one leaking endpoint (`/login/<user>`) and clean ones."""

from __future__ import annotations

import functools
import itertools

from flask import Flask, jsonify

app = Flask(__name__)
_SESSIONS: dict[str, UserSession] = {}
_tokens = itertools.count()


class UserSession:
    def __init__(self, user: str, token: str) -> None:
        self.user = user
        self.token = token
        self.history = bytearray(256)


@app.route("/login/<user>")
def login(user: str):  # type: ignore[no-untyped-def]
    token = f"t{next(_tokens)}"
    _SESSIONS[token] = UserSession(user, token)
    return jsonify(token=token)


@app.route("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)


@app.route("/items/<int:item_id>")
def item(item_id: int):  # type: ignore[no-untyped-def]
    return jsonify(id=item_id, name=f"item {item_id}")


class Page:
    def __init__(self, number: int) -> None:
        self.number = number
        self.html = f"<h1>page {number}</h1>" * 8


@functools.lru_cache(maxsize=4096)
def render_page(number: int) -> Page:
    return Page(number)


@app.route("/pages/<int:number>")
def page(number: int):  # type: ignore[no-untyped-def]
    # Bounded: grows during the run, stops at 4096 pages per worker. Not a leak.
    return jsonify(length=len(render_page(number).html))
