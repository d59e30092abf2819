"""Bounded HTTP load on the endpoints the user named, on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import socket
import time
from collections import Counter
from typing import Callable

from heapsight.run.options import Drive


class DriveError(RuntimeError):
    """Requests that cannot be sent (the app stopped answering)."""


def wait_for_port(port: int, timeout: float, still_running: Callable[[], bool],
                  stop: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not still_running():
            raise DriveError("the app exited before accepting connections")
        if stop():
            raise DriveError("interrupted before the app accepted connections")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise DriveError(
                f"the app did not accept connections on 127.0.0.1:{port} within {timeout:.0f} s "
                "(is the port in --drive the one the app listens on? see --startup-timeout)"
            )
        time.sleep(0.1)


class Driver:
    def __init__(self, deadline: float, still_running: Callable[[], bool]) -> None:
        self.deadline = deadline
        self.still_running = still_running
        self.statuses: dict[str, Counter[int]] = {}
        self._connections: dict[tuple[int, str], http.client.HTTPConnection] = {}

    def _connection(self, drive: Drive) -> http.client.HTTPConnection:
        key = (drive.port, drive.label)
        conn = self._connections.get(key)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", drive.port, timeout=30)
            self._connections[key] = conn
        return conn

    def send(self, drive: Drive, start: int, count: int, stop: Callable[[], bool]) -> int:
        """Sends `count` requests numbered from `start`; returns how many were answered."""
        done = 0
        statuses = self.statuses.setdefault(drive.label, Counter())
        headers = dict(drive.headers)
        for index in range(start, start + count):
            if stop() or time.monotonic() > self.deadline:
                break
            status = self._one(drive, index, headers)
            statuses[status] += 1
            done += 1
        return done

    def _one(self, drive: Drive, index: int, headers: dict[str, str]) -> int:
        body = drive.body if drive.body or drive.method in ("POST", "PUT", "PATCH") else None
        for attempt in range(3):
            conn = self._connection(drive)
            try:
                conn.request(drive.method, drive.request_target(index), body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    conn.close()
                return response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if not self.still_running():
                    raise DriveError(f"the app exited during {drive.label}") from None
                if attempt == 2:
                    raise DriveError(f"{drive.label} failed three times in a row: {exc}") from None
                time.sleep(0.2 * (attempt + 1))
        raise DriveError("unreachable")

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
