"""Native per-version decoders checked against the interpreter itself.

`_debug_sizeof` must equal `sys.getsizeof`, `_debug_attrs` must equal `vars()` plus filled
`__slots__` without materialising any dict, and `_debug_type_name` must equal
`__module__.__qualname__`. Run under every supported interpreter.
"""

from __future__ import annotations

import array
import collections
import ctypes
import functools
import gc
import sys
import types
import weakref

import pytest
from heapsight import _heapsight as native

pytestmark = pytest.mark.skipif(
    not native._debug_layout_supported(), reason="object layouts of this build are not modelled"
)

PY = sys.version_info[:2]


# ------------------------------------------------------------------------------------------
# helpers


def cache_utf8(text: str) -> str:
    """Makes CPython store a UTF-8 copy inside `text` (what PyUnicode_AsUTF8 does)."""
    size = ctypes.c_ssize_t()
    as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8AndSize
    as_utf8.restype = ctypes.c_char_p
    as_utf8.argtypes = [ctypes.py_object, ctypes.POINTER(ctypes.c_ssize_t)]
    as_utf8(text, ctypes.byref(size))
    return text


def cache_wstr(text: str) -> str:
    """3.9-3.11 only: makes CPython store a wchar_t copy inside `text`."""
    as_unicode = ctypes.pythonapi.PyUnicode_AsUnicode
    as_unicode.restype = ctypes.c_void_p
    as_unicode.argtypes = [ctypes.py_object]
    as_unicode(text)
    return text


def fresh(text: str) -> str:
    """A new str object equal to `text` (not the interned constant)."""
    return "".join([text[:1], text[1:]]) if text else ""


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyList(list):
    pass


class MyDict(dict):
    pass


class MySet(set):
    pass


class MyBytes(bytes):
    pass


class MyTuple(tuple):
    pass


class Plain:
    pass


class WithInit:
    def __init__(self):
        self.a = 1
        self.b = "two"
        self.c = [3]


class Slotted:
    __slots__ = ("x", "y", "__private")

    def __init__(self):
        self.x = 1
        self.__private = "hidden"


class SlottedChild(Slotted):
    __slots__ = ("z",)

    def __init__(self):
        super().__init__()
        self.z = "zed"


class SlotsAndDict:
    __slots__ = ("s", "__dict__")

    def __init__(self):
        self.s = "slot"
        self.d = "dict"


class Meta(type):
    pass


class WithMeta(metaclass=Meta):
    pass


class OverridesSizeof:
    def __sizeof__(self):
        return 12345


class ListOverridesSizeof(list):
    def __sizeof__(self):
        return 54321


class InheritsOverride(OverridesSizeof):
    pass


class Outer:
    class Inner:
        pass


def make_closure_cell():
    value = object()

    def inner():
        return value

    return inner.__closure__[0]


def generator():
    yield 1


def started_generator():
    gen = generator()
    next(gen)
    return gen


def finished_generator():
    gen = generator()
    list(gen)
    return gen


async def async_generator():
    yield 1


def finished_frame():
    try:
        raise ValueError("x")
    except ValueError as error:
        return error.__traceback__.tb_frame


def closure_frame():
    captured = [1]

    def inner():
        return sys._getframe(), captured

    return inner()[0]


async def coroutine_function():
    return 1


def hot_function(value):
    total = 0
    for i in range(3):
        total += value + i
    return total


def warmed_up_code():
    """A code object that ran often enough for the opcache (3.9/3.10) or adaptive
    specialisation (3.11+) to kick in."""
    for i in range(3000):
        hot_function(i)
    return hot_function.__code__


def grown_list():
    items = []
    for i in range(17):
        items.append(i)
    return items


def shrunk_list():
    items = list(range(100))
    del items[10:]
    return items


def dict_with_deletions():
    d = {i: i for i in range(50)}
    for i in range(0, 50, 2):
        del d[i]
    return d


def str_dict_with_deletions():
    d = {f"k{i}": i for i in range(40)}
    for i in range(0, 40, 3):
        del d[f"k{i}"]
    return d


