"""Shared driver of the leak scripts: warm up, snapshot, serve requests, snapshot.

Each script in this directory sets up one leak pattern and calls `measure` with a function
serving one request. The warm-up requests run before the first snapshot so one-time
allocations (imports, caches filled on first use, container resizes of small sizes) are
not mistaken for growth; only the requests between the two snapshots count.
"""

from __future__ import annotations

import gc
import sys
from typing import Callable

import heapsight

WARMUP_REQUESTS = 200
LEAKED_REQUESTS = 1500


def measure(
    handle: Callable[[int], object],
    warmup: int = WARMUP_REQUESTS,
    leaked: int = LEAKED_REQUESTS,
) -> None:
    before, after = sys.argv[1], sys.argv[2]
    for request_id in range(warmup):
        handle(request_id)
    gc.collect()
    heapsight.snapshot(before)
    for request_id in range(warmup, warmup + leaked):
        handle(request_id)
    gc.collect()
    heapsight.snapshot(after)
