"""HS009: Django with DEBUG=True logs every query on the connection."""

import django
from django.conf import settings

settings.configure(
    DEBUG=True,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from _harness import measure  # noqa: E402
from django.db import connection  # noqa: E402 - needs the settings above


def create_schema() -> None:
    # In a function: a module-level `with ... as cursor` would leave the cursor in a global
    # and the query log would be reported through it instead of django.db.connections.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")


create_schema()


def handle(request_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders (id, customer) VALUES (%s, %s)",
            [request_id, f"customer-{request_id}"],
        )


measure(handle)
