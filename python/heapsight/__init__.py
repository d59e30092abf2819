"""heapsight: find, explain and fix memory leaks in Python web applications.

The counting and the heap walk run in Rust inside this process (`heapsight._heapsight`);
this package is the Python face of it: an objgraph-style API and the snapshot call.
"""

from __future__ import annotations

import os
import sys

from heapsight import _heapsight
from heapsight._heapsight import __version__
from heapsight._objgraph import (
    by_type,
    census,
    count,
    find_backref_chain,
    growth,
    is_proper_module,
    most_common_types,
    path_to,
    paths_to,
    show_backrefs,
    show_growth,
    show_most_common_types,
    show_refs,
    typestats,
)

__all__ = [
    "__version__",
    "by_type",
    "census",
    "count",
    "find_backref_chain",
    "growth",
    "is_proper_module",
    "most_common_types",
    "path_to",
    "paths_to",
    "show_backrefs",
    "show_growth",
    "show_most_common_types",
    "show_refs",
    "snapshot",
    "typestats",
]


def snapshot(
    path: str | os.PathLike, include_values: bool = False, *, fork: bool | None = None
) -> dict:
    """Capture the whole heap of this process into a `.hsnap` file.

    Every gc-tracked object and the untracked objects they reference, with sizes, labelled
    references and roots. String and bytes values are not stored (only their length)
    unless `include_values=True`. The file is written atomically. Returns a summary dict
    (node and edge counts; `roots`, the roots the capture names: modules, thread stacks,
    interpreter objects, while the objects referenced from outside the graph are found
    from reference counts when the file is read; timings; `mode` is `"fork"` or
    `"in-process"`; `walk_threads`
    is 2 where a helper thread shared the walk, 1 where it did not or where the
    environment variable `HEAPSIGHT_WALK_THREADS=1` said not to).

    `fork=True` walks the heap in a forked child while this process keeps running: it
    pauses only for the `fork()` itself (`pause_ms`). `fork=False` walks in-process,
    holding the GIL for the whole walk. The default, `None`, forks where that is safe
    (see `_fork_unsafe_reason()`) and otherwise captures in-process, with the reason in
    the summary's `fork_fallback`. See docs/fork-capture.md.
    """
    target = os.fspath(path)
    reason = None
    if fork is None:
        reason = _fork_unsafe_reason()
    if fork or (fork is None and reason is None):
        try:
            return _heapsight.snapshot_fork(target, include_values)
        except _heapsight.ForkError as error:
            if fork:
                raise
            reason = str(error)
    summary = _heapsight.snapshot(target, include_values)
    summary["mode"] = "in-process"
    if reason is not None:
        summary["fork_fallback"] = reason
    return summary


def _fork_unsafe_reason() -> str | None:
    """Why `snapshot()` would not fork by default here, or None when it would.

    Forking is the default only on Linux (macOS system libraries are not fork-safe
    without exec, Windows has no fork), with `os.fork` available, and with the GIL (a
    free-threaded build has no single lock that stops the other threads during the
    fork).
    """
    if not hasattr(os, "fork"):
        return "os.fork is not available on this platform"
    if not sys.platform.startswith("linux"):
        return f"fork capture is the default only on Linux, not {sys.platform}"
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is not None and not gil_enabled():
        return "free-threaded interpreter (the GIL is disabled)"
    return None
