"""HS015: a module-level io.StringIO collecting log lines that nobody flushes."""

import io

from _harness import measure

_LOG_BUFFER = io.StringIO()


def record(request_id: int) -> None:
    _LOG_BUFFER.write(f"request {request_id}: rendered template in 12 ms\n" * 8)


measure(record)
