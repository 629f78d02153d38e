"""Optional services started with the server (the Chorus loop, chain settlement, metrics).

Each registers itself in ``Choir.extras``; the server runs without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from choir.app import Choir


async def start_services(choir: Choir) -> None:
    return None


async def stop_services(choir: Choir) -> None:
    return None