def grown_bytearray():
    buf = bytearray()
    for i in range(100):
        buf.append(i)
    return buf


def set_with_removals():
    s = set(range(200))
    for i in range(150):
        s.discard(i)
    return s


def materialised_instance_dict():
    obj = WithInit()
    return vars(obj)


def split_dict_copy():
    return dict(vars(WithInit()))


SIZE_CASES = {
    "int 0": lambda: 0,
    "int 1": lambda: 1,
    "int -1": lambda: -1,
    "int 2**30": lambda: 2**30,
    "int -(2**100)": lambda: -(2**100),
    "int 10**500": lambda: 10**500,
    "bool True": lambda: True,
    "bool False": lambda: False,
    "int subclass": lambda: MyInt(7),
    "int subclass big": lambda: MyInt(2**200),
    "float": lambda: 1.5,
    "complex": lambda: 2j,
    "str empty": lambda: "",
    "str ascii": lambda: fresh("hello world"),
    "str ascii long": lambda: fresh("x" * 10000),
    "str latin1": lambda: fresh("caf\xe9 au lait"),
    "str ucs2": lambda: fresh("\u20ac uro \u0416"),
    "str ucs4": lambda: fresh("smile \U0001f600"),
    "str latin1 utf8 cached": lambda: cache_utf8(fresh("na\xefve")),
    "str ucs2 utf8 cached": lambda: cache_utf8(fresh("\u0416\u0416\u0416")),
    "str ucs4 utf8 cached": lambda: cache_utf8(fresh("\U0001f600!")),
    "str ascii utf8 cached": lambda: cache_utf8(fresh("plain")),
    "str subclass ascii": lambda: MyStr("abc"),
    "str subclass ucs2": lambda: MyStr("\u20ac\u20ac"),
    "str subclass cached": lambda: cache_utf8(MyStr("\xe9t\xe9")),
    "bytes empty": lambda: b"",
    "bytes": lambda: b"abc" * 100,
    "bytes subclass": lambda: MyBytes(b"xyz"),
    "bytearray empty": lambda: bytearray(),
    "bytearray sized": lambda: bytearray(1000),
    "bytearray grown": grown_bytearray,
    "list empty": lambda: [],
    "list literal": lambda: [1, 2, 3],
    "list grown": grown_list,
    "list shrunk": shrunk_list,
    "list big": lambda: list(range(10000)),
    "list subclass": lambda: MyList([1, 2]),
    "tuple empty": lambda: (),
    "tuple": lambda: (1, "a", None),
    "tuple big": lambda: tuple(range(1000)),
    "tuple subclass": lambda: MyTuple((1, 2)),
    "dict empty": lambda: {},
    "dict small": lambda: {1: 2},
    "dict str keys": lambda: {"a": 1, "b": 2, "c": 3},
    "dict big": lambda: {i: i for i in range(1000)},
    "dict huge": lambda: dict.fromkeys(range(100000)),
    "dict deleted": dict_with_deletions,
    "dict str deleted": str_dict_with_deletions,
    "dict cleared": lambda: (lambda d: (d.clear(), d)[1])({i: i for i in range(100)}),
    "dict materialised instance dict": materialised_instance_dict,
    "dict copy of split dict": split_dict_copy,
    "dict subclass": lambda: MyDict(a=1),
    "set empty": lambda: set(),
    "set small": lambda: {1, 2, 3},
    "set big": lambda: set(range(1000)),
    "set removals": set_with_removals,
    "set subclass": lambda: MySet([1]),
    "frozenset empty": lambda: frozenset(),
    "frozenset": lambda: frozenset("abcdefghijkl"),
    "type int": lambda: int,
    "type dict": lambda: dict,
    "type object": lambda: object,
    "type user": lambda: WithInit,
    "type slotted": lambda: Slotted,
    "type with metaclass": lambda: WithMeta,
    "metaclass": lambda: Meta,
    "object": lambda: object(),
    "instance plain": lambda: Plain(),
    "instance with attrs": lambda: WithInit(),
    "instance slotted": lambda: Slotted(),
    "instance slots and dict": lambda: SlotsAndDict(),
    "module": lambda: sys,
    "function": lambda: grown_list,
    "lambda": lambda: lambda: 0,
    "builtin function": lambda: len,
    "bound method": lambda: WithInit().__init__,
    "builtin method": lambda: [].append,
    "cell": make_closure_cell,
    "range": lambda: range(10),
    "slice": lambda: slice(1, 2, 3),
    "property": lambda: property(lambda self: 0),
    "staticmethod": lambda: staticmethod(len),
    "classmethod": lambda: classmethod(len),
    "memoryview": lambda: memoryview(b"abc"),
    "weakref": lambda: weakref.ref(WithInit),
    "list iterator": lambda: iter([1, 2]),
    "exception": lambda: ValueError("x"),
    "mappingproxy": lambda: WithInit.__dict__,
    "simple namespace": lambda: types.SimpleNamespace(a=1),
    "partial": lambda: functools.partial(len),
    "None": lambda: None,
    "frame running": lambda: sys._getframe(),
    "frame finished": finished_frame,
    "frame of closure": closure_frame,
    "generator new": lambda: generator(),
    "generator started": started_generator,
    "generator finished": finished_generator,
    "generator frame": lambda: started_generator().gi_frame,
    "async generator": lambda: async_generator(),
    "code": lambda: grown_list.__code__,
    "code with cells": lambda: make_closure_cell.__code__,
    "code warmed up": warmed_up_code,
    "code of module": lambda: compile("x = 1\nfor i in range(3):\n    x += i", "<m>", "exec"),
    "Ellipsis": lambda: ...,
}

