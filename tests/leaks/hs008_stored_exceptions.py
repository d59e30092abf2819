"""HS008: failed requests keep their exception objects, hence tracebacks and frames."""

from _harness import measure


class PaymentError(Exception):
    pass


_ERRORS: list[PaymentError] = []


def charge(request_id: int) -> None:
    payload = bytearray(256)  # a local of the failing frame, kept alive by the traceback
    payload[0] = request_id % 256
    raise PaymentError(f"card declined for request {request_id}")


def handle(request_id: int) -> None:
    try:
        charge(request_id)
    except PaymentError as exc:
        _ERRORS.append(exc)


measure(handle)
