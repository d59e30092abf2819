"""HS002: a module-level list keeping an audit trail of every request."""

from _harness import measure


class AuditEntry:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.path = f"/orders/{request_id}"


_HISTORY: list[AuditEntry] = []


def handle(request_id: int) -> None:
    _HISTORY.append(AuditEntry(request_id))


measure(handle)
