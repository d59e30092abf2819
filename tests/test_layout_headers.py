"""The struct offsets and sizes heapsight hard-codes per CPython version (capture/shims.rs,
capture/frames.rs) against the running interpreter's own headers: tests/layout/offsets.c
is compiled with them and prints the same names. A wrong offset reads the wrong field of
a live object; the capture tests only notice when that field's value happens to matter.
Runs on every interpreter the capture tests run on (3.14 included, scripts/test-py314.sh)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import heapsight._heapsight as native
import pytest

SOURCE = Path(__file__).resolve().parent / "layout" / "offsets.c"


def header_facts(tmp_path: Path) -> dict[str, int]:
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "internal").is_dir():
        pytest.skip(f"{include} has no internal headers")
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "offsets"
    subprocess.run([compiler, "-I", str(include), "-I", str(include / "internal"),
                    "-o", str(exe), str(SOURCE)], check=True, capture_output=True, text=True)
    printed = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    facts = {}
    for line in printed.splitlines():
        name, value = line.rsplit(" ", 1)
        facts[name] = int(value)
    return facts


@pytest.mark.skipif(sys.platform != "linux", reason="the layouts are checked on Linux x86-64")
def test_hard_coded_layouts_match_the_interpreter_headers(tmp_path: Path) -> None:
    ours = native._layout_facts()
    assert ours, "no layout for this interpreter"
    by_name: dict[str, int] = {}
    for name, value in ours:
        # A name given twice (by shims and by frames) must agree with itself.
        assert by_name.setdefault(name, value) == value, (name, by_name[name], value)
    headers = header_facts(tmp_path)
    assert sorted(by_name) == sorted(headers)
    mismatched = {name: (by_name[name], headers[name])
                  for name in headers if by_name[name] != headers[name]}
    assert mismatched == {}, f"heapsight vs headers: {mismatched}"
