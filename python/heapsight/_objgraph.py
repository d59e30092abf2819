"""objgraph-style functions on heapsight's Rust engine.

Same names and meanings as objgraph where they make sense; the differences are listed in
docs/objgraph-compat.md. Counting runs in Rust over the collector's lists (frozen objects
included); questions about references are answered from one in-memory capture of the
whole heap instead of repeated `gc.get_referrers` calls.
"""

from __future__ import annotations

import gc
import operator
import sys
import types
from collections.abc import Iterable
from typing import Any, Callable, TextIO

from heapsight import _heapsight

__all__ = [
    "by_type",
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
    "typestats",
]

# Peak count per type seen by `growth()` calls that do not pass their own dict, as objgraph does.
_default_peak_stats: dict[str, int] = {}


def _short_name(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


def typestats(
    objects: Iterable[object] | None = None,
    shortnames: bool = False,
    filter: Callable[[object], bool] | None = None,
) -> dict[str, int]:
    """Count gc-tracked objects by type: `{type_name: count}`.

    Names are `module.QualName` (builtins bare: `dict`). Unlike objgraph, the default is
    the fully qualified name, and objects frozen by `gc.freeze()` are counted too. With
    `objects` or `filter` the count runs over those objects in Python, as objgraph does.
    """
    if objects is None and filter is None:
        stats = _heapsight.typestats()
    else:
        stats = {}
        source = gc.get_objects() if objects is None else objects
        for obj in source:
            if filter is not None and not filter(obj):
                continue
            name = _heapsight._debug_type_name(obj)
            stats[name] = stats.get(name, 0) + 1
    if not shortnames:
        return stats
    short: dict[str, int] = {}
    for name, n in stats.items():
        key = _short_name(name)
        short[key] = short.get(key, 0) + n
    return short


def census() -> dict[str, tuple[int, int]]:
    """`{type_name: (count, bytes)}` over every gc-tracked object; bytes as `sys.getsizeof`."""
    return _heapsight.census()


def count(typename: str, objects: Iterable[object] | None = None) -> int:
    """Number of gc-tracked objects of a type.

    A dotted name (`app.UserSession`, `collections.OrderedDict`) matches the qualified
    name; a bare name (`UserSession`, `dict`) matches the class name in any module.
    """
    stats = typestats(objects)
    if "." in typename:
        return stats.get(typename, 0)
    return sum(n for name, n in stats.items() if _short_name(name) == typename)


def _matching_type_names(typename: str) -> list[str]:
    names = _heapsight.typestats().keys()
    if "." in typename:
        return [typename] if typename in names else []
    return [name for name in names if _short_name(name) == typename]


def by_type(typename: str, objects: Iterable[object] | None = None) -> list[object]:
    """The live gc-tracked objects of a type (name rules as in `count`)."""
    if objects is not None:
        dotted = "." in typename
        return [
            obj
            for obj in objects
            if (
                _heapsight._debug_type_name(obj)
                if dotted
                else _short_name(_heapsight._debug_type_name(obj))
            )
            == typename
        ]
    found: list[object] = []
    for name in _matching_type_names(typename):
        found.extend(_heapsight.objects_of_type(name))
    return found


def most_common_types(
    limit: int = 10,
    objects: Iterable[object] | None = None,
    shortnames: bool = False,
    filter: Callable[[object], bool] | None = None,
) -> list[tuple[str, int]]:
    """The `limit` most numerous types, largest first: `[(type_name, count), ...]`."""
    stats = sorted(
        typestats(objects, shortnames=shortnames, filter=filter).items(),
        key=operator.itemgetter(1),
        reverse=True,
    )
    return stats[:limit] if limit else stats


def show_most_common_types(
    limit: int = 10,
    objects: Iterable[object] | None = None,
    shortnames: bool = False,
    file: TextIO | None = None,
    filter: Callable[[object], bool] | None = None,
) -> None:
    """Print `most_common_types()` as a table."""
    out = sys.stdout if file is None else file
    stats = most_common_types(limit, objects, shortnames=shortnames, filter=filter)
    width = max((len(name) for name, _ in stats), default=0)
    for name, n in stats:
        out.write(f"{name:<{width}} {n}\n")


def growth(
    limit: int = 10,
    peak_stats: dict[str, int] | None = None,
    shortnames: bool = False,
    filter: Callable[[object], bool] | None = None,
) -> list[tuple[str, int, int]]:
    """Types whose count rose above its previous peak since the last call.

    Returns `[(type_name, count, increase), ...]`, largest increase first, as objgraph does.
    Runs a full collection first so garbage does not count as growth.
    """
    gc.collect()
    peaks = _default_peak_stats if peak_stats is None else peak_stats
    stats = typestats(shortnames=shortnames, filter=filter)
    deltas: dict[str, int] = {}
    for name, n in stats.items():
        old = peaks.get(name, 0)
        if n > old:
            deltas[name] = n - old
            peaks[name] = n
    result = [(name, stats[name], delta) for name, delta in deltas.items()]
    result.sort(key=operator.itemgetter(2), reverse=True)
    return result[:limit] if limit else result


def show_growth(
    limit: int = 10,
    peak_stats: dict[str, int] | None = None,
    shortnames: bool = False,
    file: TextIO | None = None,
    filter: Callable[[object], bool] | None = None,
) -> None:
    """Print `growth()`: type, count, increase."""
    result = growth(limit, peak_stats, shortnames, filter)
    out = sys.stdout if file is None else file
    width = max((len(name) for name, _, _ in result), default=0)
    for name, n, delta in result:
        out.write(f"{name:<{width}} {n:9d} {delta:+9d}\n")


def is_proper_module(obj: object) -> bool:
    """True for a module that `sys.modules` lists under its own name (objgraph's default)."""
    return (
        isinstance(obj, types.ModuleType) and sys.modules.get(getattr(obj, "__name__", None)) is obj
    )


def _caller_frames() -> list[int]:
    """Addresses of the current thread's frames, which hold the caller's own references."""
    frame: types.FrameType | None = sys._getframe()
    found = []
    while frame is not None:
        found.append(id(frame))
        frame = frame.f_back
    return found


def find_backref_chain(
    obj: object,
    predicate: Callable[[object], bool] = is_proper_module,
    max_depth: int = 20,
    extra_ignore: Iterable[int] = (),
) -> list[object]:
    """Shortest chain of referrers from an object satisfying `predicate` to `obj`.

    Returns the objects `[start, ..., obj]` as objgraph does, or `[obj]` when no chain of
    at most `max_depth` steps exists. The caller's frames are ignored, as objgraph
    ignores its own.
    """
    ignore = set(extra_ignore)
    ignore.update(_caller_frames())
    heap = _heapsight.capture_heap()
    order, parents = _heapsight.heap_backref_search(heap, id(obj), max_depth, list(ignore))
    del heap
    by_address = {id(found): found for found in _heapsight.objects_at(order)}
    by_address[id(obj)] = obj
    for address in order:
        candidate = by_address.get(address)
        if candidate is None or address == id(obj) or not predicate(candidate):
            continue
        chain = [candidate]
        step = parents.get(address)
        while step is not None and step != id(obj):
            chain.append(by_address.get(step))
            step = parents.get(step)
        chain.append(obj)
        if any(link is None for link in chain):
            continue
        return chain
    return [obj]


def path_to(obj: object, extra_ignore: Iterable[int] = ()) -> list[str] | None:
    """The shortest chain from a root to `obj` as readable labelled steps.

    For example `["module app", "._CACHE", "['k']", "app.UserSession"]`. Roots are modules,
    thread stacks and references from native code; the caller's own frames are ignored.
    Returns None when nothing the capture can see keeps `obj` alive.
    """
    ignore = set(extra_ignore)
    ignore.update(_caller_frames())
    heap = _heapsight.capture_heap()
    return _heapsight.heap_path_to(heap, id(obj), list(ignore))


def paths_to(objs: Iterable[object], extra_ignore: Iterable[int] = ()) -> list[list[str] | None]:
    """`path_to` for many objects from one capture of the heap: the fast way to ask why
    each of a hundred leaked objects is alive."""
    objs = list(objs)
    ignore = set(extra_ignore)
    ignore.update(_caller_frames())
    ignore.add(id(objs))
    heap = _heapsight.capture_heap()
    return _heapsight.heap_paths_to(heap, [id(o) for o in objs], list(ignore))


def _render_ref_graph(
    objs: Any,
    direction: str,
    max_depth: int,
    extra_ignore: Iterable[int],
    too_many: int,
    filename: str | None,
    output: TextIO | None,
) -> str | None:
    if not isinstance(objs, (list, tuple)):
        objs = [objs]
    ignore = set(extra_ignore)
    ignore.update(_caller_frames())
    ignore.add(id(objs))
    heap = _heapsight.capture_heap()
    fmt = "dot"
    if filename is not None:
        fmt = filename.rsplit(".", 1)[-1].lower() if "." in filename else "dot"
        if fmt not in ("dot", "gv", "svg", "png"):
            raise ValueError(f"cannot write {filename!r}: use a .dot, .svg or .png file name")
        fmt = "dot" if fmt == "gv" else fmt
    rendered = _heapsight.heap_render_refs(
        heap, [id(o) for o in objs], direction, max_depth, too_many, list(ignore), fmt
    )
    if filename is not None:
        _heapsight.write_atomic(filename, rendered)
        return None
    text = rendered.decode()
    if output is not None:
        output.write(text)
        return None
    return text


def show_backrefs(
    objs: Any,
    max_depth: int = 3,
    extra_ignore: Iterable[int] = (),
    too_many: int = 10,
    filename: str | None = None,
    output: TextIO | None = None,
) -> str | None:
    """Draw who refers to `objs`, up to `max_depth` steps back.

    Writes `filename` (`.dot`, `.svg` or `.png`; no system graphviz needed) or, without
    one, returns the graph in dot format (or writes it to `output`).
    """
    return _render_ref_graph(
        objs, "back", max_depth, extra_ignore, too_many, filename, output
    )


def show_refs(
    objs: Any,
    max_depth: int = 3,
    extra_ignore: Iterable[int] = (),
    too_many: int = 10,
    filename: str | None = None,
    output: TextIO | None = None,
) -> str | None:
    """Draw what `objs` refer to, up to `max_depth` steps forward (see `show_backrefs`)."""
    return _render_ref_graph(
        objs, "forward", max_depth, extra_ignore, too_many, filename, output
    )