# C types with their own __sizeof__ that the native sizer may leave to `__sizeof__`.
MAYBE_NOT_NATIVE = {
    "deque": lambda: collections.deque(range(100)),
    "ordered dict": lambda: collections.OrderedDict(a=1),
    "array": lambda: array.array("i", range(10)),
}


@pytest.mark.parametrize("name", sorted(SIZE_CASES))
def test_native_size_equals_getsizeof(name):
    obj = SIZE_CASES[name]()
    native_size = native._debug_sizeof(obj)
    assert native_size == sys.getsizeof(obj), name


def test_coroutine_size_equals_getsizeof():
    coro = coroutine_function()
    try:
        assert native._debug_sizeof(coro) == sys.getsizeof(coro)
    finally:
        coro.close()


@pytest.mark.parametrize("name", sorted(MAYBE_NOT_NATIVE))
def test_native_size_is_exact_or_deferred(name):
    obj = MAYBE_NOT_NATIVE[name]()
    native_size = native._debug_sizeof(obj)
    assert native_size is None or native_size == sys.getsizeof(obj)


def test_utf8_cache_changes_size_and_is_seen():
    text = fresh("\u0416\u0416\u0416\u0416")
    before = native._debug_sizeof(text)
    assert before == sys.getsizeof(text)
    cache_utf8(text)
    assert native._debug_sizeof(text) == sys.getsizeof(text) == before + 9


@pytest.mark.skipif(PY >= (3, 12), reason="wstr was removed in 3.12")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wstr_cache_is_counted():
    for text in (fresh("ascii text"), fresh("caf\xe9"), fresh("\u20ac\u20ac"), MyStr("sub")):
        cache_wstr(text)
        assert native._debug_sizeof(text) == sys.getsizeof(text), repr(text)


def test_native_size_reads_only_and_calls_nothing():
    """Types overriding `__sizeof__` in Python (directly or by inheritance) are deferred."""
    assert native._debug_sizeof(OverridesSizeof()) is None
    assert native._debug_sizeof(InheritsOverride()) is None
    assert native._debug_sizeof(ListOverridesSizeof([1])) is None


