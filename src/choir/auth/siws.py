"""Sign-In With Solana: the message text, its strict parser, and Ed25519 verification.

The text is the one `@solana/wallet-standard-util`'s ``createSignInMessageText`` writes and wallets sign
(``\\n`` endings, no trailing newline, an omitted field leaves out its line):

    {domain} wants you to sign in with your Solana account:
    {address}

    {statement}

    URI: {uri}
    Version: 1
    Chain ID: {chain_id}
    Nonce: {nonce}
    Issued At: {issued_at}
    Expiration Time: {expiration_time}

Choir never issues ``Not Before``, ``Request ID`` or ``Resources``, so the parser refuses them. Parsing is
strict: a text is accepted only if building it again from what was parsed gives the same text, so one
message has exactly one reading and a signature covers exactly what the server checks.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import base58
from nacl.signing import VerifyKey

from choir.auth.errors import SiwsError

HEADER = " wants you to sign in with your Solana account:"
# The optional lines, in the order the text carries them: (attribute, label).
FIELD_LINES = (
    ("uri", "URI"),
    ("version", "Version"),
    ("chain_id", "Chain ID"),
    ("nonce", "Nonce"),
    ("issued_at", "Issued At"),
    ("expiration_time", "Expiration Time"),
)
# Lines Choir never issues; a statement may not start with one either, or the text would read two ways.
OTHER_LABELS = ("Not Before: ", "Request ID: ", "Resources:")
LABEL_PREFIXES = tuple(f"{label}: " for _, label in FIELD_LINES) + OTHER_LABELS
# A real message is ~400 characters; the bound keeps parsing cheap on hostile input.
MESSAGE_CHARS_MAX = 4096
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# The longest base58 spellings of 32 and 64 bytes; longer strings are refused before decoding,
# which is quadratic in the length.
ADDRESS_CHARS_MAX = 44
SIGNATURE_CHARS_MAX = 88


@dataclass(frozen=True)
class SiwsFields:
    """One sign-in message's fields. Optional fields are None when their line is absent."""

    domain: str
    address: str
    statement: str | None = None
    uri: str | None = None
    version: str | None = None
    chain_id: str | None = None
    nonce: str | None = None
    issued_at: str | None = None
    expiration_time: str | None = None

    def __post_init__(self) -> None:
        if not self.domain or any(c.isspace() for c in self.domain):
            raise SiwsError("bad_message", "the domain must be non-empty and contain no whitespace")
        decode_address(self.address)
        for name, value in dataclasses.asdict(self).items():
            if value is not None:
                _check_line(name, value)
        if self.statement is not None and self.statement.startswith(LABEL_PREFIXES):
            raise SiwsError("bad_message", "the statement may not start like a field line")
        for name in ("issued_at", "expiration_time"):
            value = getattr(self, name)
            if value is not None:
                parse_time(value, name)

    @classmethod
    def from_issued(cls, issued: Mapping[str, str], address: str) -> SiwsFields:
        """The fields a client signs: what ``GET /api/auth/nonce`` returned, for ``address``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"address"}
        return cls(address=address, **{k: v for k, v in issued.items() if k in names})


def _check_line(name: str, value: str) -> None:
    if not value:
        # An empty field would be left out of the text, so it could not be read back.
        raise SiwsError("bad_message", f"{name} is empty")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise SiwsError("bad_message", f"{name} contains a control character")


def parse_time(value: str, name: str = "time") -> datetime:
    """An ISO 8601 time with an explicit offset (``...Z`` or ``+00:00``)."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise SiwsError("bad_message", f"{name} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise SiwsError("bad_message", f"{name} has no time zone")
    return at


def build_message(fields: SiwsFields) -> str:
    text = f"{fields.domain}{HEADER}\n{fields.address}"
    if fields.statement:
        text += f"\n\n{fields.statement}"
    lines = [f"{label}: {value}" for name, label in FIELD_LINES if (value := getattr(fields, name))]
    if lines:
        text += "\n\n" + "\n".join(lines)
    return text


def parse_message(text: str) -> SiwsFields:
    if not isinstance(text, str) or len(text) > MESSAGE_CHARS_MAX:
        raise SiwsError(
            "bad_message", f"the message must be a text of at most {MESSAGE_CHARS_MAX} characters"
        )
    try:
        # What is signed is the UTF-8 of the text; a lone surrogate (valid JSON) has none.
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SiwsError("bad_message", "the message is not valid Unicode") from None
    head, sep, rest = text.partition("\n")
    if not sep or not head.endswith(HEADER):
        raise SiwsError("bad_message", "the message does not start with a Sign-In With Solana header")
    address, sep, body = rest.partition("\n")
    if sep and not body.startswith("\n"):
        raise SiwsError("bad_message", "a blank line must follow the address")
    values: dict[str, str] = {}
    for block in body[1:].split("\n\n") if sep else ():
        if block.startswith(LABEL_PREFIXES):
            values.update(_field_lines(block))
        elif values:
            raise SiwsError("bad_message", "the statement must come before the fields")
        else:
            values["statement"] = block
    fields = SiwsFields(domain=head[: -len(HEADER)], address=address, **values)
    if build_message(fields) != text:
        raise SiwsError("bad_message", "the message is not in the canonical Sign-In With Solana form")
    return fields


def _field_lines(block: str) -> dict[str, str]:
    by_label = {f"{label}: ": name for name, label in FIELD_LINES}
    values: dict[str, str] = {}
    for line in block.split("\n"):
        prefix = next((p for p in by_label if line.startswith(p)), None)
        if prefix is None:
            raise SiwsError("bad_message", f"unexpected line in the fields: {line[:40]!r}")
        name = by_label[prefix]
        if name in values:
            raise SiwsError("bad_message", f"{name} appears twice")
        values[name] = line[len(prefix) :]
    return values


def decode_address(address_b58: str) -> bytes:
    """The 32-byte Ed25519 public key a base58 address spells; ``bad_address`` otherwise."""
    key = _decode_b58(address_b58, ADDRESS_CHARS_MAX, PUBLIC_KEY_BYTES)
    if key is None:
        raise SiwsError("bad_address", "an address is the base58 spelling of a 32-byte public key")
    return key


def decode_signature(signature_b58: str) -> bytes:
    signature = _decode_b58(signature_b58, SIGNATURE_CHARS_MAX, SIGNATURE_BYTES)
    if signature is None:
        raise SiwsError("bad_signature", "a signature is the base58 spelling of 64 bytes")
    return signature


def _decode_b58(value: object, chars_max: int, size: int) -> bytes | None:
    if not isinstance(value, str) or not 0 < len(value) <= chars_max:
        return None
    try:
        raw = base58.b58decode(value)
    except ValueError:
        return None
    # Only the canonical spelling: one key has one address, so string comparison is identity.
    if len(raw) != size or base58.b58encode(raw).decode() != value:
        return None
    return raw


def verify_signature(message: bytes, signature_b58: str, address_b58: str) -> bool:
    """True only for a valid Ed25519 signature of ``message`` by ``address``; never raises on bad input."""
    try:
        key = _decode_b58(address_b58, ADDRESS_CHARS_MAX, PUBLIC_KEY_BYTES)
        signature = _decode_b58(signature_b58, SIGNATURE_CHARS_MAX, SIGNATURE_BYTES)
        if key is None or signature is None:
            return False
        VerifyKey(key).verify(bytes(message), signature)
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        # Native crypto bindings may raise BaseException subclasses (pyo3's PanicException) on
        # hostile bytes: an untrusted input must give "invalid", never take the worker down.
        return False
