"""The architecture, kept by tests: the contracts in pyproject.toml ([tool.importlinter]: every
arrow down or sideways, a pure core, one composition root), no import cycle, and no module over
600 lines. Each guard is also shown to fail: a planted violation in a copy of the source tree
must break it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_MODULE_LINES = 600
CONTRACT_NAMES = {
    "layers": "Every import arrow points down or sideways",
    "pure-core": "The pure core touches no clock, socket, disk, database or framework",
    "one-root": "Only the entry points import the composition root",
}


def lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def import_cycles(src: Path) -> list[list[str]]:
    """The cycles of ``choir`` under ``src``, found in a child process (grimp reads sys.path)."""
    code = "import json, cycles; print(json.dumps(cycles.import_cycles('choir')))"
    env = os.environ | {"PYTHONPATH": f"{src}{os.pathsep}{Path(__file__).parent}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cycles: list[list[str]] = json.loads(out.stdout)
    return cycles


def oversized(root: Path) -> list[str]:
    return [
        f"{p.relative_to(root)}: {n} lines"
        for p in sorted(root.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree and of pyproject.toml to plant violations in."""
    root = tmp_path_factory.mktemp("planted")
    shutil.copytree(
        SRC / "choir", root / "src" / "choir", ignore=shutil.ignore_patterns("web", "__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def plant(root: Path, module: str, line: str) -> None:
    """Add an import line to a module of the copy, after its ``from __future__`` line if any."""
    path = root / "src" / (module.replace(".", "/") + ".py")
    text = path.read_text()
    future = "from __future__ import annotations\n"
    if future in text:
        text = text.replace(future, future + line + "\n", 1)
    else:
        text = line + "\n" + text
    path.write_text(text)


# -- the guards hold on the real tree --------------------------------------------------------------


def test_import_contracts_hold() -> None:
    result = lint_imports(SRC, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACT_NAMES.values():
        assert re.search(rf"{re.escape(name)}\s+KEPT", result.stdout), result.stdout


def test_no_import_cycle() -> None:
    assert import_cycles(SRC) == []


def test_no_module_over_600_lines() -> None:
    assert oversized(SRC / "choir") == []


# -- and each one fails on a planted violation -----------------------------------------------------


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("choir.program.state", "import sqlite3", None),  # stdlib I/O: see the pure-core list below
        ("choir.program.state", "import time", "pure-core"),
        ("choir.ledger.ledger", "import sqlalchemy", "pure-core"),
        ("choir.engine.snapshot", "import choir.http.views", "layers"),
        ("choir.store.codec", "from choir.engine import Snapshot", "layers"),
        (
            "choir.realtime.hub",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import choir.server.app",
            "one-root",
        ),
    ],
)
def test_a_planted_import_breaks_its_contract(
    planted: Path, tmp_path: Path, module: str, line: str, contract: str | None
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(planted, root)
    plant(root, module, line)
    result = lint_imports(root / "src", root / "pyproject.toml")
    if contract is None:
        # sqlite3 is not on the pure-core list: the contract names what it forbids, and this is the
        # control that a harmless plant keeps every contract.
        assert result.returncode == 0, result.stdout
        return
    assert result.returncode != 0
    assert re.search(rf"{re.escape(CONTRACT_NAMES[contract])}\s+BROKEN", result.stdout), result.stdout


def test_a_planted_cycle_is_found(planted: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    shutil.copytree(planted, root)
    # Sideways both ways: allowed by the layers, caught as a cycle (type-checking imports count).
    plant(
        root,
        "choir.engine.snapshot",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import choir.engine.commits",
    )
    cycles = import_cycles(root / "src")
    assert any({"choir.engine.snapshot", "choir.engine.commits"} <= set(c) for c in cycles), cycles


def test_a_planted_long_module_is_found(planted: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    shutil.copytree(planted, root)
    (root / "src" / "choir" / "engine" / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized(root / "src" / "choir") == [f"engine/long.py: {MAX_MODULE_LINES + 1} lines"]
