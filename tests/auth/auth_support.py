"""Helpers shared by the auth tests: a clock the test moves by hand, and the service's settings."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from choir.auth import AuthError, AuthService

START = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
DOMAIN = "choir.example"
URI = "https://choir.example"


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def race(auth: AuthService, attempt: tuple[str, str, str], racers: int) -> list[str]:
    """Verify one attempt from ``racers`` threads released together; each one's outcome code."""
    start = threading.Barrier(racers)
    codes: list[str] = []

    def run() -> None:
        start.wait(timeout=10)
        try:
            auth.verify(*attempt)
            codes.append("ok")
        except AuthError as e:
            codes.append(e.code)

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return sorted(codes)
