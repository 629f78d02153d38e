"""The one-time welcome grant that lets a new person stake at once."""

from __future__ import annotations

import contextlib
import hashlib

from choir.engine.ports import Execute
from choir.program import Grant, ProgramError


def welcome_ref(address: str) -> str:
    """The grant's ref: one per address, so a second sign-in (or a retry) pays nothing more."""
    return "w" + hashlib.sha256(address.encode()).hexdigest()[:24]


async def welcome(execute: Execute, address: str, amount: int) -> None:
    if amount <= 0:
        return
    with contextlib.suppress(ProgramError):
        await execute(Grant(address, amount, welcome_ref(address)))
