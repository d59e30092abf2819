"""Heap capture: census, snapshot contents, labels, roots, privacy. Exact expectations on
structures built here; runs on CPython 3.9 to 3.13."""

import gc
import os
import sys
import threading
import types
import uuid

import pytest
from heapsight import _heapsight as hs

# Label kinds and flags, as in crates/heapsight_snapshot/src/model.rs.
ATTR, KEY, KEY_REPR, KEY_OBJECT, INDEX, LOCAL, SET_ITEM = 1, 2, 3, 4, 5, 6, 7
GC_TRACKED, FROZEN, IMMORTAL, SIZE_ESTIMATED, HAS_VALUE, IS_TYPE, IS_MODULE = (
    1, 2, 4, 8, 16, 32, 64)
MODULE_ROOT, THREAD_ROOT, EXTERNAL_ROOT, INTERPRETER_ROOT = 0, 1, 2, 3


def qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


class Probe:
    def __init__(self, i):
        self.i = i


class SlottedProbe:
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right


class UserSession:
    def __init__(self, user):
        self.user = user
        self.token = None


class FrozenProbe:
    pass


class Heap:
    """A captured heap with lookups by address."""

    def __init__(self, tables):
        self.tables = tables
        self.nodes = tables["nodes"]
        self.index = {n[0]: i for i, n in enumerate(self.nodes)}
        self.out = {}
        for src, dst, kind, label in tables["edges"]:
            self.out.setdefault(src, []).append((dst, kind, label))
        self.roots = tables["roots"]

    def node_of(self, obj):
        return self.index[id(obj)]

    def edges_from(self, obj):
        return self.out.get(self.node_of(obj), [])

    def edge(self, src, dst):
        """Labels of the edges from object `src` to object `dst`."""
        target = self.node_of(dst)
        return [(kind, label) for d, kind, label in self.edges_from(src) if d == target]

    def type_name(self, obj):
        return self.nodes[self.node_of(obj)][1]


def capture(include_values=False):
    return Heap(hs.capture_heap(include_values)._debug_tables())


def test_census_counts_and_bytes_of_a_unique_class():
    probes = [Probe(i) for i in range(1234)]
    rows = hs.census()
    count, nbytes = rows[qualified(Probe)]
    assert count == 1234
    assert nbytes == sum(sys.getsizeof(p) for p in probes)
    assert hs.typestats()[qualified(Probe)] == 1234


def test_census_counts_slotted_instances():
    probes = [SlottedProbe(i, [i]) for i in range(321)]
    count, nbytes = hs.census()[qualified(SlottedProbe)]
    assert count == 321
    assert nbytes == sum(sys.getsizeof(p) for p in probes)


def test_census_builtin_names_are_bare():
    keep = [bytearray(b"x") for _ in range(7)]
    rows = hs.census()
    assert "dict" in rows and "builtins.dict" not in rows
    assert "list" in rows
    assert keep


def test_census_and_snapshot_include_frozen_objects():
    gc.collect()
    frozen = [FrozenProbe() for _ in range(77)]
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        assert len([o for o in gc.get_objects() if type(o) is FrozenProbe]) == 0
        count, _ = hs.census()[qualified(FrozenProbe)]
        assert count == 77
        heap = capture()
        assert heap.tables["n_frozen"] == gc.get_freeze_count()
        for probe in frozen:
            flags = heap.nodes[heap.node_of(probe)][3]
            assert flags & GC_TRACKED and flags & FROZEN
    finally:
        gc.unfreeze()


def test_objects_of_type_and_objects_at():
    probes = [Probe(i) for i in range(50)]
    found = hs.objects_of_type(qualified(Probe))
    assert sorted(id(p) for p in found if p in probes) == sorted(id(p) for p in probes)
    assert all(type(o) is Probe for o in found)
    picked = probes[3:6]
    at = hs.objects_at([id(p) for p in picked] + [id(12345678901234)])
    assert sorted(map(id, at)) == sorted(map(id, picked))


