"""Helpers for the end-to-end tests: real servers on 127.0.0.1, bounded in time, and no
process left behind whatever happens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parent.parent / "apps"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str
    json: dict[str, Any] | None


def _kill_agents(run_dir: Path) -> None:
    agents = run_dir / "agents"
    if not agents.is_dir():
        return
    for info in agents.glob("*.json"):
        try:
            pid = int(json.loads(info.read_text())["pid"])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            continue


class Runner:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.run_dirs: list[Path] = []

    def __call__(self, options: list[str], app: list[str], timeout: float = 150.0,
                 use_json: bool = True) -> RunResult:
        run_dir = self.tmp_path / f"run{len(self.run_dirs)}"
        self.run_dirs.append(run_dir)
        out = self.tmp_path / f"result{len(self.run_dirs)}.json"
        argv = [sys.executable, "-m", "heapsight", "run", *options, "--keep-dir", str(run_dir)]
        if use_json:
            argv += ["--json", str(out)]
        argv += ["--", *app]
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        proc = subprocess.run(argv, cwd=APPS, env=env, capture_output=True, text=True,
                              timeout=timeout)
        data = json.loads(out.read_text()) if use_json and out.exists() else None
        return RunResult(proc.returncode, proc.stdout, proc.stderr, data)

    def cleanup(self) -> None:
        for run_dir in self.run_dirs:
            _kill_agents(run_dir)


@pytest.fixture
def run_heapsight(tmp_path: Path) -> Iterator[Runner]:
    runner = Runner(tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()


def assert_contract(data: dict[str, Any]) -> None:
    """The issue's JSON contract, field by field."""
    assert data["verdict"] in ("leak", "no-leak", "inconclusive")
    assert isinstance(data["suspects"], list)
    for suspect in data["suspects"]:
        assert isinstance(suspect["type"], str)
        assert isinstance(suspect["count_growth"], int)
        assert isinstance(suspect["size_growth_bytes"], int)
        assert all(isinstance(step, str) for step in suspect["retainer_path"])
        assert all(isinstance(e, str) and " /" in e for e in suspect["endpoints"])
        assert isinstance(suspect["fix"], str)
