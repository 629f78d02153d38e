"""The connection state machine refuses illegal moves instead of ignoring them."""

from __future__ import annotations

import asyncio

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


class Gate:
    """A socket whose sends complete at once, except while ``held`` is set: then they wait."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, frame: str) -> None:
        await self.open.wait()
        self.sent.append(frame)


async def test_an_idle_connection_is_written_in_the_offering_call_without_its_writer() -> None:
    gate = Gate()
    conn = Hub().connect("alice", gate.send, _close)
    assert conn is not None
    assert conn.offer("one") and conn.offer("two")
    assert gate.sent == ["one", "two"]  # no writer task is running: the sends completed in offer


async def test_frames_offered_while_a_send_waits_keep_their_order() -> None:
    gate = Gate()
    conn = Hub().connect("alice", gate.send, _close)
    assert conn is not None
    writer = asyncio.create_task(conn.writer())
    gate.open.clear()
    for n in range(5):
        assert conn.offer(f"f{n}")
    await asyncio.sleep(0)
    assert gate.sent == []
    gate.open.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert gate.sent == [f"f{n}" for n in range(5)]
    assert conn.offer("f5")
    for _ in range(5):
        await asyncio.sleep(0)
    assert gate.sent[-1] == "f5"
    writer.cancel()


async def test_a_send_that_fails_closes_the_connection() -> None:
    closed: list[int] = []

    async def broken(_frame: str) -> None:
        raise ConnectionResetError("gone")

    async def close(code: int, _reason: str) -> None:
        closed.append(code)

    conn = Hub().connect("alice", broken, close)
    assert conn is not None
    assert conn.offer("frame") is False
    assert conn.state is ConnState.CLOSING
    assert conn.closing is not None
    await conn.closing
    assert closed == [1011]
