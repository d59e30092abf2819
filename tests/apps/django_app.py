"""A single-file Django project: `gunicorn django_app:application`. `/orders/<id>/` leaks
an `Order` per request into a module-level dict; `/status/` is clean."""

from __future__ import annotations

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="heapsight-test-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

_ORDERS: dict[int, Order] = {}
_next = [0]


class Order:
    def __init__(self, order_id: int) -> None:
        self.order_id = order_id
        self.lines = [order_id] * 4


def order(request, order_id: int):  # type: ignore[no-untyped-def]
    _next[0] += 1
    _ORDERS[_next[0]] = Order(order_id)
    return JsonResponse({"id": order_id})


def status(request):  # type: ignore[no-untyped-def]
    return JsonResponse({"ok": True})


urlpatterns = [
    path("orders/<int:order_id>/", order),
    path("status/", status),
]

application = get_wsgi_application()
