"""`heapsight graph` and `heapsight export --format chrome` on a snapshot of a real leak.

The graph must be the one `show_backrefs` draws for the same objects (one builder serves
both), and the Chrome export must be readable by a real consumer of the V8 format (Meta's
memlab) with the same retainers, dominators and retained sizes heapsight computes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

N_LEAKED = 150
TYPE = "leakapp.Session"
CONSUMER = Path(__file__).parent / "chrome_consumer"

LEAKAPP = textwrap.dedent(
    """
    class Session:
        def __init__(self, user):
            self.user = user
            self.history = bytearray(64)


    _SESSIONS = {}


    def login(user):
        _SESSIONS[user] = Session(user)
    """
)

# Leaks, snapshots, then draws three of the leaked sessions with show_backrefs (svg and dot)
# and records their addresses so that `heapsight graph --address` can draw the same ones.
LEAK_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    import heapsight
    import leakapp

    for i in range(N_LEAKED):
        leakapp.login("u%d" % i)
    gc.collect()
    heapsight.snapshot(sys.argv[1])
    picks = [leakapp._SESSIONS[k] for k in ("u0", "u75", "u149")]
    heapsight.show_backrefs(picks, filename=sys.argv[2])
    heapsight.show_backrefs(picks, filename=sys.argv[3])
    with open(sys.argv[4], "w") as f:
        json.dump([id(p) for p in picks], f)
    """
).replace("N_LEAKED", str(N_LEAKED))


def heapsight_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heapsight", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    done = heapsight_cli(*args)
    assert done.returncode == 0, done.stderr
    return done


def failed(*args: str) -> str:
    done = heapsight_cli(*args)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr
    return done.stderr


class Leak:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.snapshot = workdir / "leak.hsnap"
        self.api_svg = workdir / "api.svg"
        self.api_dot = workdir / "api.dot"
        self.addresses: list[int] = json.loads((workdir / "picks.json").read_text())


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> Leak:
    workdir = tmp_path_factory.mktemp("leak")
    (workdir / "leakapp.py").write_text(LEAKAPP)
    env = dict(os.environ, PYTHONPATH=str(workdir))
    subprocess.run(
        [
            sys.executable,
            "-c",
            LEAK_SCRIPT,
            str(workdir / "leak.hsnap"),
            str(workdir / "api.svg"),
            str(workdir / "api.dot"),
            str(workdir / "picks.json"),
        ],
        check=True,
        cwd=workdir,
        env=env,
        timeout=120,
    )
    return Leak(workdir)


# --- graph ---------------------------------------------------------------------------------

DOT_NODE = re.compile(r'^\s*n(\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
DOT_EDGE = re.compile(r'^\s*n(\d+) -> n(\d+)(?: \[label="((?:[^"\\]|\\.)*)"\])?;$')


def dot_structure(text: str) -> tuple[Counter[str], Counter[tuple[str, str, str]]]:
    """Nodes by label (ids differ between captures) and edges as (from, label, to)."""
    labels: dict[str, str] = {}
    nodes: Counter[str] = Counter()
    edges: Counter[tuple[str, str, str]] = Counter()
    for line in text.splitlines():
        if m := DOT_NODE.match(line):
            kind = "target" if "penwidth=2.5" in m.group(3) else "root" if m.group(3) else ""
            labels[m.group(1)] = f"{m.group(2)} {kind}".strip()
            nodes[labels[m.group(1)]] += 1
        elif m := DOT_EDGE.match(line):
            edges[(labels[m.group(1)], m.group(3) or "", labels[m.group(2)])] += 1
    return nodes, edges


SVG = "{http://www.w3.org/2000/svg}"


def svg_structure(path: Path) -> tuple[Counter[str], Counter[tuple[str, str]], Counter[str]]:
    """Nodes (class and text lines), edges resolved to the nodes their ends touch, and edge
    labels: what the picture shows, independent of layout coordinates."""
    root = ET.parse(path).getroot()
    boxes: list[tuple[str, float, float, float, float]] = []
    nodes: Counter[str] = Counter()
    for group in root.iter(f"{SVG}g"):
        if "node" not in (group.get("class") or "").split():
            continue
        rect = group.find(f"{SVG}rect")
        assert rect is not None
        text = " | ".join(t.text or "" for t in group.findall(f"{SVG}text"))
        label = f"{group.get('class')}: {text}"
        nodes[label] += 1
        x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
        boxes.append(
            (label, x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0)))
        )

    def nearest(px: float, py: float) -> str:
        def distance(box: tuple[str, float, float, float, float]) -> float:
            _, x0, y0, x1, y1 = box
            return max(x0 - px, 0, px - x1) + max(y0 - py, 0, py - y1)

        return min(boxes, key=distance)[0]

    edges: Counter[tuple[str, str]] = Counter()
    labels: Counter[str] = Counter()
    edge_group = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "edges")
    for path_el in edge_group.findall(f"{SVG}path"):
        points = re.findall(r"(-?[\d.]+),(-?[\d.]+)", path_el.get("d", ""))
        (x0, y0), (x1, y1) = points[0], points[-1]
        edges[(nearest(float(x0), float(y0)), nearest(float(x1), float(y1)))] += 1
    for text in edge_group.findall(f"{SVG}text"):
        labels[text.text or ""] += 1
    return nodes, edges, labels


