"""`--trace-alloc`: allocation sites of live objects through tracemalloc."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from typing import Any

TRACE_FRAMES = 16
MAX_OBJECTS_PER_TYPE = 20_000
SITES_PER_TYPE = 5


def start() -> None:
    if not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)


def _type_name(obj: object) -> str:
    cls = type(obj)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def _traceback(obj: object) -> tracemalloc.Traceback | None:
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is not None:
        return traceback
    # CPython 3.11 cannot find the trace of objects with a pre-header (instances with a
    # managed dict): it looks before the GC header only. What the object owns was
    # allocated in the same call, so its first traced attribute value stands in.
    for referent in gc.get_referents(obj):
        if isinstance(referent, type):
            continue
        traceback = tracemalloc.get_object_traceback(referent)
        if traceback is not None:
            return traceback
    return None


def allocation_sites(type_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """For each type name, the most frequent allocation stacks of its live instances."""
    if not tracemalloc.is_tracing():
        raise RuntimeError("tracemalloc is not tracing: start the run with --trace-alloc")
    wanted = set(type_names)
    stacks: dict[str, Counter[tuple[str, ...]]] = {name: Counter() for name in wanted}
    seen: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = _type_name(obj)
        if name not in wanted or seen[name] >= MAX_OBJECTS_PER_TYPE:
            continue
        seen[name] += 1
        traceback = _traceback(obj)
        if traceback is None:
            continue
        frames = tuple(f"{frame.filename}:{frame.lineno}" for frame in traceback)
        stacks[name][frames] += 1
    return {
        name: [
            {"site": stack[-1] if stack else "?", "stack": list(stack), "count": count}
            for stack, count in counter.most_common(SITES_PER_TYPE)
        ]
        for name, counter in stacks.items()
    }
