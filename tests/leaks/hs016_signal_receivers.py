"""HS016: a Django signal receiver connected with weak=False on every request."""

from _harness import measure
from django.dispatch import Signal

order_placed = Signal()


class Request:
    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self.user = f"user-{request_id}"


def handle(request_id: int) -> None:
    request = Request(request_id)

    def audit(sender, **kwargs):
        return request.user

    order_placed.connect(audit, weak=False)
    order_placed.send(sender=None)


measure(handle, leaked=800)
