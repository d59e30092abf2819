"""`heapsight demo`: the bundled leaky app hunted under `heapsight run`, in under a minute."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def test_demo_finds_the_session_leak(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "heapsight", "demo", "--requests", "100",
         "--keep-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "verdict: LEAK" in out
    assert "#1 heapsight.demo.app.UserSession" in out
    assert "held by: module heapsight.demo.app -> ._SESSIONS" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("  GET ")}
    assert " leak " in lines["/login/user{i}"]
    assert "no-leak" in lines["/products/{i}"] and "no-leak" in lines["/health"]
    assert elapsed < 60
    assert list((tmp_path / "demo").glob("after-*.hsnap"))
