"""HS003: a module-level set tracking "live" connections that are never removed."""

from _harness import measure


class Connection:
    def __init__(self, request_id: int) -> None:
        self.peer = f"10.0.{request_id // 256 % 256}.{request_id % 256}"
        self.buffer = bytearray(64)


_CONNECTIONS: set[Connection] = set()


def open_connection(request_id: int) -> Connection:
    conn = Connection(request_id)
    _CONNECTIONS.add(conn)
    return conn


measure(open_connection)
