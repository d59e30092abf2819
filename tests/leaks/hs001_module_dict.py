"""HS001: a module-level dict used as a session store, keyed by user, never evicted."""

from _harness import measure


class UserSession:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.cart = [f"item-{user_id}-{n}" for n in range(3)]


_SESSIONS: dict[str, UserSession] = {}


def login(request_id: int) -> None:
    _SESSIONS[f"user-{request_id}"] = UserSession(request_id)


measure(login)