def test_sizeof_override_added_later_is_noticed():
    class Late:
        pass

    obj = Late()
    assert native._debug_sizeof(obj) == sys.getsizeof(obj)
    Late.__sizeof__ = lambda self: 1
    assert native._debug_sizeof(obj) is None


def test_split_dicts_of_many_instances():
    instances = [WithInit() for _ in range(5)]
    for index, obj in enumerate(instances):
        setattr(obj, f"extra{index}", index)
    for obj in instances:
        assert native._debug_sizeof(vars(obj)) == sys.getsizeof(vars(obj))


# ------------------------------------------------------------------------------------------
# attributes


HEAPTYPE = 1 << 9


def declared_slots(cls) -> list[str]:
    """The attribute names a class body's `__slots__` created (mangled like CPython does)."""
    slots = vars(cls).get("__slots__", ())
    slots = (slots,) if isinstance(slots, str) else slots
    names = []
    for name in slots:
        if name in ("__dict__", "__weakref__"):
            continue
        if name.startswith("__") and not name.endswith("__"):
            name = f"_{cls.__name__.lstrip('_')}{name}"
        names.append(name)
    return names


def slot_values(obj) -> dict:
    """Filled `__slots__` of the classes defined in Python along the MRO."""
    values = {}
    for cls in type(obj).__mro__:
        if not cls.__flags__ & HEAPTYPE:
            continue
        for name in declared_slots(cls):
            descriptor = vars(cls).get(name)
            if not isinstance(descriptor, types.MemberDescriptorType):
                continue
            try:
                values[name] = descriptor.__get__(obj, type(obj))
            except AttributeError:
                continue
    return values


def has_materialised_dict(obj) -> bool:
    """Independent of the decoder: tp_traverse of 3.11+ instances visits the dict object only
    once it exists (before that it visits the values)."""
    return any(type(r) is dict and r is not type(obj).__dict__ for r in gc.get_referents(obj))


def plain_with_attrs():
    obj = Plain()
    obj.first = 1
    obj.second = "2"
    return obj


def attrs_added_later():
    obj = WithInit()
    obj.late = "late"
    obj.later = ["later"]
    return obj


def attrs_deleted():
    obj = WithInit()
    del obj.b
    return obj


def attrs_deleted_and_readded():
    obj = WithInit()
    del obj.a
    obj.a = "back"
    return obj


def many_attrs():
    obj = Plain()
    for index in range(60):
        setattr(obj, f"attr_{index}", index)
    return obj


def second_of_two_shapes():
    first = WithInit()
    first.only_first = 1
    second = WithInit()
    second.only_second = 2
    return second


def empty_instance():
    return Plain()


def slotted_partial():
    obj = Slotted()
    obj.y = "why"
    return obj


def dict_subclass_instance():
    obj = MyDict(key="item")
    obj.attribute = "attr"
    return obj


def list_subclass_instance():
    obj = MyList([1])
    obj.attribute = "attr"
    return obj


def int_subclass_instance():
    obj = MyInt(2**100)
    obj.attribute = "attr"
    return obj


def str_subclass_instance():
    obj = MyStr("text")
    obj.attribute = "attr"
    return obj


def tuple_subclass_instance():
    obj = MyTuple((1, 2, 3))
    obj.attribute = "attr"
    return obj


def non_str_key():
    obj = WithInit()
    vars(obj)[42] = "int key"
    return obj


def function_with_attrs():
    def f():
        return 0

    f.marker = "marked"
    return f


def module_object():
    module = types.ModuleType("hs_probe_module")
    module.value = 1
    return module


# Instances whose attributes may live outside a dict object on 3.11+.
UNMATERIALISED_CASES = {
    "plain with attrs": plain_with_attrs,
    "init attrs": WithInit,
    "added later": attrs_added_later,
    "deleted": attrs_deleted,
    "deleted and re-added": attrs_deleted_and_readded,
    "two shapes": second_of_two_shapes,
    "empty": empty_instance,
    "slotted": Slotted,
    "slotted partial": slotted_partial,
    "slotted child": SlottedChild,
    "metaclass instance": lambda: WithMeta(),
}

