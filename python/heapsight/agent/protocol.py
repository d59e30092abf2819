"""The control channel's wire format: versioned JSON lines over a private Unix socket.

A request is one JSON object on one line, `{"v": 1, "cmd": "census"}`; the reply is one
JSON object on one line with `"ok": true` and the command's fields, or `"ok": false` and
`"error"`. Shared by the agent (server side) and `heapsight run` (client side).
"""

from __future__ import annotations

import json
import socket
from typing import Any

PROTOCOL_VERSION = 1
# A request line longer than this is refused: no command needs more, and a client that
# sends more is broken or hostile.
MAX_REQUEST_BYTES = 64 * 1024
COMMANDS = ("ping", "stats", "census", "snapshot", "alloc_sites", "detach")

ENV_RUN_DIR = "HEAPSIGHT_RUN_DIR"
ENV_TRACE_ALLOC = "HEAPSIGHT_TRACE_ALLOC"
ENV_FALLBACK_PATH = "HEAPSIGHT_FALLBACK_PATH"
ENV_EXPECTED_VERSION = "HEAPSIGHT_EXPECTED_VERSION"


class ProtocolError(ValueError):
    """A request that does not follow the protocol; its message goes back to the client."""


def parse_request(line: bytes) -> dict[str, Any]:
    """Decodes and validates one request line; raises ProtocolError with a reason."""
    if len(line) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON line: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a request is a JSON object")
    version = message.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(f"unsupported protocol version {version!r}; this agent speaks v1")
    cmd = message.get("cmd")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
    if cmd == "snapshot" and not isinstance(message.get("path"), str):
        raise ProtocolError("snapshot needs a string 'path'")
    if cmd == "alloc_sites":
        types = message.get("types")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ProtocolError("alloc_sites needs 'types', a list of type names")
    for flag in ("gc", "fork"):
        if flag in message and not isinstance(message[flag], bool):
            raise ProtocolError(f"'{flag}' must be a boolean")
    return message


def encode(message: dict[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")


class AgentClient:
    """One connection to one agent; requests are answered in order."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise
        self._buffer = b""

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Sends a command and returns the reply; raises OSError or RuntimeError."""
        self._sock.sendall(encode({"v": PROTOCOL_VERSION, "cmd": cmd, **fields}))
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"agent at {self.path} closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise RuntimeError(f"agent at {self.path} sent a malformed reply")
        if not reply.get("ok"):
            raise RuntimeError(f"agent refused {cmd}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        self._sock.close()
