"""The compiled core of heapsight (Rust, PyO3). Use the `heapsight` package instead.

Everything that walks the heap holds the GIL for the walk only and runs no Python code
meanwhile; compressing and writing happen with the GIL released.
"""

from typing import Literal

__version__: str

def run_cli(argv: list[str]) -> int:
    """Run the `heapsight` command line (`argv[0]` is the program name); return its exit status."""

def census() -> dict[str, tuple[int, int]]:
    """`{type_name: (count, bytes)}` over every gc-tracked object, frozen ones included."""

def typestats() -> dict[str, int]:
    """`{type_name: count}` over every gc-tracked object, frozen ones included."""

def snapshot(path: str, include_values: bool = False) -> dict[str, object]:
    """Capture the whole heap into a `.hsnap` file (atomically); return a summary."""

class ForkError(OSError):
    """`snapshot_fork` could not start its child (nothing was captured or written); an
    in-process `snapshot` is still possible."""

def snapshot_fork(
    path: str, include_values: bool = False, timeout: float = 600.0
) -> dict[str, object]:
    """Capture the heap in a forked child while this process keeps running; return the
    same summary as `snapshot` plus `mode="fork"`, `child_pid`, `pause_ms` (how long this
    process held the GIL: the fork itself) and `wait_ms`. The child runs no at-fork hook
    and no application code (except user `__sizeof__` methods, as the in-process capture
    does), writes the file atomically and leaves with `_exit`; it is always reaped, and
    killed after `timeout` seconds (`TimeoutError`). A write failure raises
    `OSError`, a failed walk or a crashed child `RuntimeError`, no child `ForkError`."""

class CapturedHeap:
    """A capture of the whole heap held in memory (no file), for repeated questions."""

    def __len__(self) -> int: ...
    def summary(self) -> dict[str, object]:
        """Counts and timings, as returned by `snapshot()`."""
    def write(self, path: str) -> int:
        """Write the held capture to a `.hsnap` file; return its size in bytes."""
    def _debug_tables(self) -> dict[str, object]: ...

def capture_heap(include_values: bool = False) -> CapturedHeap:
    """Capture the whole heap into memory."""

def objects_of_type(type_name: str) -> list[object]:
    """The live gc-tracked objects whose type's qualified name is `type_name`."""

def objects_at(addresses: list[int]) -> list[object]:
    """The live gc-tracked objects whose `id()` is among `addresses` (found by walking the
    collector's lists, never by trusting an integer as a pointer), in no particular order."""

def heap_path_to(heap: CapturedHeap, address: int, ignore: list[int]) -> list[str] | None:
    """Shortest chain from a root to the object at `address` as readable steps, skipping
    the objects at the `ignore` addresses; None when no root reaches it."""

def heap_paths_to(
    heap: CapturedHeap, addresses: list[int], ignore: list[int]
) -> list[list[str] | None]:
    """`heap_path_to` for many objects, sharing one graph index."""

def heap_backref_search(
    heap: CapturedHeap, address: int, max_depth: int, ignore: list[int]
) -> tuple[list[int], dict[int, int]]:
    """Breadth-first search over referrers from `address`: the addresses in visiting order
    and, for each, the address one step closer to the start."""

def heap_render_refs(
    heap: CapturedHeap,
    addresses: list[int],
    direction: Literal["back", "forward"],
    max_depth: int,
    too_many: int,
    ignore: list[int],
    format: Literal["dot", "svg", "png"],
) -> bytes:
    """Draw the references into (`back`) or out of (`forward`) the given objects."""

def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""

def _debug_type_name(obj: object) -> str:
    """The qualified type name heapsight reports for `obj`."""

def _debug_sizeof(obj: object) -> int | None:
    """heapsight's native size of `obj` (None where a Python `__sizeof__` decides)."""

def _debug_attrs(obj: object) -> list[tuple[str, object]] | None:
    """The attributes heapsight reads from `obj` without materialising its `__dict__`."""

def _debug_is_immortal(obj: object) -> bool: ...
def _debug_load(path: str) -> dict[str, object]:
    """A snapshot file's tables as Python lists (tests)."""
def _debug_size_sweep(objects: list[object]) -> tuple[int, int, int]:
    """Size every object natively: (natively sized count, their bytes, attributes decoded)."""

def _debug_attr_source(obj: object) -> str:
    """Where `_debug_attrs` read the attributes from (`dict`, `slots`, `shared-key values`...)."""

def _debug_dict_of(obj: object) -> dict[str, object] | None:
    """The object's existing `__dict__`, never creating one."""

def _debug_runtime_version() -> tuple[int, int] | None: ...
def _debug_layout_supported() -> bool: ...
def assess_series(
    label: str,
    points: list[tuple[float, float]],
    x_unit: Literal["requests", "seconds", "samples"] = "requests",
    y_unit: Literal["objects", "bytes"] = "objects",
) -> dict[str, object]:
    """The leak verdict of a series (warm-up, plateau, Theil-Sen, Mann-Kendall) as a dict."""

def render_html_report(
    report_json: str | None = None,
    run_json: str | None = None,
    title: str | None = None,
) -> str:
    """One self-contained HTML page (no network) for an analysis report and/or a run result,
    both as JSON text (`docs/html-report.md`). Raises ValueError when a text is not JSON."""
