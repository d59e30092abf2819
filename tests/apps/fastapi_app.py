"""FastAPI app: `/users/{user_id}` leaks a `Profile` per request, the rest is clean."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()
_PROFILES: list[Profile] = []


class Profile:
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.tags = ["a", "b"]


@app.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, int]:
    _PROFILES.append(Profile(user_id))
    return {"id": user_id}


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