def test_graph_formats_show_the_type_its_holder_and_the_root_module(leak: Leak) -> None:
    out = leak.workdir
    done = ok("graph", str(leak.snapshot), "Session", "-o", str(out / "g.svg"))
    assert f"3 of {N_LEAKED} {TYPE} instances" in done.stdout
    ok("graph", str(leak.snapshot), TYPE, "-o", str(out / "g.png"))
    ok("graph", str(leak.snapshot), TYPE, "-o", str(out / "g.dot"))

    dot = (out / "g.dot").read_text()
    nodes, edges = dot_structure(dot)
    targets = sum(
        n for label, n in nodes.items() if label.startswith(TYPE) and label.endswith("target")
    )
    assert targets == 3
    assert any(label.startswith("module\\nleakapp") and label.endswith("root") for label in nodes)
    edge_labels = {label for _, label, _ in edges}
    assert "['_SESSIONS']" in edge_labels and ".__dict__" in edge_labels
    assert any(re.fullmatch(r"\['u\d+'\]", label) for label in edge_labels)

    svg_nodes, svg_edges, svg_labels = svg_structure(out / "g.svg")
    assert sum(n for label, n in svg_nodes.items() if label.startswith(f"node target: {TYPE}")) == 3
    assert any(label.startswith("node root: module | leakapp") for label in svg_nodes)
    assert svg_labels["['_SESSIONS']"] == 1

    png = (out / "g.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 100 and height > 100

    # Without -o the dot source is printed; --refs draws what the instances hold instead.
    printed = ok("graph", str(leak.snapshot), TYPE, "-n", "1")
    assert printed.stdout.startswith("digraph heapsight {")
    forward = ok("graph", str(leak.snapshot), TYPE, "-n", "1", "--refs", "--max-depth", "1")
    assert ".history" in forward.stdout and "bytearray" in forward.stdout
    summary = json.loads(
        ok("graph", str(leak.snapshot), TYPE, "--json", "-o", str(out / "j.svg")).stdout
    )
    assert summary["instances"] == N_LEAKED and summary["format"] == "svg"


def test_cli_and_show_backrefs_draw_the_same_graph(leak: Leak) -> None:
    picks = [arg for a in leak.addresses for arg in ("--address", hex(a))]
    cli_svg, cli_dot = leak.workdir / "cli.svg", leak.workdir / "cli.dot"
    ok("graph", str(leak.snapshot), TYPE, *picks, "-o", str(cli_svg))
    ok("graph", str(leak.snapshot), TYPE, *picks, "-o", str(cli_dot))

    cli_nodes, cli_edges = dot_structure(cli_dot.read_text())
    api_nodes, api_edges = dot_structure(leak.api_dot.read_text())
    assert cli_nodes == api_nodes
    assert cli_edges == api_edges
    assert len(cli_edges) >= 6  # three keys, _SESSIONS, and the module dict's referrers

    assert svg_structure(cli_svg) == svg_structure(leak.api_svg)


def test_graph_errors_are_clear(leak: Leak) -> None:
    typo = failed("graph", str(leak.snapshot), "Sesion", "-o", str(leak.workdir / "x.svg"))
    assert "did you mean" in typo and TYPE in typo
    extension = failed("graph", str(leak.snapshot), TYPE, "-o", str(leak.workdir / "x.jpg"))
    assert ".svg" in extension and "--format" in extension
    garbage = leak.workdir / "garbage.hsnap"
    garbage.write_bytes(b"this is not a snapshot")
    unreadable = failed("graph", str(garbage), TYPE, "-o", str(leak.workdir / "x.svg"))
    assert "cannot read snapshot" in unreadable
    missing = failed("graph", str(leak.workdir / "missing.hsnap"), TYPE)
    assert "missing.hsnap" in missing
    address = failed("graph", str(leak.snapshot), TYPE, "--address", "0x10")
    assert "0x10" in address
    assert not (leak.workdir / "x.svg").exists()
    png_to_terminal = failed("graph", str(leak.snapshot), TYPE, "--format", "png")
    assert "-o" in png_to_terminal


# --- chrome export -------------------------------------------------------------------------


def test_export_errors_are_clear(leak: Leak) -> None:
    garbage = leak.workdir / "garbage.hsnap"
    garbage.write_bytes(b"this is not a snapshot")
    out = leak.workdir / "x.heapsnapshot"
    assert "cannot read snapshot" in failed("export", str(garbage), "-o", str(out))
    missing_dir = leak.workdir / "no" / "such" / "dir" / "x.heapsnapshot"
    assert "cannot write" in failed("export", str(leak.snapshot), "-o", str(missing_dir))
    unknown = failed("export", str(leak.snapshot), "--format", "hprof", "-o", str(out))
    assert "chrome" in unknown
    itself = failed("export", str(leak.snapshot), "-o", str(leak.snapshot))
    assert "is the snapshot being exported" in itself
    assert not out.exists()
    assert leak.snapshot.read_bytes()[:4] != b"{"


@pytest.fixture(scope="module")
def chrome(leak: Leak) -> Path:
    out = leak.workdir / "leak.heapsnapshot"
    summary = json.loads(
        ok("export", str(leak.snapshot), "--format", "chrome", "-o", str(out), "--json").stdout
    )
    assert summary["output"] == str(out)
    return out


def test_chrome_export_is_well_formed_v8_json(leak: Leak, chrome: Path) -> None:
    data = json.loads(chrome.read_text())
    meta = data["snapshot"]["meta"]
    fields = meta["node_fields"]
    assert fields[:5] == ["type", "name", "id", "self_size", "edge_count"]
    assert meta["edge_fields"] == ["type", "name_or_index", "to_node"]
    node_types, edge_types = meta["node_types"][0], meta["edge_types"][0]
    width = len(fields)
    nodes, edges, strings = data["nodes"], data["edges"], data["strings"]
    n_nodes = len(nodes) // width
    info = json.loads(ok("info", str(leak.snapshot), "--json").stdout)
    assert n_nodes == data["snapshot"]["node_count"] == info["n_nodes"] + 7
    assert len(edges) // 3 == data["snapshot"]["edge_count"]
    assert sum(nodes[i * width + 4] for i in range(n_nodes)) * 3 == len(edges)
    ids = [nodes[i * width + 2] for i in range(n_nodes)]
    assert len(set(ids)) == n_nodes and all(i % 2 == 1 and i < 2**32 for i in ids)
    assert sum(nodes[i * width + 3] for i in range(n_nodes)) == info["total_bytes"]

    def node(i: int) -> tuple[str, str]:
        return node_types[nodes[i * width]], strings[nodes[i * width + 1]]

    assert node(0) == ("synthetic", "") and nodes[2] == 1
    assert ("synthetic", "(GC roots)") in {node(i) for i in range(7)}
    named = Counter(node(i) for i in range(n_nodes))
    assert named[("object", TYPE)] == N_LEAKED
    assert named[("object", "module leakapp")] == 1
    assert named[("closure", "login")] == 1
    # Every edge lands on a node row; the sessions are held by named properties u0..u149.
    keys = set()
    for k in range(0, len(edges), 3):
        assert edges[k + 2] % width == 0 and edges[k + 2] < len(nodes)
        if node(edges[k + 2] // width) == ("object", TYPE):
            assert edge_types[edges[k]] == "property"
            keys.add(strings[edges[k + 1]])
    assert keys == {f"u{i}" for i in range(N_LEAKED)}


@pytest.fixture(scope="module")
def memlab() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(
            "node and npm are needed to load the export with memlab (tests/chrome_consumer)"
        )
    subprocess.run(["sh", str(CONSUMER / "install.sh")], check=True, timeout=600)
    return CONSUMER / "consume.js"


def test_memlab_finds_what_heapsight_finds(leak: Leak, chrome: Path, memlab: Path) -> None:
    done = subprocess.run(
        ["node", str(memlab), str(chrome), TYPE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    info = json.loads(ok("info", str(leak.snapshot), "--json").stdout)
    retainers = json.loads(ok("retainers", str(leak.snapshot), TYPE, "--json").stdout)
    dominators = json.loads(ok("dominators", str(leak.snapshot), "--json", "-n", "10").stdout)

    assert seen["node_count"] == info["n_nodes"] + 7
    assert seen["total_self_size"] == seen["root_retained_size"] == info["total_bytes"]
    assert seen["instances"] == retainers["count"] == N_LEAKED
    assert seen["instance_self_size"] == retainers["bytes"]
    # Retainers: every session is held by one dict, through a named property.
    assert seen["retainers"] == {f"dict --property--> {TYPE}": N_LEAKED}
    # Dominator: the accumulation point heapsight names, with the same retained size.
    point = retainers["accumulation_point"]
    assert len(seen["dominators"]) == 1
    holder = seen["dominators"][0]
    assert holder["name"] == point["type_name"] == "dict"
    assert holder["retained_size"] == point["retained_bytes"]
    assert holder["edge_count"] == 2 * N_LEAKED  # each entry: the key object and the value
    assert holder["retainers"] == [{"from": "dict", "edge": "_SESSIONS", "type": "property"}]
    # memlab's shortest path from the roots goes through the module, as heapsight's does.
    real_steps = [step for step in seen["path"] if not step["from"].startswith("(")]
    assert real_steps[0]["from"] == "module leakapp"
    assert [s["edge"] for s in real_steps][-2] == "_SESSIONS"
    assert real_steps[-1]["to"] == TYPE
    assert retainers["shapes"][0]["example_path"][:2] == ["module leakapp", "._SESSIONS"]
    # The objects retaining the most: same sizes, in the same order.
    assert [row["retained_size"] for row in seen["top_retained"][:10]] == [
        row["retained_bytes"] for row in dominators
    ]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def test_chrome_devtools_loads_it_and_agrees(leak: Leak, chrome: Path, memlab: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH to run Chrome DevTools' heap snapshot loader")
    done = subprocess.run(
        ["node", str(CONSUMER / "devtools.js"), str(chrome), TYPE, browser],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    info = json.loads(ok("info", str(leak.snapshot), "--json").stdout)
    retainers = json.loads(ok("retainers", str(leak.snapshot), TYPE, "--json").stdout)
    dominators = json.loads(ok("dominators", str(leak.snapshot), "--json", "-n", "10").stdout)

    assert seen["node_count"] == info["n_nodes"] + 7
    assert seen["total_size"] == info["total_bytes"]
    # The Memory panel's Summary row for the leaked type.
    assert seen["summary_row"] == {"name": TYPE, "count": N_LEAKED, "self_size": retainers["bytes"]}
    assert seen["retainers"] == {f"dict --property--> {TYPE}": N_LEAKED}
    chain = seen["dominator_chain"]
    assert chain[0]["name"] == TYPE
    assert chain[1] == {
        "name": "dict",
        "retained_size": retainers["accumulation_point"]["retained_bytes"],
    }
    assert "module leakapp" in [step["name"] for step in chain]
    assert chain[-1] == {"name": "", "retained_size": info["total_bytes"]}
    assert [row["retained_size"] for row in seen["top_retained"][:10]] == [
        row["retained_bytes"] for row in dominators
    ]