@pytest.fixture
def cache_module():
    mod = types.ModuleType("hs_capture_probe_mod")
    session = UserSession("alice")
    mod._CACHE = {"k": session}
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_snapshot_file_holds_labelled_chain_module_to_session(tmp_path, cache_module):
    path = tmp_path / "heap.hsnap"
    summary = hs.snapshot(str(path))
    assert summary["nodes"] > 1000 and summary["file_bytes"] > 0
    heap = Heap(hs._debug_load(str(path)))
    mod = cache_module
    cache = mod._CACHE
    session = cache["k"]
    assert heap.edge(mod, mod.__dict__) == [(ATTR, "__dict__")]
    assert heap.edge(mod.__dict__, cache) == [(KEY, "_CACHE")]
    assert heap.edge(cache, session) == [(KEY, "k")]
    assert heap.type_name(session) == qualified(UserSession)
    assert heap.nodes[heap.node_of(mod)][5] == "hs_capture_probe_mod"
    assert heap.nodes[heap.node_of(mod)][3] & IS_MODULE
    # The instance's attributes, wherever this version stores them.
    labels = {label for _, kind, label in heap.edges_from(session) if kind == ATTR}
    assert "__class__" in labels
    attr_labels = labels | {
        label for _, kind, label in heap.edges_from(session.__dict__) if kind == KEY
    } if id(session.__dict__) in heap.index else labels
    assert {"user", "token"} <= attr_labels


def test_sizes_match_getsizeof():
    objs = [
        Probe(1), SlottedProbe(1, 2), {"a": 1, "b": [1, 2]}, [1, 2, 3] * 10, (1, "x", None),
        "héllo wörld" * 3, 2 ** 200, b"bytes" * 9, {1, 2, 3}, frozenset({4, 5}), bytearray(100),
    ]
    heap = capture()
    for obj in objs:
        assert heap.nodes[heap.node_of(obj)][2] == sys.getsizeof(obj), repr(obj)[:40]


def test_int_keys_label_their_values_read_from_the_digits():
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    keys = [0, 1, -1, 2**30 - 1, 2**30, -(2**30), 2**45 + 7, -(2**60) - 5,
            2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**100, Level.HIGH]
    table = {key: Probe(i) for i, key in enumerate(keys)}
    heap = capture()
    expected = {
        0: "0", 1: "1", -1: "-1", 2**30 - 1: "1073741823", 2**30: "1073741824",
        -(2**30): "-1073741824", 2**45 + 7: "35184372088839",
        -(2**60) - 5: "-1152921504606846981", 2**63 - 1: "9223372036854775807",
        -(2**63): "-9223372036854775808", 2**63: "<int>", -(2**63) - 1: "<int>",
        2**100: "<int>", Level.HIGH: "3",
    }
    for key, label in expected.items():
        assert heap.edge(table, table[key]) == [(KEY_REPR, label)], key


def test_labels_of_containers_instances_and_closures():
    shared = Probe(0)
    lst = [shared, "x"]
    tup = (None, shared)
    weird = {42: shared, "has space": lst, True: tup}
    slotted = SlottedProbe(shared, lst)
    st = {tup}

    def outer():
        captured_value = shared

        def inner():
            return captured_value
        return inner

    fn = outer()
    heap = capture()
    assert heap.edge(lst, shared) == [(INDEX, 0)]
    assert heap.edge(tup, shared) == [(INDEX, 1)]
    assert heap.edge(weird, shared) == [(KEY_REPR, "42")]
    assert heap.edge(weird, lst) == [(KEY_REPR, "<str len 9>")]
    assert heap.edge(weird, tup) == [(KEY_REPR, "True")]
    assert (KEY_OBJECT, 0) in heap.edge(weird, 42)
    assert heap.edge(slotted, shared) == [(ATTR, "left")]
    assert heap.edge(slotted, lst) == [(ATTR, "right")]
    assert heap.edge(slotted, SlottedProbe) == [(ATTR, "__class__")]
    assert heap.edge(st, tup) == [(SET_ITEM, 0)]
    assert heap.edge(fn, fn.__code__) == [(ATTR, "__code__")]
    assert heap.edge(fn, fn.__globals__) == [(ATTR, "__globals__")]
    assert heap.edge(fn, fn.__closure__) == [(ATTR, "__closure__")]
    cell = fn.__closure__[0]
    assert heap.edge(fn.__closure__, cell) == [(LOCAL, "captured_value")]
    assert heap.edge(cell, shared) == [(ATTR, "cell_contents")]
    assert heap.nodes[heap.node_of(fn)][5] == fn.__qualname__
    assert heap.edge(Probe, Probe.__dict__["__init__"]) == []  # via the type dict
    assert heap.edge(Probe, Probe.__mro__) == [(ATTR, "__mro__")]
    node = heap.nodes[heap.node_of(Probe)]
    assert node[3] & IS_TYPE and node[5] == "Probe"


class SlottedBase:
    __slots__ = ("slot",)


class OpenSubclass(SlottedBase):
    pass


class ProbeError(Exception):
    pass


