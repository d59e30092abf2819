"""HS015: a module-level bytearray that every request appends to and nobody truncates."""

from _harness import measure

_BUFFER = bytearray()


def record(request_id: int) -> None:
    _BUFFER.extend(f"event {request_id}: checkout completed\n".encode() * 8)


measure(record)
