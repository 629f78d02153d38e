"""The body of ``choir audit --chain``: the store audit, then the chain the store settled on.

Which chain: ``CHOIR_CHAIN`` (``litesvm`` when unset, the embedded chain saved in the store; ``rpc``
reads the cluster at ``CHOIR_SOLANA_RPC_URL``), the one that settled most recently. Exit status as
``choir audit``: 0 clean, 1 findings, 2 when it could not audit (here also: no chain to audit, or a
cluster that cannot be reached).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from choir.chain.audit_checks import find_chain_source
from choir.chain.errors import ChainError
from choir.observability.commands import (
    EXIT_CANNOT_AUDIT,
    EXIT_CLEAN,
    EXIT_FINDINGS,
    CannotOpen,
    Echo,
    open_index,
    open_store,
    settings_for,
)


def chain_audit_command(
    data_dir: Path | None, database_url: str | None, check_index: bool, echo: Echo
) -> int:
    from choir.audit import audit

    try:
        settings = settings_for(data_dir, database_url)
        kind = "litesvm" if settings.chain == "none" else settings.chain
        with open_store(settings) as store:
            source = find_chain_source(store, kind, settings.solana_rpc_url)
            if not check_index:
                report = audit(store, chain=source)
            else:
                with open_index(settings) as index:
                    report = audit(store, index, chain=source)
    except (CannotOpen, ChainError) as exc:
        echo(f"choir audit: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    except SQLAlchemyError as exc:
        echo(f"choir audit: cannot read the store: {exc.__class__.__name__}: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    for line in report.lines():
        echo(line)
    return EXIT_CLEAN if report.ok else EXIT_FINDINGS