# Objects that own (or may own, depending on the version) a real dict object.
MATERIALISED_CASES = {
    "slots and dict": SlotsAndDict,
    "dict subclass": dict_subclass_instance,
    "list subclass": list_subclass_instance,
    "int subclass": int_subclass_instance,
    "str subclass": str_subclass_instance,
    "tuple subclass": tuple_subclass_instance,
    "many attrs": many_attrs,
    "vars() called": lambda: (lambda o: (vars(o), o)[1])(WithInit()),
    "__dict__ read then added": lambda: (lambda o: (o.__dict__, setattr(o, "after", 1), o)[2])(
        WithInit()
    ),
    "non-str key": non_str_key,
    "function": function_with_attrs,
    "module": module_object,
    "simple namespace": lambda: types.SimpleNamespace(a=1, b=2),
    "exception": lambda: (lambda e: (setattr(e, "note", "n"), e)[1])(ValueError("v")),
}


def check_attrs(obj, expect_materialised: bool | None):
    had_dict_before = has_materialised_dict(obj)
    pairs = native._debug_attrs(obj)
    assert pairs is not None, native._debug_attr_source(obj)
    if PY >= (3, 11):
        assert has_materialised_dict(obj) == had_dict_before, "decoding created a dict"
    if expect_materialised is False and PY >= (3, 11):
        assert not had_dict_before
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), names
    decoded = dict(pairs)
    own = vars(obj) if hasattr(obj, "__dict__") else {}
    expected = {**own, **slot_values(obj)}
    assert decoded == expected
    assert all(decoded[name] is expected[name] for name in expected)
    dict_names = [name for name in names if name in own]
    assert dict_names == list(own)


@pytest.mark.parametrize("name", sorted(UNMATERIALISED_CASES))
def test_attrs_without_materialising(name):
    obj = UNMATERIALISED_CASES[name]()
    check_attrs(obj, expect_materialised=False)


@pytest.mark.parametrize("name", sorted(MATERIALISED_CASES))
def test_attrs_of_materialised_dicts(name):
    obj = MATERIALISED_CASES[name]()
    check_attrs(obj, expect_materialised=None)


@pytest.mark.skipif(PY < (3, 11), reason="instances always own a dict before 3.11")
def test_values_are_decoded_in_place():
    obj = WithInit()
    assert native._debug_attr_source(obj) == "values"
    assert native._debug_dict_of(obj) is None
    size_before = sys.getsizeof(obj)
    assert dict(native._debug_attrs(obj)) == {"a": 1, "b": "two", "c": [3]}
    assert native._debug_dict_of(obj) is None
    assert sys.getsizeof(obj) == size_before
    assert not has_materialised_dict(obj)
    materialised = vars(obj)
    assert native._debug_dict_of(obj) is materialised
    assert native._debug_attr_source(obj) == "dict"


def test_dict_of_returns_existing_dict():
    obj = many_attrs()
    assert native._debug_dict_of(obj) is obj.__dict__
    assert native._debug_dict_of(Slotted()) is None
    assert native._debug_dict_of(42) is None


def test_attr_sources():
    assert native._debug_attr_source(Slotted()) == "slots"
    assert native._debug_attr_source(object()) == "empty"
    assert native._debug_attr_source(many_attrs()) == "dict"


# ------------------------------------------------------------------------------------------
# type names and immortality


@pytest.mark.parametrize(
    "obj, expected",
    [
        (collections.OrderedDict(), "collections.OrderedDict"),
        ({}, "dict"),
        (1, "int"),
        (None, "NoneType"),
        (Outer.Inner(), f"{__name__}.Outer.Inner"),
        (WithMeta(), f"{__name__}.WithMeta"),
        (WithMeta, f"{__name__}.Meta"),
        (int, "type"),
        (collections.deque(), "collections.deque"),
        (weakref.ref(Plain), None),
    ],
)
def test_type_names(obj, expected):
    tp = type(obj)
    module = tp.__module__
    reference = tp.__qualname__ if module == "builtins" else f"{module}.{tp.__qualname__}"
    assert native._debug_type_name(obj) == reference
    if expected is not None:
        assert native._debug_type_name(obj) == expected


