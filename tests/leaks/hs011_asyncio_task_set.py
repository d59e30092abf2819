"""HS011: fire-and-forget tasks kept in a set without a done callback."""

import asyncio

from _harness import measure

background_tasks: set[asyncio.Task] = set()


class Notification:
    def __init__(self, request_id: int) -> None:
        self.recipient = f"user-{request_id}@example.com"


async def notify(notification: Notification) -> str:
    return notification.recipient


async def serve(first: int, count: int) -> None:
    for request_id in range(first, first + count):
        task = asyncio.create_task(notify(Notification(request_id)))
        background_tasks.add(task)
    await asyncio.sleep(0)
    await asyncio.sleep(0)


_loop = asyncio.new_event_loop()
asyncio.set_event_loop(_loop)


def handle(request_id: int) -> None:
    _loop.run_until_complete(serve(request_id, 1))


measure(handle)
