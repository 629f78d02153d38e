"""Run every benchmark: `python -m bench [--quick] [names...]`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. core socket")
    args, extra = parser.parse_known_args(argv)
    if extra and len(args.names) != 1:
        parser.error(
            f"options {' '.join(extra)} go to one named benchmark, e.g. python -m bench load --clients 500"
        )
    here = Path(__file__).parent
    found = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )
    unknown = set(args.names) - set(found)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(found)}")
    for name in args.names or found:
        print(f"\n== {name} ==", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        module.main((["--quick"] if args.quick else []) + extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
