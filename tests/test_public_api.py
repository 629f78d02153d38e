"""`choir/__init__.py` is the whole public API: one `__all__`, sorted, unique, complete and importable.

As httpx's tests/test_exported_members.py does. The order is the "isort-style" one that ruff's RUF022
(enabled in pyproject.toml) enforces, so the linter and this test never ask for different orders.
"""

from __future__ import annotations

import re
from types import ModuleType

import pytest

import choir
from services import skip_or_fail

_DIGITS = re.compile(r"(\d+)")


def isort_style_key(name: str) -> tuple[int, list[str | int]]:
    """RUF022's order: SCREAMING_CASE, then CamelCase, then the rest; each in natural order (a2 < a10)."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    natural = [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]
    return category, natural


def exported() -> list[str]:
    names = getattr(choir, "__all__", None)
    if names is None:
        skip_or_fail("choir/__init__.py has no __all__ yet")
    return list(names)


def test_all_is_sorted() -> None:
    names = exported()
    assert names == sorted(names, key=isort_style_key)


def test_all_has_no_duplicates() -> None:
    names = exported()
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert duplicates == []


def test_every_name_in_all_exists() -> None:
    missing = [name for name in exported() if not hasattr(choir, name)]
    assert missing == [], f"in choir.__all__ but not defined in choir: {missing}"


def test_every_public_name_is_in_all() -> None:
    """A name imported into choir/__init__.py is public only when __all__ says so; submodules do not count."""
    names = set(exported())
    public = {
        name
        for name, value in vars(choir).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert sorted(public - names) == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from choir import *", namespace)
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == sorted(exported())


@pytest.mark.parametrize(
    "shuffled, expected",
    [
        (["apply", "Settings", "ONE_CHOIR"], ["ONE_CHOIR", "Settings", "apply"]),
        (["Spec10", "Spec2", "A"], ["A", "Spec2", "Spec10"]),
        (["__version__", "X", "Xy", "XY"], ["XY", "X", "Xy", "__version__"]),
    ],
)
def test_isort_style_key(shuffled: list[str], expected: list[str]) -> None:
    assert sorted(shuffled, key=isort_style_key) == expected


def test_importing_choir_loads_the_core_only_and_the_shell_on_first_use() -> None:
    """The core's names are eager; the shell's (and their frameworks) load when first asked for."""
    import subprocess
    import sys

    code = (
        "import sys, choir; "
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'starlette', 'redis', 'choir.store.sql') if m in sys.modules]; "
        "assert heavy == [], heavy; "
        "assert choir.Store.__module__ == 'choir.store.sql' and 'sqlalchemy' in sys.modules; "
        "assert choir.Writer.__module__ == 'choir.engine.writer'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        choir.Nothing  # noqa: B018