def test_nested_class_name_is_qualified():
    assert native._debug_type_name(Outer.Inner()).endswith("test_shims.Outer.Inner")


def test_type_name_of_class_created_elsewhere():
    cls = type("Dynamic", (), {"__module__": "some.where", "__qualname__": "Holder.Dynamic"})
    assert native._debug_type_name(cls()) == "some.where.Holder.Dynamic"
    unicode_cls = type("Caf\xe9\u20ac", (), {"__module__": "m\xfcnchen"})
    assert native._debug_type_name(unicode_cls()) == "m\xfcnchen.Caf\xe9\u20ac"


@pytest.mark.skipif(PY < (3, 12), reason="immortal objects exist from 3.12")
def test_immortal_objects():
    assert native._debug_is_immortal(None)
    assert native._debug_is_immortal(True)
    assert native._debug_is_immortal(1)
    assert native._debug_is_immortal(int)
    assert not native._debug_is_immortal(object())
    assert not native._debug_is_immortal([])
    assert not native._debug_is_immortal(10**100)


@pytest.mark.skipif(PY >= (3, 12), reason="immortal objects exist from 3.12")
def test_nothing_is_immortal_before_312():
    assert not native._debug_is_immortal(None)
    assert not native._debug_is_immortal(int)


def test_runtime_version():
    assert native._debug_runtime_version() == PY


# ------------------------------------------------------------------------------------------
# whole-heap sweeps: every object the interpreter tracks, whatever its type


def heap_sample():
    """Every gc-tracked object plus the untracked leaves they refer to."""
    tracked = gc.get_objects()
    seen = {id(o) for o in tracked}
    sample = list(tracked)
    for obj in tracked:
        for referent in gc.get_referents(obj):
            if id(referent) not in seen:
                seen.add(id(referent))
                sample.append(referent)
    return sample


def test_native_size_over_the_whole_heap():
    mismatches = []
    native_count = 0
    sample = heap_sample()
    for obj in sample:
        native_size = native._debug_sizeof(obj)
        if native_size is None:
            continue
        native_count += 1
        try:
            expected = sys.getsizeof(obj)
        except Exception:
            continue
        if native_size != expected:
            mismatches.append((native._debug_type_name(obj), native_size, expected))
    assert mismatches == []
    assert native_count > 0.9 * len(sample)


def test_attrs_over_the_whole_heap():
    mismatches = []
    checked = 0
    for obj in gc.get_objects():
        if not type(obj).__flags__ & HEAPTYPE or isinstance(obj, type):
            continue
        had_dict_before = has_materialised_dict(obj)
        pairs = native._debug_attrs(obj)
        if pairs is None:
            mismatches.append((native._debug_type_name(obj), "unknown layout"))
            continue
        if PY >= (3, 11) and has_materialised_dict(obj) != had_dict_before:
            mismatches.append((native._debug_type_name(obj), "materialised"))
            continue
        try:
            # Not vars(): proxies such as GenericAlias forward `__dict__` to another object.
            own = dict(object.__getattribute__(obj, "__dict__"))
        except (AttributeError, TypeError):
            own = {}
        expected = {**own, **slot_values(obj)}
        checked += 1
        if dict(pairs) != expected and any(
            dict(pairs).get(k, pairs) is not v for k, v in expected.items()
        ):
            mismatches.append((native._debug_type_name(obj), sorted(map(str, expected)), pairs))
    assert mismatches == []
    assert checked > 100


def test_size_sweep_matches_single_probes():
    sample = heap_sample()
    count, total, attributes = native._debug_size_sweep(sample)
    sizes = [native._debug_sizeof(o) for o in sample]
    native_sizes = [s for s in sizes if s is not None]
    assert count == len(native_sizes)
    assert total == sum(native_sizes)
    assert attributes > 0
