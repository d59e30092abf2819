"""A Flask app whose cache is bounded: it fills, then stops growing (must be no-leak)."""

from __future__ import annotations

from collections import OrderedDict

from flask import Flask, jsonify

app = Flask(__name__)
_CACHE: OrderedDict[int, Entry] = OrderedDict()
MAX_ENTRIES = 32


class Entry:
    def __init__(self, key: int) -> None:
        self.key = key
        self.value = [key] * 4


@app.route("/cache/<int:key>")
def cached(key: int):  # type: ignore[no-untyped-def]
    entry = _CACHE.get(key)
    if entry is None:
        entry = _CACHE[key] = Entry(key)
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return jsonify(key=entry.key)


@app.route("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True)
