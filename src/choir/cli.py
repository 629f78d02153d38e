"""The ``choir`` command."""

from __future__ import annotations

import sys
import time

import typer

app = typer.Typer(
    help="Choir: group chat whose AI answers by citing the community's priors.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """Choir's commands: serve, simulate, audit, stats."""


@app.command()
def simulate(
    seed: int = typer.Option(1, help="Seed; the same seed replays the same run."),
    steps: int = typer.Option(10_000, min=1, help="Instructions to generate."),
    actors: int = typer.Option(20, min=1, max=10_000, help="Distinct actors."),
    database_url: str = typer.Option("sqlite://", help="Store to drive (default: SQLite in memory)."),
) -> None:
    """Drive the coordinator with random valid and invalid instructions, checking every invariant."""
    from choir.sim import SimulationFailure
    from choir.sim import simulate as run

    started = time.perf_counter()
    try:
        report = run(seed, steps, actors, database_url)
    except SimulationFailure as failure:
        typer.echo(str(failure), err=True)
        raise typer.Exit(1) from None
    for line in report.lines():
        typer.echo(line)
    elapsed = time.perf_counter() - started
    typer.echo(f"{steps} steps in {elapsed:.1f} s ({steps / elapsed:,.0f} steps/s)")


def main() -> None:  # pragma: no cover - entry point
    sys.exit(app())
