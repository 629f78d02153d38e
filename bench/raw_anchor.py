"""The raw anchor for bench_socket: the least a chat server can do per post, as a yardstick.

A plain `websockets` server: each text frame is parsed; ``subscribe`` adds the connection to a
thread; ``post`` inserts the message into SQLite (WAL, synchronous=NORMAL, as Choir's store),
commits, encodes the event once and writes it to every subscriber, then acks. No auth, no rules,
no ledger, no group commit, no index: what Choir's engine adds costs what the gap shows.

    python -m bench.raw_anchor --port PORT --db PATH
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve


class Anchor:
    def __init__(self, db: Path) -> None:
        self.db = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages (thread_id TEXT, seq INTEGER, content TEXT, PRIMARY KEY (thread_id, seq))"
        )
        self.subscribers: dict[str, set[ServerConnection]] = {}
        self.seq: dict[str, int] = {}

    async def handle(self, ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                payload: dict[str, Any] = frame["payload"]
                if frame["type"] == "subscribe":
                    self.subscribers.setdefault(payload["thread_id"], set()).add(ws)
                    reply: dict[str, Any] = {
                        "thread_id": payload["thread_id"],
                        "seq": self.seq.get(payload["thread_id"], 0),
                    }
                elif frame["type"] == "unsubscribe":
                    self.subscribers.get(payload["thread_id"], set()).discard(ws)
                    reply = {}
                else:
                    reply = self.post(payload["thread_id"], payload["content"])
                await ws.send(
                    json.dumps({"type": "ack", "id": frame["id"], "payload": reply}, separators=(",", ":"))
                )
        finally:
            for subs in self.subscribers.values():
                subs.discard(ws)

    def post(self, thread_id: str, content: str) -> dict[str, Any]:
        seq = self.seq.get(thread_id, 0) + 1
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO messages VALUES (?, ?, ?)", (thread_id, seq, content))
        self.db.execute("COMMIT")
        self.seq[thread_id] = seq
        event = {"thread_id": thread_id, "seq": seq, "kind": "message.posted", "data": {"content": content}}
        broadcast(
            self.subscribers.get(thread_id, set()),
            json.dumps({"type": "event", "payload": event}, separators=(",", ":")),
        )
        return {"seq": seq}


async def main(port: int, db: Path) -> None:
    anchor = Anchor(db)
    async with serve(anchor.handle, "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.db))
