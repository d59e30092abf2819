"""HS005: functools.lru_cache on a method keeps every instance alive through `self`."""

import functools

from _harness import measure


class Report:
    def __init__(self, request_id: int) -> None:
        self.rows = list(range(request_id % 7, request_id % 7 + 20))

    @functools.lru_cache(maxsize=None)  # noqa: B019, UP033 - the leak under test
    def totals(self, year: int) -> int:
        return sum(self.rows) + year


def handle(request_id: int) -> int:
    return Report(request_id).totals(2024)


measure(handle)
