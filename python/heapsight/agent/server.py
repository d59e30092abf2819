"""The agent's control server: one daemon thread per process, one private Unix socket.

The socket lives in `<run dir>/agents/<pid>.sock` (the run directory is 0700, the socket
0600) and every connection's peer uid is checked with SO_PEERCRED. Nothing here may raise
into the application: every failure becomes an error reply or a closed connection.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable

from heapsight.agent.protocol import (
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    encode,
    parse_request,
)
from heapsight.agent.routes import COUNTER

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _cmdline() -> list[str]:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return list(getattr(sys, "argv", []))


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class AgentServer:
    def __init__(self, run_dir: str) -> None:
        self.run_dir = os.path.realpath(run_dir)
        self.agents_dir = os.path.join(self.run_dir, "agents")
        self.pid = os.getpid()
        self.started = time.time()
        self.socket_path = os.path.join(self.agents_dir, f"{self.pid}.sock")
        self._listener: socket.socket | None = None
        self._detach_requested = False

    def start(self) -> None:
        os.makedirs(self.agents_dir, mode=0o700, exist_ok=True)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        listener.listen(8)
        self._listener = listener
        self._write_info()
        thread = threading.Thread(target=self._accept_loop, name="heapsight-agent", daemon=True)
        thread.start()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's listener without unlinking its socket."""
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None

    def stop(self) -> None:
        """Stops accepting (`heapsight detach`) and removes the socket and info files."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                # On Linux shutdown() wakes the thread blocked in accept(); close() alone
                # would leave it waiting.
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for path in (self.socket_path, os.path.join(self.agents_dir, f"{self.pid}.json")):
            try:
                os.unlink(path)
            except OSError:
                pass

    def _write_info(self) -> None:
        import heapsight

        info = {
            "pid": self.pid,
            "ppid": os.getppid(),
            "argv": _cmdline(),
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "heapsight": heapsight.__version__,
            "protocol": PROTOCOL_VERSION,
            "socket": self.socket_path,
            "started": self.started,
        }
        final = os.path.join(self.agents_dir, f"{self.pid}.json")
        tmp = final + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, final)

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and listener is self._listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn,), name="heapsight-agent-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                # root may connect too: it can ptrace this process anyway (heapsight attach
                # run by root against a worker that dropped privileges).
                if _peer_uid(conn) not in (os.getuid(), 0):
                    return
                buffer = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    while b"\n" in buffer:
                        line, _, buffer = buffer.partition(b"\n")
                        conn.sendall(encode(self.handle(line)))
                        if self._detach_requested:
                            _detach_agent()
                            return
                    if len(buffer) > MAX_REQUEST_BYTES:
                        conn.sendall(encode(_error("request line too long")))
                        return
        except Exception:  # noqa: BLE001 - a broken client must never disturb the app
            return

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = parse_request(line)
        except ProtocolError as exc:
            return _error(str(exc))
        handler: Callable[[dict[str, Any]], dict[str, Any]]
        handler = getattr(self, "_cmd_" + request["cmd"])
        try:
            reply = handler(request)
        except Exception as exc:  # noqa: BLE001 - reported to the client, not raised
            return _error(f"{request['cmd']} failed: {type(exc).__name__}: {exc}")
        return {"v": PROTOCOL_VERSION, "ok": True, "pid": self.pid, **reply}

    def _cmd_ping(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"python": sys.version.split()[0], "uptime": time.time() - self.started}

    def _cmd_stats(self, request: dict[str, Any]) -> dict[str, Any]:
        routes, total = COUNTER.read()
        return {"rss_bytes": rss_bytes(), "requests": routes, "requests_total": total}

    def _cmd_census(self, request: dict[str, Any]) -> dict[str, Any]:
        import heapsight

        if request.get("gc", True):
            gc.collect()
        census = heapsight.census()
        routes, total = COUNTER.read()
        return {
            "census": {name: [count, size] for name, (count, size) in census.items()},
            "gc_objects": sum(count for count, _ in census.values()),
            "rss_bytes": rss_bytes(),
            "requests": routes,
            "requests_total": total,
        }

    def _cmd_snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        import heapsight

        path = os.path.realpath(request["path"])
        if not path.startswith(self.run_dir + os.sep) or not path.endswith(".hsnap"):
            raise ProtocolError("snapshots are written only as <run dir>/[<dir>/]<name>.hsnap")
        # The collection pauses the process far longer than a fork capture: "gc": false
        # skips it (unreachable cycles then stay in the snapshot, marked unreachable).
        if request.get("gc", True):
            gc.collect()
        reply: dict[str, Any] = {"forked": False}
        # Opt-in only (`--include-values`): string values may hold secrets.
        values = request.get("values") is True
        if request.get("fork") and "fork" in inspect.signature(heapsight.snapshot).parameters:
            try:
                summary = heapsight.snapshot(path, values, fork=True)  # type: ignore[call-arg]
                reply["forked"] = True
            except OSError as exc:
                # Only "could not fork" (ForkError, an OSError: no memory for the page
                # tables, a free-threaded build) is retried here. A child that crashed or
                # hung on this heap says the walk itself failed: walking it again inside
                # the app could take the app down, so that error is the reply.
                if not isinstance(exc, getattr(heapsight._heapsight, "ForkError", ())):
                    raise
                reply["fork_error"] = f"{type(exc).__name__}: {exc}"
        if not reply["forked"]:
            # No "fork" field: the package's default (fork where safe); asked not to fork,
            # or the fork failed: in-process.
            default = request.get("fork") is None and "fork_error" not in reply
            if default or "fork" not in inspect.signature(heapsight.snapshot).parameters:
                summary = heapsight.snapshot(path, values)
            else:
                summary = heapsight.snapshot(path, values, fork=False)  # type: ignore[call-arg]
            reply["forked"] = summary.get("mode") == "fork"
        return {**reply, "path": path, "summary": summary, "rss_bytes": rss_bytes()}

    def _cmd_detach(self, request: dict[str, Any]) -> dict[str, Any]:
        # The reply goes out first; _serve then stops the agent.
        self._detach_requested = True
        return {"detached": True}

    def _cmd_alloc_sites(self, request: dict[str, Any]) -> dict[str, Any]:
        from heapsight.agent.tracing import allocation_sites

        return {"sites": allocation_sites(request["types"])}


def _detach_agent() -> None:
    try:
        import heapsight.agent

        heapsight.agent.stop()
    except Exception:  # noqa: BLE001 - detaching must never disturb the app
        pass


def _error(message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": False, "error": message}
