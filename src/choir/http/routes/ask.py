"""Asking the Choir AI over REST (the socket's ``ask`` does the same and streams to the asker)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from choir.actions import writes
from choir.http.deps import check_origin, current_user, deps

router = APIRouter()


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=4096)


@router.post("/api/threads/{thread_id}/ask", status_code=202, tags=["chorus"])
async def ask(thread_id: str, body: AskBody, request: Request) -> dict[str, str]:
    """Start the Chorus loop; its phases stream to the thread's /ws subscribers and the
    answer is posted to the thread as the Choir AI's message carrying this ``ask_id``."""
    check_origin(request)
    address = await current_user(request)
    ask_id, _task = await writes.ask(deps(request), address, thread_id, body.prompt, None)
    return {"ask_id": ask_id}
