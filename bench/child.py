"""Each heap size is measured in a fresh interpreter, so heaps and allocator state never mix.

`run_json_child(cmd)` runs `cmd --out FILE` and returns the JSON the child wrote there, or a
record saying why there is none (the parent's tables then show the gap instead of failing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

CHILD_TIMEOUT_S = 1200


def run_json_child(cmd: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = out.name
    cmd = [*cmd, "--out", out_path]
    print("$ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, timeout=CHILD_TIMEOUT_S)
        if proc.returncode != 0:
            return {"values": {}, "missing": {"child": f"exit code {proc.returncode}"}}
        with open(out_path) as fh:
            return json.load(fh)
    except subprocess.TimeoutExpired:
        return {"values": {}, "missing": {"child": f"timed out after {CHILD_TIMEOUT_S} s"}}
    finally:
        try:
            os.unlink(out_path)
        except OSError:
            pass
