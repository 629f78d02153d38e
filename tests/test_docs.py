"""Docs that cannot drift: every setting, protocol message and error code a user can meet is documented.

In the spirit of datasette's tests/test_docs.py. The names come from the code itself, so adding a setting,
a message type or an error code without its line in the docs fails here. While a module does not exist
yet its check is skipped, except under CI (services.skip_or_fail).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services import require_module, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_DIR = ROOT / "docs"
PROTOCOL_DOC = DOCS_DIR / "protocol.md"
SETTINGS_PREFIX = "CHOIR_"


def _read(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing", pytrace=False)
    return path.read_text(encoding="utf-8")


def _all_docs() -> str:
    return "\n".join(_read(path) for path in [README, *sorted(DOCS_DIR.rglob("*.md"))])


def _quoted(name: str, text: str) -> bool:
    """True when `name` appears in backticks or double quotes: `post` in prose would prove nothing."""
    return f"`{name}`" in text or f'"{name}"' in text


def _required(module: ModuleType, attribute: str) -> Any:
    if not hasattr(module, attribute):
        skip_or_fail(f"{module.__name__} has no {attribute} yet (this test reads it)")
    return getattr(module, attribute)


def _undocumented(names: Iterable[str], text: str) -> list[str]:
    return sorted(name for name in set(names) if not _quoted(name, text))


def _undocumented_settings(names: Iterable[str], text: str) -> list[str]:
    """Names that never appear as a whole word (CHOIR_LLM_URL inside CHOIR_LLM_URL_V2 does not count)."""
    return sorted(
        name for name in set(names) if not re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text)
    )


def setting_env_names(settings_class: Any) -> list[str]:
    """The environment variable of every field of a pydantic-settings class."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names = []
    for field_name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        names.append((alias if isinstance(alias, str) else prefix + field_name).upper())
    return sorted(names)


def test_every_setting_is_documented() -> None:
    settings_class = _required(require_module("choir.config"), "Settings")
    assert settings_class.model_config.get("env_prefix") == SETTINGS_PREFIX
    missing = _undocumented_settings(setting_env_names(settings_class), _all_docs())
    if missing:
        pytest.fail(f"settings missing from README.md and docs/*.md: {', '.join(missing)}", pytrace=False)


def test_every_protocol_message_is_documented() -> None:
    protocol = require_module("choir.realtime.protocol")
    names = [*_required(protocol, "CLIENT_TYPES"), *_required(protocol, "EVENT_KINDS")]
    # Optional: checked when the protocol module lists them.
    names += [*getattr(protocol, "SERVER_TYPES", ()), *getattr(protocol, "ERROR_CODES", {})]
    missing = _undocumented(names, _read(PROTOCOL_DOC))
    if missing:
        pytest.fail(
            f"protocol names missing from docs/protocol.md (in `backticks`): {', '.join(missing)}",
            pytrace=False,
        )


def test_every_refusal_is_documented() -> None:
    """The one table of refusals (REST status and socket code alike): each code in docs/protocol.md."""
    refusals = _required(require_module("choir.actions.refusals"), "REFUSALS")
    missing = _undocumented(refusals, _read(PROTOCOL_DOC))
    if missing:
        pytest.fail(f"refusal codes missing from docs/protocol.md: {', '.join(missing)}", pytrace=False)


def test_every_program_error_code_is_documented() -> None:
    codes = _required(require_module("choir.program.errors"), "ERROR_CODES")
    assert codes, "choir.program.errors.ERROR_CODES is empty"
    missing = _undocumented(codes, _all_docs())
    if missing:
        pytest.fail(
            f"error codes missing from README.md and docs/*.md (in `backticks`): {', '.join(missing)}",
            pytrace=False,
        )


def test_a_name_only_counts_when_quoted() -> None:
    text = 'Clients post messages. The `spec.vote` type and {"type": "ping"} frames.'
    assert _undocumented(["post", "spec.vote", "ping"], text) == ["post"]


def test_a_setting_only_counts_as_a_whole_word() -> None:
    text = "Set CHOIR_LLM_URL_V2 or `CHOIR_PORT`; XCHOIR_HOST is another program's."
    assert _undocumented_settings(["CHOIR_LLM_URL", "CHOIR_PORT", "CHOIR_HOST"], text) == [
        "CHOIR_HOST",
        "CHOIR_LLM_URL",
    ]


def test_setting_names_follow_the_prefix_and_aliases() -> None:
    class Example(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="CHOIR_")
        epoch_seconds: int = 3600
        other: str = Field("x", validation_alias="LEGACY_NAME")

    assert setting_env_names(Example) == ["CHOIR_EPOCH_SECONDS", "LEGACY_NAME"]


def test_every_security_item_names_a_test_that_exists() -> None:
    """The OWASP/SIWS table of docs/security.md names real tests (file::test; a bare ::test is in the
    file named before it on the same line)."""
    text = _read(DOCS_DIR / "security.md")
    section = text.split("## The OWASP WebSocket and SIWS lists", 1)[1].split("\n## ", 1)[0]
    missing = []
    named = 0
    for line in section.splitlines():
        current: str | None = None
        for path, test in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", line):
            if path:
                current = path
            if current is None:
                continue
            source = (ROOT / current).read_text() if (ROOT / current).is_file() else ""
            if not source:
                missing.append(current)
            elif test:
                named += 1
                if f"def {test}(" not in source:
                    missing.append(f"{current}::{test}")
    assert named >= 18 and missing == []
