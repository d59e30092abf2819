"""heapsight: find, explain and fix memory leaks in Python web applications.

The counting and the heap walk run in Rust inside this process (`heapsight._heapsight`);
this package is the Python face of it: an objgraph-style API and the snapshot call.
"""

from __future__ import annotations

import os

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


def snapshot(path: str | os.PathLike, include_values: bool = False) -> dict:
    """Capture the whole heap of this process into a `.hsnap` file.

    Every gc-tracked object and the untracked objects they reference, with sizes, labelled
    references and roots. String and bytes values are not stored (only their length)
    unless `include_values=True`. The file is written atomically. Returns a summary dict
    (node and edge counts, timings).
    """
    return _heapsight.snapshot(os.fspath(path), include_values)
