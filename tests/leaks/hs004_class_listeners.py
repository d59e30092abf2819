"""HS004: every view subscribes a bound method to a class-level listener list."""

from _harness import measure


class EventBus:
    listeners: list = []

    @classmethod
    def subscribe(cls, callback) -> None:
        cls.listeners.append(callback)


class View:
    def __init__(self, request_id: int) -> None:
        self.context = {"request_id": request_id, "title": f"page {request_id}"}
        EventBus.subscribe(self.on_event)

    def on_event(self, event: object) -> None:
        self.context["last_event"] = event


def handle(request_id: int) -> None:
    View(request_id)


measure(handle)
