"""Command line of the Python side of `heapsight run` (the Rust CLI parsed it first and
forwards it with `--drive`, `--body` and `--header` in their original order)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class UsageError(ValueError):
    """A command line that cannot run; the message says what to write instead."""


@dataclasses.dataclass
class Drive:
    method: str
    url: str
    host: str
    port: int
    target: str  # path and query, may contain `{i}`
    body: bytes = b""
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.method} {self.target.split('?')[0]}"

    def request_target(self, index: int) -> str:
        return self.target.replace("{i}", str(index))


@dataclasses.dataclass
class RunOptions:
    drives: list[Drive]
    requests: int
    warmup: int
    rounds: int
    duration: float
    interval: float
    startup_timeout: float
    timeout: float
    settle: float
    json_out: str | None
    trace_alloc: bool
    keep_dir: str | None
    app: list[str]
    report_out: str | None = None  # the HTML report (--report)
    include_values: bool = False  # short string values and every dict key in snapshots


def parse_drive(spec: str) -> Drive:
    method, sep, url = spec.partition(":")
    if not sep or method.upper() not in METHODS or method != method.upper():
        raise UsageError(
            f"bad --drive {spec!r}: write METHOD:URL with METHOD one of {', '.join(METHODS)}, "
            "e.g. --drive GET:http://127.0.0.1:8000/users/{i}"
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise UsageError(f"bad --drive {spec!r}: the URL must start with http://127.0.0.1:PORT/")
    if parsed.hostname not in LOCAL_HOSTS:
        raise UsageError(
            f"bad --drive {spec!r}: heapsight only drives the app it started, on 127.0.0.1 "
            f"(not {parsed.hostname})"
        )
    try:
        port = parsed.port or 80
    except ValueError:
        raise UsageError(f"bad --drive {spec!r}: the port is not a number in 1..65535") from None
    target = parsed.path or "/"
    if parsed.query:
        target += "?" + parsed.query
    return Drive(method=method, url=url, host="127.0.0.1", port=port, target=target)


class _Ordered(argparse.Action):
    """Keeps --drive/--body/--header in command-line order in one list."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
        values: Any, option_string: str | None = None,
    ) -> None:
        items = getattr(namespace, "drive_items", None) or []
        items.append((option_string, values))
        namespace.drive_items = items


def parse(argv: Sequence[str]) -> RunOptions:
    argv = list(argv)
    if "--" in argv:
        split = argv.index("--")
        argv, app = argv[:split], argv[split + 1:]
    else:
        app = []
    parser = argparse.ArgumentParser(prog="heapsight run")
    for flag in ("--drive", "--body", "--header"):
        parser.add_argument(flag, action=_Ordered, dest="drive_items")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument("--json")
    parser.add_argument("--trace-alloc", action="store_true")
    parser.add_argument("--keep-dir")
    parser.add_argument("--report")
    parser.add_argument("--include-values", action="store_true")
    ns = parser.parse_args(argv)
    if not app:
        raise UsageError("give the command that starts the app after `--`, e.g. "
                         "heapsight run --drive GET:http://127.0.0.1:8000/ -- python app.py")
    drives: list[Drive] = []
    for flag, value in ns.drive_items or []:
        if flag == "--drive":
            drives.append(parse_drive(value))
            continue
        if not drives:
            raise UsageError(f"{flag} applies to the --drive before it; put a --drive first")
        if flag == "--body":
            drives[-1].body = value.encode("utf-8")
        else:
            name, sep, header_value = value.partition(":")
            if not sep or not name.strip():
                raise UsageError(f"bad --header {value!r}: write 'Name: value'")
            drives[-1].headers.append((name.strip(), header_value.strip()))
    for name in ("duration", "interval", "startup_timeout", "timeout"):
        if not getattr(ns, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if not ns.settle >= 0:
        raise UsageError("--settle must be zero or more seconds")
    if ns.report is not None:
        # Checked now rather than after a run of many minutes.
        folder = os.path.dirname(os.path.abspath(ns.report))
        if not os.path.isdir(folder):
            raise UsageError(f"--report {ns.report}: the directory {folder} does not exist")
    if ns.requests < ns.rounds:
        raise UsageError("--requests must be at least --rounds")
    # Library caches keyed by URL (urllib.parse.urlsplit keeps 128 per process) must be
    # full before the first census, or their filling looks like a leak of every endpoint.
    warmup = ns.warmup if ns.warmup is not None else max(300, ns.requests)
    return RunOptions(
        drives=drives, requests=ns.requests, warmup=warmup, rounds=ns.rounds,
        duration=ns.duration, interval=ns.interval, startup_timeout=ns.startup_timeout,
        timeout=ns.timeout, settle=ns.settle, json_out=ns.json, trace_alloc=ns.trace_alloc,
        keep_dir=ns.keep_dir, app=app, report_out=ns.report, include_values=ns.include_values,
    )
