"""The objgraph-style API, checked on heaps built by the tests with exact expectations."""

from __future__ import annotations

import gc
import io
import sys
import types
import xml.dom.minidom
from pathlib import Path

import heapsight
import pytest


class ApiProbe:
    pass


class SlotProbe:
    __slots__ = ("a", "b")


@pytest.fixture
def fake_app():
    """A module `hs_app` registered in sys.modules holding `_CACHE = {'k': UserSession()}`."""
    module = types.ModuleType("hs_app")
    exec(
        "class UserSession:\n"
        "    def __init__(self):\n"
        "        self.user = 'u42'\n"
        "_CACHE = {'k': UserSession()}\n",
        module.__dict__,
    )
    sys.modules["hs_app"] = module
    try:
        yield module
    finally:
        del sys.modules["hs_app"]
        module.__dict__.clear()
        gc.collect()


def test_typestats_counts_exactly():
    probes = [ApiProbe() for _ in range(1234)]
    slots = [SlotProbe() for _ in range(321)]
    stats = heapsight.typestats()
    assert stats[f"{__name__}.ApiProbe"] == 1234
    assert stats[f"{__name__}.SlotProbe"] == 321
    assert heapsight.count("ApiProbe") == 1234
    assert heapsight.count(f"{__name__}.ApiProbe") == 1234
    assert heapsight.typestats(shortnames=True)["ApiProbe"] >= 1234
    del probes, slots


def test_census_bytes_follow_getsizeof():
    probes = [ApiProbe() for _ in range(100)]
    count, nbytes = heapsight.census()[f"{__name__}.ApiProbe"]
    assert count == 100
    assert nbytes == sum(sys.getsizeof(p) for p in probes)


def test_typestats_agrees_with_objgraph_for_a_user_class():
    objgraph = pytest.importorskip("objgraph")
    probes = [ApiProbe() for _ in range(77)]
    ours = heapsight.typestats()[f"{__name__}.ApiProbe"]
    theirs = objgraph.typestats(shortnames=False)[f"{__name__}.ApiProbe"]
    assert ours == theirs == 77
    del probes


def test_growth_reports_new_instances_since_the_previous_call():
    peaks: dict[str, int] = {}
    heapsight.growth(limit=0, peak_stats=peaks)
    kept = [ApiProbe() for _ in range(250)]
    grown = heapsight.growth(limit=0, peak_stats=peaks)
    result = {name: (n, delta) for name, n, delta in grown}
    assert result[f"{__name__}.ApiProbe"][1] == 250
    out = io.StringIO()
    heapsight.show_growth(peak_stats=peaks, file=out)
    assert f"{__name__}.ApiProbe" not in out.getvalue()  # no new growth since
    del kept


def test_most_common_types_is_sorted():
    stats = heapsight.most_common_types(limit=5)
    assert len(stats) == 5
    assert [n for _, n in stats] == sorted((n for _, n in stats), reverse=True)
    out = io.StringIO()
    heapsight.show_most_common_types(limit=3, file=out)
    assert len(out.getvalue().splitlines()) == 3


def test_by_type_returns_the_live_objects():
    probes = [ApiProbe() for _ in range(10)]
    found = heapsight.by_type(f"{__name__}.ApiProbe")
    assert sorted(map(id, found)) == sorted(map(id, probes))
    assert len(heapsight.by_type("ApiProbe")) == 10


def test_find_backref_chain_returns_objects_from_the_module(fake_app):
    session = fake_app._CACHE["k"]
    chain = heapsight.find_backref_chain(session, heapsight.is_proper_module)
    assert chain[0] is fake_app
    assert chain[-1] is session
    assert fake_app._CACHE in chain
    assert len(chain) == 4  # module, its __dict__, _CACHE, the session


def test_find_backref_chain_without_a_match_returns_the_object():
    lonely = ApiProbe()
    assert heapsight.find_backref_chain(lonely, lambda o: False) == [lonely]


def test_path_to_gives_readable_labelled_steps(fake_app):
    session = fake_app._CACHE["k"]
    assert heapsight.path_to(session) == ["module hs_app", "._CACHE", "['k']", "hs_app.UserSession"]


def test_show_backrefs_writes_dot_svg_and_png(fake_app, tmp_path: Path):
    session = fake_app._CACHE["k"]
    dot = heapsight.show_backrefs([session], max_depth=4)
    assert dot is not None and dot.lstrip().startswith("digraph")
    assert "UserSession" in dot
    heapsight.show_backrefs([session], max_depth=4, filename=str(tmp_path / "why.svg"))
    svg = (tmp_path / "why.svg").read_text()
    xml.dom.minidom.parseString(svg)  # well-formed
    assert "hs_app.UserSession" in svg and "_CACHE" in svg
    heapsight.show_backrefs([session], max_depth=4, filename=str(tmp_path / "why.png"))
    assert (tmp_path / "why.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heapsight.show_refs([fake_app._CACHE], max_depth=2, filename=str(tmp_path / "refs.dot"))
    assert "UserSession" in (tmp_path / "refs.dot").read_text()


def test_show_backrefs_rejects_unknown_extensions(tmp_path: Path):
    with pytest.raises(ValueError, match="dot, .svg or .png"):
        heapsight.show_backrefs([ApiProbe()], filename=str(tmp_path / "x.pdf"))
