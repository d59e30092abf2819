"""No leak, though it grows between the snapshots: a deque(maxlen=N) of recent requests
that has not reached its length yet."""

import collections

from _harness import measure


class AuditEntry:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.detail = bytes(64)


_RECENT: collections.deque = collections.deque(maxlen=10_000)


def handle(request_id: int) -> int:
    _RECENT.append(AuditEntry(request_id))
    return len(_RECENT)


measure(handle, warmup=200, leaked=1500)