class DictInSlots:
    __slots__ = ("__dict__", "kept")


class Gappy:
    def __init__(self):
        self.first = [7]
        self.gone = [8]
        self.last = [9]


def test_instance_edges_are_exact_in_every_attribute_layout():
    # The walk skips the traverse of plain class instances, whose labelled attributes
    # already name every reference; each storage of attributes must still give them all.
    plain = Probe([1])
    opened = Probe([2])
    opened_dict = opened.__dict__  # a materialised dict; on 3.13+ it shares inline values
    mixed = OpenSubclass()
    mixed.slot = [3]
    mixed.extra = [4]
    error = ProbeError([5])
    error.note = [6]
    in_slots = DictInSlots()
    in_slots.kept = [10]
    in_slots.free = [11]
    gappy = Gappy()
    del gappy.gone  # a hole among the stored values
    values = [plain.i, opened.i, mixed.slot, mixed.extra, error.args, error.note]
    values += [in_slots.kept, in_slots.free, gappy.first, gappy.last]
    heap = capture()

    def attributes(obj):
        edges = {label: dst for dst, kind, label in heap.edges_from(obj) if kind == ATTR}
        if "__dict__" in edges:
            dict_node = edges.pop("__dict__")
            assert dict_node == heap.node_of(obj.__dict__)
            # Besides KEY_OBJECT edges to the key strings themselves.
            edges.update(
                (label, dst) for dst, kind, label in heap.out.get(dict_node, []) if kind == KEY
            )
        return edges

    assert attributes(plain) == {"__class__": heap.node_of(Probe), "i": heap.node_of(plain.i)}
    assert attributes(opened) == {"__class__": heap.node_of(Probe), "i": heap.node_of(opened.i)}
    assert heap.edge(opened, opened_dict) == [(ATTR, "__dict__")]
    assert attributes(mixed) == {
        "__class__": heap.node_of(OpenSubclass),
        "slot": heap.node_of(mixed.slot),
        "extra": heap.node_of(mixed.extra),
    }
    assert attributes(error)["note"] == heap.node_of(error.note)
    assert attributes(in_slots) == {
        "__class__": heap.node_of(DictInSlots),
        "kept": heap.node_of(in_slots.kept),
        "free": heap.node_of(in_slots.free),
    }
    assert attributes(gappy) == {
        "__class__": heap.node_of(Gappy),
        "first": heap.node_of(gappy.first),
        "last": heap.node_of(gappy.last),
    }
    # Found by the exception's own traverse, beyond its attributes.
    assert heap.edge(error, error.args) == [(0, 0)]
    # Only labelled edges from plain instances: nothing the attributes missed.
    assert [e for e in heap.edges_from(plain) if e[1] != ATTR] == []
    assert [e for e in heap.edges_from(mixed) if e[1] != ATTR] == []
    assert [e for e in heap.edges_from(gappy) if e[1] != ATTR] == []
    # Each value's one reference is an edge, so none looks held from outside the graph.
    externals = {node for kind, node, _, _ in heap.roots if kind == EXTERNAL_ROOT}
    assert externals.isdisjoint(heap.node_of(v) for v in values)


def test_classes_with_the_same_name_in_two_modules_stay_apart():
    made = []
    for modname in ("hs_mod_a", "hs_mod_b"):
        ns = {"__name__": modname}
        exec("class Item:\n    pass\nitem = Item()\n", ns)
        made.append(ns["item"])
    heap = capture()
    names = {heap.type_name(item) for item in made}
    assert names == {"hs_mod_a.Item", "hs_mod_b.Item"}
    rows = hs.census()
    assert rows["hs_mod_a.Item"][0] == 1 and rows["hs_mod_b.Item"][0] == 1


