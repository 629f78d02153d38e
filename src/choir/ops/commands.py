"""The bodies of ``choir audit`` and ``choir stats``: open the store named by the settings
(and the vector index), run, print, and return the exit status.

Exit status of ``choir audit``: 0 clean, 1 findings, 2 when it could not audit (no store,
an unreadable one, or a vector index owned by a running server).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from choir.config import Settings
from choir.ledger import ONE_CHOIR
from choir.ops.analytics import Stats, stats
from choir.store.sql import Store

EXIT_CLEAN: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_CANNOT_AUDIT: Final = 2
DAYS_SHOWN: Final = 14
EPOCHS_SHOWN: Final = 12
Echo = Callable[..., None]


class CannotOpen(Exception):
    """The store or index named by the settings cannot be opened; the message says why."""


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    from pydantic import ValidationError

    overrides: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CHOIR_" + "_".join(str(p) for p in first["loc"]).upper()
        raise CannotOpen(f"bad setting {name}: {first['msg']}") from None


@contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    if settings.database_url is None:
        path = settings.data_dir / "choir.db"
        if not path.is_file():
            raise CannotOpen(f"no Choir store at {path} (set --data-dir or --database-url)")
    store = Store(settings.sql_url)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def open_index(settings: Settings) -> Iterator[Any]:
    """The vector index the server uses, opened read-only in spirit (no optimization)."""
    from choir.store.vectors import EdgeVectorIndex, QdrantServerIndex, SqlVectorIndex, VectorIndexError
    from choir.store.vectors.edge import NoRoomForShard
    from choir.store.vectors.pgvector import PgvectorIndex, engine_of

    index: Any
    if engine_of(settings) == "pgvector":
        index = PgvectorIndex(settings.sql_url, hnsw=settings.pgvector_hnsw)
    elif settings.vectors == "sql":
        index = SqlVectorIndex(settings.sql_url)
    elif settings.vectors == "qdrant":
        if not settings.qdrant_url:
            raise CannotOpen("CHOIR_VECTOR_ENGINE=qdrant needs CHOIR_QDRANT_URL")
        index = QdrantServerIndex.connect(settings.qdrant_url)
    else:
        path = settings.data_dir / "vectors"
        if not (path / "CURRENT").is_file():
            raise CannotOpen(
                f"no vector index at {path} (a server creates it when it starts); "
                "pass --no-index to audit the SQL store alone"
            )
        try:
            index = EdgeVectorIndex(path, background_optimize=False)
        except NoRoomForShard as exc:
            raise CannotOpen(f"{exc}; or pass --no-index to audit the SQL store alone") from None
        except VectorIndexError as exc:
            raise CannotOpen(
                f"the vector index is locked: {exc}. A running `choir serve` owns it; stop the server "
                "to audit from here, ask it instead (curl -X POST http://127.0.0.1:<port>/api/audit "
                "from the server's machine), or pass --no-index to audit the SQL store alone"
            ) from None
    try:
        yield index
    finally:
        index.close()


def audit_command(
    data_dir: Path | None,
    database_url: str | None,
    check_index: bool,
    echo: Echo,
    check_chain: bool = False,
) -> int:
    """The store audit, with the vector index unless told not to, and with ``check_chain`` also
    the chain the store settled on (``CHOIR_CHAIN``; the embedded one when unset)."""
    from choir.chain.audit_checks import find_chain_source
    from choir.chain.errors import ChainError
    from choir.ops.audit import audit

    try:
        settings = settings_for(data_dir, database_url)
        with open_store(settings) as store:
            chain = None
            if check_chain:
                kind = "litesvm" if settings.chain == "none" else settings.chain
                chain = find_chain_source(store, kind, settings.solana_rpc_url)
            if not check_index:
                report = audit(store, chain=chain)
            else:
                with open_index(settings) as index:
                    report = audit(store, index, chain=chain)
    except (CannotOpen, ChainError) as exc:
        echo(f"choir audit: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    except SQLAlchemyError as exc:
        echo(f"choir audit: cannot read the store: {exc.__class__.__name__}: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    for line in report.lines():
        echo(line)
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS


def stats_command(data_dir: Path | None, database_url: str | None, as_json: bool, echo: Echo) -> int:
    try:
        with open_store(settings_for(data_dir, database_url)) as store:
            report = stats(store)
    except CannotOpen as exc:
        echo(f"choir stats: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    except SQLAlchemyError as exc:
        echo(f"choir stats: cannot read the store: {exc.__class__.__name__}: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    if as_json:
        echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in stats_lines(report):
            echo(line)
    return EXIT_CLEAN


def choir_text(amount: int) -> str:
    """Base units as CHOIR, exactly (9 decimals), with thousands separators."""
    whole, frac = divmod(amount, ONE_CHOIR)
    return f"{whole:,}.{frac:09d}"


def stats_lines(report: Stats) -> list[str]:
    t = report.totals
    out = [f"Choir store as of {report.generated_at.isoformat()}", ""]
    out += [
        f"threads {t['threads']} ({t['public_threads']} public)   people {t['people']}   "
        f"messages {t['messages']}   questions {t['questions']}   citations {t['citations']}",
        f"epochs settled {t['epochs_settled']}   new-message rewards {choir_text(t['new_message_rewards_paid'])}"
        f"   prior rewards {choir_text(t['prior_rewards_paid'])}   treasury {choir_text(t['treasury_balance'])}",
        "",
        f"{'day':<12}{'active':>8}{'messages':>10}{'questions':>11}{'citations':>11}",
    ]
    out += [
        f"{d.day:<12}{d.active_users:>8}{d.messages:>10}{d.questions:>11}{d.citations:>11}"
        for d in report.days[-DAYS_SHOWN:]
    ]
    out += ["", f"{'epoch':>7}  {'settled at':<20}{'new-message paid':>26}{'prior paid':>26}{'paid to':>9}"]
    out += [
        f"{e.epoch:>7}  {e.settled_at.strftime('%Y-%m-%d %H:%M'):<20}{choir_text(e.new_message_paid):>26}"
        f"{choir_text(e.prior_paid):>26}{e.recipients:>9}"
        for e in report.epochs[-EPOCHS_SHOWN:]
    ]
    out += ["", "most-cited priors:"]
    out += [
        f"  {c.citations:>4}× (mean score {c.mean_score:.2f}) {c.message_id} in {c.thread_id}: {c.excerpt}"
        for c in report.top_cited
    ] or ["  none yet"]
    out += ["", "thread temperature and recommended stake (end of each day, UTC):"]
    for series in report.threads:
        out.append(f"  {series.thread_id} — {series.title}")
        out += [
            f"    {p.at.strftime('%Y-%m-%d %H:%M')}  T {p.temperature:>14,.3f}  stake "
            f"{choir_text(p.recommended_stake):>24}  co-authors {p.co_authors:>2}  messages {p.messages}"
            for p in series.points[-DAYS_SHOWN:]
        ]
    if not report.threads:
        out.append("  no public thread yet")
    return out
