"""The `heapsight` command on real snapshot files taken from a separate Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

N_LEAKED = 150

LEAKY_PROCESS = textwrap.dedent(
    """
    import gc, os, sys, types
    import heapsight

    leaky = types.ModuleType("leaky")
    exec(
        "class UserSession:\\n"
        "    def __init__(self, user):\\n"
        "        self.user = user\\n"
        "        self.history = bytearray(256)\\n"
        "_SESSIONS = {}\\n",
        leaky.__dict__,
    )
    sys.modules["leaky"] = leaky

    class Probe:
        pass

    probes = [Probe() for _ in range(321)]
    gc.collect()
    heapsight.snapshot(sys.argv[1])
    for i in range(N_LEAKED):
        leaky._SESSIONS["u%d" % i] = leaky.UserSession("user%d" % i)
    gc.collect()
    heapsight.snapshot(sys.argv[2])
    print(os.getpid())
    """
).replace("N_LEAKED", str(N_LEAKED))


def heapsight_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heapsight", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    workdir = tmp_path_factory.mktemp("snapshots")
    before, after = workdir / "before.hsnap", workdir / "after.hsnap"
    done = subprocess.run(
        [sys.executable, "-c", LEAKY_PROCESS, str(before), str(after)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return before, after, int(done.stdout.strip())


def test_info_describes_the_process(snapshots):
    before, _, pid = snapshots
    text = heapsight_cli("info", str(before))
    assert text.returncode == 0, text.stderr
    assert f"pid {pid}" in text.stdout
    info = json.loads(heapsight_cli("info", str(before), "--json").stdout)
    assert info["pid"] == pid
    assert info["n_nodes"] > 10_000
    assert info["roots"]["module"] > 10
    assert info["roots"]["thread"] >= 1
    assert info["python_version"].startswith("{}.{}".format(*sys.version_info[:2]))


def test_top_counts_and_ranks(snapshots):
    before, _, _ = snapshots
    rows = json.loads(heapsight_cli("top", str(before), "--json", "-n", "0").stdout)
    by_name = {row["type"]: row for row in rows}
    assert by_name["__main__.Probe"]["count"] == 321
    assert [r["count"] for r in rows] == sorted((r["count"] for r in rows), reverse=True)
    by_bytes = json.loads(heapsight_cli("top", str(before), "--json", "--by", "bytes").stdout)
    assert [r["bytes"] for r in by_bytes] == sorted((r["bytes"] for r in by_bytes), reverse=True)
    assert len(by_bytes) == 25
    table = heapsight_cli("top", str(before), "-n", "5")
    assert table.returncode == 0
    assert "\x1b[" not in table.stdout  # not a terminal: no colours


def test_retainers_explain_the_leaked_type(snapshots):
    _, after, _ = snapshots
    out = heapsight_cli("retainers", str(after), "leaky.UserSession", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["count"] == N_LEAKED
    top = result["shapes"][0]
    assert top["holder"] == "module leaky: ._SESSIONS[*]"
    assert top["count"] == N_LEAKED
    assert top["example_path"][:2] == ["module leaky", "._SESSIONS"]
    assert top["example_path"][-1] == "leaky.UserSession"
    assert result["accumulation_point"]["path"][:2] == ["module leaky", "._SESSIONS"]
    assert result["fixes"][0]["code"] == "HS001"
    # A bare class name is resolved; an unknown one is a clear error.
    assert heapsight_cli("retainers", str(after), "UserSession", "--json").returncode == 0
    unknown = heapsight_cli("retainers", str(after), "NoSuchType")
    assert unknown.returncode == 3
    assert "no objects of type" in unknown.stderr


def test_diff_reports_growth_per_type(snapshots):
    before, after, _ = snapshots
    out = heapsight_cli("diff", str(before), str(after), "--json")
    assert out.returncode == 0, out.stderr
    types = {row["type_name"]: row for row in json.loads(out.stdout)["types"]}
    session = types["leaky.UserSession"]
    assert session["count_delta"] == N_LEAKED
    assert session["new_count"] == N_LEAKED
    shape = session["new_object_shapes"][0]["shape"]
    assert shape == "module leaky: ._SESSIONS[*] -> leaky.UserSession"


def test_report_names_the_leak_and_its_fix(snapshots, tmp_path: Path):
    before, after, _ = snapshots
    out = heapsight_cli("report", str(before), str(after), "--json")
    assert out.returncode == 1, out.stderr  # suspects found
    report = json.loads(out.stdout)
    assert report["schema_version"] == 1
    top = report["suspects"][0]
    assert top["type_name"] == "leaky.UserSession"
    assert top["count_growth"] == N_LEAKED
    assert top["representative_path"][:2] == ["module leaky", "._SESSIONS"]
    assert top["fixes"][0]["code"] == "HS001"
    text_path = tmp_path / "report.txt"
    written = heapsight_cli("report", str(before), str(after), "-o", str(text_path))
    assert written.returncode == 1
    assert "leaky.UserSession" in text_path.read_text()
    json_path = tmp_path / "report.json"
    heapsight_cli("report", str(before), str(after), "-o", str(json_path))
    assert json.loads(json_path.read_text())["suspects"][0]["type_name"] == "leaky.UserSession"


def test_dominators_lists_the_largest_retainers(snapshots):
    _, after, _ = snapshots
    out = heapsight_cli("dominators", str(after), "--json", "-n", "5")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 5
    assert [r["retained_bytes"] for r in rows] == sorted(
        (r["retained_bytes"] for r in rows), reverse=True
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello, I am a text file\n", "not a heapsight snapshot"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG"),
    ],
)
def test_foreign_files_are_clear_errors(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "foreign.hsnap"
    path.write_bytes(content)
    out = heapsight_cli("info", str(path))
    assert out.returncode == 3
    assert out.stderr.startswith("error:")
    assert message.lower() in out.stderr.lower()
    assert "Traceback" not in out.stderr and "panicked" not in out.stderr


def test_truncated_and_corrupt_snapshots_are_clear_errors(snapshots, tmp_path: Path):
    before, _, _ = snapshots
    data = before.read_bytes()
    truncated = tmp_path / "truncated.hsnap"
    truncated.write_bytes(data[: len(data) // 2])
    out = heapsight_cli("top", str(truncated))
    assert out.returncode == 3
    assert "truncated" in out.stderr
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10
    corrupt = tmp_path / "corrupt.hsnap"
    corrupt.write_bytes(bytes(flipped))
    out = heapsight_cli("info", str(corrupt))
    assert out.returncode == 3
    assert "Traceback" not in out.stderr and "panicked" not in out.stderr


def test_missing_file_and_bad_usage(tmp_path: Path):
    missing = heapsight_cli("info", str(tmp_path / "nope.hsnap"))
    assert missing.returncode == 3
    assert "nope.hsnap" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = heapsight_cli("top", "x.hsnap", "--bogus")
    assert unknown.returncode == 3
    assert "--bogus" in unknown.stderr
    assert heapsight_cli("--version").returncode == 0
    assert "report" in heapsight_cli("--help").stdout


def test_report_refuses_to_overwrite_with_a_half_file(snapshots, tmp_path: Path):
    before, after, _ = snapshots
    target = tmp_path / "report.txt"
    target.write_text("earlier report\n")
    out = heapsight_cli("report", str(before), str(tmp_path / "missing.hsnap"), "-o", str(target))
    assert out.returncode == 3
    assert target.read_text() == "earlier report\n"


def test_no_color_and_closed_pipes(snapshots):
    before, _, _ = snapshots
    env = dict(os.environ, NO_COLOR="1")
    assert "\x1b[" not in heapsight_cli("top", str(before), env=env).stdout
    # `heapsight top FILE | head -1` must not print a broken-pipe error.
    pipeline = subprocess.run(
        f"{sys.executable} -m heapsight top {before} -n 0 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "error" not in pipeline.stderr.lower()
