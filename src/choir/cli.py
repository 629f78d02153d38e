"""The ``choir`` command."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Choir: group chat whose AI answers by citing the community's priors.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """Choir's commands: serve, simulate, audit, stats, proof."""


@app.command()
def simulate(
    seed: int = typer.Option(1, help="Seed; the same seed replays the same run."),
    steps: int = typer.Option(10_000, min=1, help="Instructions to generate."),
    actors: int = typer.Option(20, min=1, max=10_000, help="Distinct actors."),
    database_url: str = typer.Option("sqlite://", help="Store to drive (default: SQLite in memory)."),
    seeds: int = typer.Option(1, min=1, max=10_000, help="Run this many seeds, from --seed on."),
    scenario: str | None = typer.Option(
        None, help="Play one incentive attack instead (or `all`), and print the bound it reached."
    ),
) -> None:
    """Drive the coordinator with random valid and invalid instructions, checking every invariant."""
    if scenario is not None:
        from choir.ops.scenarios import SCENARIOS

        if scenario != "all" and scenario not in SCENARIOS:
            typer.echo(
                f"choir: unknown scenario {scenario!r}; choose from all, {', '.join(SCENARIOS)}", err=True
            )
            raise typer.Exit(2)
        bounds = [play() for name, play in SCENARIOS.items() if scenario in ("all", name)]
        for bound in bounds:
            typer.echo(bound.line())
        raise typer.Exit(0 if all(b.holds for b in bounds) else 1)
    from choir.ops.simulate import SimulationFailure
    from choir.ops.simulate import simulate as run

    started = time.perf_counter()
    for one in range(seed, seed + seeds):
        try:
            report = run(one, steps, actors, database_url)
        except SimulationFailure as failure:
            typer.echo(str(failure), err=True)
            raise typer.Exit(1) from None
        for line in report.lines():
            typer.echo(line)
    elapsed = time.perf_counter() - started
    total = steps * seeds
    typer.echo(f"{total} steps ({seeds} seeds) in {elapsed:.1f} s ({total / elapsed:,.0f} steps/s)")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to listen on [CHOIR_HOST, default 127.0.0.1]."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port [CHOIR_PORT, default 8000]."),
    data_dir: Path | None = typer.Option(None, help="Data directory [CHOIR_DATA_DIR, default ./choir-data]."),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes on one port (SO_REUSEPORT); above 1 they need PostgreSQL, Redis and a "
        "shared vector index (CHOIR_VECTOR_ENGINE=sql or CHOIR_QDRANT_URL).",
    ),
    reuse_port: bool = typer.Option(
        False, "--reuse-port", help="Share the port with other `choir serve --reuse-port` processes."
    ),
) -> None:
    """Run the Choir server (web UI at /, WebSocket at /ws, REST at /api)."""
    from pydantic import ValidationError

    from choir.config import Settings

    overrides: dict[str, Any] = {
        k: v for k, v in {"host": host, "port": port, "data_dir": data_dir}.items() if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = "CHOIR_" + "_".join(str(p) for p in error["loc"]).upper()
            typer.echo(f"choir: bad setting {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    if workers > 1:
        from choir.server.workers import run_workers

        raise typer.Exit(run_workers(settings, workers))
    from choir.server.run import run

    raise typer.Exit(run(settings, reuse_port))


def main() -> None:  # pragma: no cover - entry point
    sys.exit(app())


@app.command()
def audit(
    data_dir: Path | None = typer.Option(None, help="Data directory [CHOIR_DATA_DIR, default ./choir-data]."),
    database_url: str | None = typer.Option(
        None, help="Store URL [CHOIR_DATABASE_URL, default SQLite in data dir]."
    ),
    index: bool = typer.Option(
        True, "--index/--no-index", help="Also check the vector index against the store."
    ),
    chain: bool = typer.Option(
        False,
        "--chain",
        help="Also reconcile the chain [CHOIR_CHAIN, default the embedded litesvm] with the ledger "
        "and check its anchored records against the store and the index.",
    ),
) -> None:
    """Prove conservation and coherence from the store alone; exit 1 on any finding, 2 if it cannot audit."""
    from choir.ops.commands import audit_command

    raise typer.Exit(audit_command(data_dir, database_url, index, typer.echo, check_chain=chain))


@app.command()
def proof(
    message_id: str = typer.Argument(..., help="The message to prove."),
    version: int = typer.Option(
        1, min=1, help="Which version: 1 as published, then each edit and the deletion."
    ),
    data_dir: Path | None = typer.Option(None, help="Data directory [CHOIR_DATA_DIR, default ./choir-data]."),
    database_url: str | None = typer.Option(
        None, help="Store URL [CHOIR_DATABASE_URL, default SQLite in data dir]."
    ),
) -> None:
    """A message's inclusion proof in its anchored Merkle root, checked offline; exit 1 if not proven."""
    from choir.ops.proofs import proof_command

    raise typer.Exit(proof_command(data_dir, database_url, message_id, typer.echo, version))


@app.command()
def stats(
    data_dir: Path | None = typer.Option(None, help="Data directory [CHOIR_DATA_DIR, default ./choir-data]."),
    database_url: str | None = typer.Option(
        None, help="Store URL [CHOIR_DATABASE_URL, default SQLite in data dir]."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the stats as JSON (as GET /api/stats)."),
) -> None:
    """Activity, rewards, the most-cited priors, thread temperature over time, read from the store."""
    from choir.ops.commands import stats_command

    raise typer.Exit(stats_command(data_dir, database_url, as_json, typer.echo))
