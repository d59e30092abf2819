"""HS007: a logger created per request, named after the request id."""

import logging

from _harness import measure


def handle(request_id: int) -> None:
    log = logging.getLogger(f"request.{request_id}")
    log.debug("start")


measure(handle)
