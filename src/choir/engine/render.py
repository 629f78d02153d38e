"""Markdown rendered on the server and sanitised, once per message, before persist: the stored
event and the live one carry the same html, and the page never inserts unsanitised HTML.
The html travels beside the outcome (``Commit.html``), never written back into an event."""

from __future__ import annotations

import html as html_lib
from collections.abc import Callable, Sequence
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

from choir.program import Outcome

Render = Callable[[str], str]

_ALLOWED_TAGS = {
    "p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "hr", "del", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    # Raw HTML in a message is text, never markup; linkify off keeps rendering predictable.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(content: str) -> str:
    html = _md().render(content)
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def plain_html(content: str) -> str:
    """Escaped text in a paragraph: for a coordinator with no markdown (simulations, benchmarks)."""
    return f"<p>{html_lib.escape(content)}</p>"


def render_all(outcomes: Sequence[Outcome], render: Render) -> dict[str, str]:
    """The html of every message the outcomes publish, by message id, and of every edit, by its
    version's id (``Revision.record_id``): a batch may publish a message and edit it."""
    html = {m.message_id: render(m.content) for o in outcomes for m in o.messages}
    html |= {r.record_id: render(r.content) for o in outcomes for r in o.revisions if not r.deleted}
    return html
