"""`heapsight watch PID`: the RSS trend of a process from /proc, nothing injected."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

GROWS = """
import time
kept = []
print("ready", flush=True)
while True:
    kept.append(bytearray(512 * 1024))
    for chunk in kept[-1:]:
        chunk[::4096] = b"x" * len(chunk[::4096])
    time.sleep(0.05)
"""
STEADY = """
import time
data = bytearray(8 * 1024 * 1024)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def process(request: pytest.FixtureRequest) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", request.param], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _watch(pid: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heapsight", "watch", str(pid), "--duration", "3",
         "--interval", "0.2", *extra], capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize("process", [GROWS], indirect=True)
def test_growing_process_is_a_leak(process: subprocess.Popen[str]) -> None:
    result = _watch(process.pid, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["verdict"] == "leak"
    assert data["slope_bytes_per_second"] > 1024 * 1024
    assert data["rss_last_bytes"] > data["rss_first_bytes"]
    assert len(data["samples"]) >= 10


@pytest.mark.parametrize("process", [STEADY], indirect=True)
def test_steady_process_is_no_leak(process: subprocess.Popen[str]) -> None:
    result = _watch(process.pid)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: no-leak" in result.stdout


def test_missing_process_is_an_error() -> None:
    result = _watch(2**22 + 12345)
    assert result.returncode == 3
    assert "no process" in result.stderr
