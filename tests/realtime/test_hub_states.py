"""The connection state machine refuses illegal moves instead of ignoring them."""

from __future__ import annotations

import pytest

from choir.program import IllegalTransition
from choir.realtime.hub import ConnState, Hub


async def _send(_frame: str) -> None:
    return None


async def _close(_code: int, _reason: str) -> None:
    return None


@pytest.mark.parametrize(
    "start, target",
    [
        (ConnState.CLOSED, ConnState.OPEN),
        (ConnState.CLOSED, ConnState.CLOSING),
        (ConnState.CLOSED, ConnState.CLOSED),
        (ConnState.CLOSING, ConnState.OPEN),
        (ConnState.CLOSING, ConnState.CLOSING),
        (ConnState.OPEN, ConnState.OPEN),
    ],
)
def test_illegal_moves_raise(start: ConnState, target: ConnState) -> None:
    with pytest.raises(IllegalTransition, match=f"from {start.value} to {target.value}"):
        start.to(target)


@pytest.mark.parametrize(
    "start, target",
    [
        (ConnState.OPEN, ConnState.CLOSING),
        (ConnState.OPEN, ConnState.CLOSED),
        (ConnState.CLOSING, ConnState.CLOSED),
    ],
)
def test_legal_moves(start: ConnState, target: ConnState) -> None:
    assert start.to(target) is target


async def test_a_connection_goes_open_closing_closed_and_a_second_disconnect_raises() -> None:
    hub = Hub()
    conn = hub.connect("alice", _send, _close)
    assert conn is not None and conn.state is ConnState.OPEN
    conn.shut(4008, "slow_consumer")
    assert conn.state is ConnState.CLOSING
    conn.shut(4001, "logged out")  # already closing: the first reason stands
    assert conn.close_code == 4008
    hub.disconnect(conn)
    assert conn.state is ConnState.CLOSED and hub.connection_count == 0
    assert not conn.offer("late frame")
    with pytest.raises(IllegalTransition):
        hub.disconnect(conn)
    assert conn.closing is not None
    await conn.closing