def test_roots_of_each_kind(cache_module):
    ready = threading.Event()
    stop = threading.Event()

    def worker():
        ready.set()
        stop.wait(10)

    thread = threading.Thread(target=worker, name="hs-probe-worker", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        heap = capture()
    finally:
        stop.set()
        thread.join(10)
    by_kind = {}
    for kind, node, name, extra in heap.roots:
        by_kind.setdefault(kind, []).append((node, name, extra))
    modules = {name: node for node, name, _ in by_kind[MODULE_ROOT]}
    assert modules["hs_capture_probe_mod"] == heap.node_of(cache_module)
    assert modules["sys"] == heap.node_of(sys)
    thread_names = {name for _, name, _ in by_kind[THREAD_ROOT]}
    assert {"MainThread", "hs-probe-worker"} <= thread_names
    for node, _, _extra in by_kind[THREAD_ROOT]:
        assert heap.nodes[node][1] == "frame"
    assert by_kind[EXTERNAL_ROOT]
    for node, _, extra in by_kind[EXTERNAL_ROOT]:
        assert extra > 0 and not heap.nodes[node][3] & IMMORTAL
    interp = {name for _, name, _ in by_kind[INTERPRETER_ROOT]}
    assert interp == {"sys", "builtins"}


def test_refcount_explained_by_edges_is_not_an_external_root():
    # Referenced only by the dict: refcount 1, in-degree 1.
    holder = {"v": [1, 2, 3]}
    heap = capture()
    target = heap.node_of(holder["v"])
    externals = {node: extra for kind, node, _, extra in heap.roots if kind == EXTERNAL_ROOT}
    assert target not in externals
    assert heap.nodes[target][4] == 1


SECRET_HOLDER = []


def test_secret_strings_stay_out_of_snapshot_unless_opted_in(tmp_path):
    secret = "s3cr3t-" + uuid.uuid4().hex
    SECRET_HOLDER.append(secret)
    secret_bytes = ("b" + secret).encode()
    SECRET_HOLDER.append(secret_bytes)
    try:
        path = tmp_path / "plain.hsnap"
        hs.snapshot(str(path))
        raw = path.read_bytes()
        assert secret.encode() not in raw
        tables = hs._debug_load(str(path))
        assert all(secret not in s for s in tables["strings"])
        heap = Heap(tables)
        node = heap.nodes[heap.node_of(secret)]
        assert node[5] is None and node[6] == len(secret) and not node[3] & HAS_VALUE

        path_values = tmp_path / "values.hsnap"
        hs.snapshot(str(path_values), include_values=True)
        tables = hs._debug_load(str(path_values))
        assert tables["include_values"]
        assert secret in tables["strings"]
        heap = Heap(tables)
        node = heap.nodes[heap.node_of(secret)]
        assert node[5] == secret and node[3] & HAS_VALUE
        bnode = heap.nodes[heap.node_of(secret_bytes)]
        assert bnode[5] == secret_bytes.decode() and bnode[3] & HAS_VALUE
    finally:
        SECRET_HOLDER.clear()


def test_capture_leaves_gc_state_and_heap_alone():
    gc.enable()
    hs.capture_heap()
    assert gc.isenabled()
    gc.disable()
    try:
        hs.census()
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(3):
        hs.capture_heap()
    gc.collect()
    after = len(gc.get_objects())
    assert abs(after - before) < 50


def test_immortal_flag_on_312_plus():
    heap = capture()
    none_flags = heap.nodes[heap.node_of(None)][3] if id(None) in heap.index else None
    if sys.version_info >= (3, 12):
        assert none_flags is not None and none_flags & IMMORTAL
    elif none_flags is not None:
        assert not none_flags & IMMORTAL


def _frame_locals_case():
    """A worker thread and the caller of the capture each keep an object only in a local
    variable, several calls deep; a finished frame kept by a traceback keeps another."""
    ready = threading.Event()
    stop = threading.Event()
    held = {}

    def deep_worker():
        worker_only = Probe("worker")  # referenced by this frame alone
        held["worker"] = id(worker_only)
        ready.set()
        stop.wait(10)

    def worker():
        deep_worker()

    def failing():
        in_traceback = Probe("traceback")
        held["traceback"] = id(in_traceback)
        raise ValueError("kept")

    try:
        failing()
    except ValueError as exc:
        kept_traceback = exc.__traceback__
    thread = threading.Thread(target=worker, name="hs-locals-worker", daemon=True)
    thread.start()
    ready.wait(10)
    caller_only = Probe("caller")
    try:
        heap = capture()
    finally:
        stop.set()
        thread.join(10)
    return heap, held, caller_only, kept_traceback


def test_frame_locals_are_labelled_and_thread_stacks_hold_them():
    heap, held, caller_only, kept_traceback = _frame_locals_case()
    by_address = heap.index

    def holders(address):
        node = by_address[address]
        return [(src, kind, label) for src, outs in heap.out.items()
                for dst, kind, label in outs if dst == node]

    # The worker's local sits in a frame below the innermost one: reached through the
    # stack, labelled by name, and no longer an unexplained native reference.
    worker_holders = holders(held["worker"])
    assert (LOCAL, "worker_only") in [(k, lbl) for _, k, lbl in worker_holders]
    externals = {node for kind, node, _, _ in heap.roots if kind == EXTERNAL_ROOT}
    assert by_address[held["worker"]] not in externals
    frame = next(src for src, k, lbl in worker_holders if lbl == "worker_only")
    assert heap.nodes[frame][1] == "frame"
    # This test function's own frame (a caller of the capture) holds its local.
    assert (LOCAL, "caller_only") in [(k, lbl) for _, k, lbl in holders(id(caller_only))]
    # A finished frame kept by a traceback names its locals too.
    assert (LOCAL, "in_traceback") in [(k, lbl) for _, k, lbl in holders(held["traceback"])]
    assert kept_traceback is not None


def test_keys_that_are_not_labels_show_their_value_only_when_opted_in():
    target = Probe("v")
    markup_key = "<script>alert(1)</script>"
    holder = {markup_key: target, "it's \\ x": [target]}
    default = capture()
    assert default.edge(holder, target) == [(KEY_REPR, f"<str len {len(markup_key)}>")]
    # The tables of a capture are millions of Python objects: the second capture would
    # walk them all (and, opted in, store every short string among them).
    del default
    opted_in = capture(include_values=True)
    assert opted_in.edge(holder, target) == [(KEY_REPR, "'<script>alert(1)</script>'")]
    assert opted_in.edge(holder, holder["it's \\ x"]) == [(KEY_REPR, "'it\\'s \\\\ x'")]


def _graph_around(heap, objects):
    """Each object's node (type, size, flags, name, length) and out-edges by address."""
    view = {}
    for obj in objects:
        node = heap.nodes[heap.node_of(obj)]
        edges = sorted(
            (heap.nodes[dst][0], kind, repr(label))
            for dst, kind, label in heap.edges_from(obj)
        )
        view[id(obj)] = (node[1], node[2], node[3], node[5], node[6], edges)
    return view


def test_two_walking_threads_capture_the_same_graph_as_one(monkeypatch):
    import asyncio

    # Enough objects that both threads take part; one container so large that the thread
    # discovering its items must share them; futures of `_asyncio` (an extension module
    # where this interpreter has one) whose traverse the helper must leave to the GIL's
    # thread; a class, a module and a closure (handled by the GIL's thread too).
    payload = [Probe(i) for i in range(60_000)]
    by_key = {f"k{i}": (p, str(i)) for i, p in enumerate(payload)}
    slotted = [SlottedProbe(p, i) for i, p in enumerate(payload[:5_000])]
    loop = asyncio.new_event_loop()
    try:
        # Spread over the payload, so that both threads discover some. Struct sequences
        # too: CPython's own traverse of a static one (`asyncgen_hooks`, a new instance
        # per call) reads the interpreter state on 3.12, which the helper does not have.
        futures = [loop.create_future() for _ in range(2_000)]
        for i, future in enumerate(futures):
            future.set_result(payload[i])
            payload[30 * i].future = future
            payload[30 * i + 1].stat = os.stat(".")
            payload[30 * i + 2].hooks = sys.get_asyncgen_hooks()

        def outer():
            held = payload[7]

            def inner():
                return held
            return inner

        fn = outer()
        watched = [payload, by_key, Probe, sys.modules[__name__], fn, fn.__closure__[0],
                   *payload[:300], *slotted[:300], *futures, payload[31].stat,
                   payload[32].hooks,
                   *(by_key[f"k{i}"] for i in range(300))]
        views = {}
        for threads in (1, 2):
            monkeypatch.setenv("HEAPSIGHT_WALK_THREADS", str(threads))
            views[threads] = _graph_around(capture(), watched)
            summary = hs.snapshot(str(_tmp_file(threads)))
            assert summary["walk_threads"] == threads
        assert views[1] == views[2]
        future_edges = views[2][id(futures[3])][5]
        assert any(address == id(payload[3]) for address, _, _ in future_edges)
    finally:
        loop.close()


def _tmp_file(tag):
    import tempfile
    return os.path.join(tempfile.mkdtemp(), f"walk{tag}.hsnap")


@pytest.mark.parametrize("value", ["3", "two", "0"])
def test_walk_threads_setting_other_than_one_or_two_is_refused(monkeypatch, value):
    monkeypatch.setenv("HEAPSIGHT_WALK_THREADS", value)
    with pytest.raises(ValueError, match="HEAPSIGHT_WALK_THREADS must be 1 or 2"):
        hs.capture_heap()
    monkeypatch.delenv("HEAPSIGHT_WALK_THREADS")
    assert len(hs.capture_heap()) > 0
