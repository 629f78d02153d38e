"""Sign-in, sessions and display names over the SQL store.

``issue_nonce`` hands out every field the client signs and remembers them under a single-use nonce;
``verify`` reads the signed text, holds each field to what was issued, consumes the nonce, checks the
signature, and opens a session. Only ``sha256(token)`` is stored: a leaked database signs no one in.
Everything is synchronous; each call is one or two short transactions.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from sqlalchemy import delete, false, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from choir.auth.errors import AuthError, DisplayNameError
from choir.auth.siws import SiwsFields, decode_address, decode_signature, parse_message, parse_time
from choir.auth.siws import verify_signature as signature_valid
from choir.store import schema
from choir.store.names import name_digests

if TYPE_CHECKING:
    from choir.store.sql import Store

Clock = Callable[[], datetime]

STATEMENT = "Sign in to Choir."
VERSION = "1"
NONCE_ALPHABET = string.ascii_letters + string.digits
NONCE_CHARS = 22  # 22 of 62 symbols ≈ 131 bits: unguessable, and SIWS wants alphanumerics only
ISSUED_AT_SKEW_S = 600
SESSION_TOKEN_BYTES = 32
SESSION_TOKEN_CHARS_MAX = 128  # a real token is 43; longer is refused before hashing
DISPLAY_NAME_CHARS_MAX = 32
# Expired nonces are kept a while so a late verify hears "expired" rather than "unknown"; then pruned.
NONCE_KEEP_AFTER_EXPIRY_S = 3600
PRUNE_EVERY_ISSUES = 256
IN_CLAUSE_ITEMS_MAX = 500  # well under SQLite's bound-variable limit
# The fields a message must carry exactly as issued, in the order they are checked.
ISSUED_FIELDS = ("domain", "uri", "version", "chain_id", "statement", "issued_at", "expiration_time")


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(at: datetime) -> str:
    """``2025-01-02T03:04:05.678Z``: what JavaScript's ``Date.toISOString`` writes."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def short_address(address: str) -> str:
    """The default display name: ``AbCd…WxYz``."""
    return address if len(address) <= 9 else f"{address[:4]}…{address[-4:]}"


# The session cookie's name, read by REST and by the /ws handshake alike.
SESSION_COOKIE: Final = "choir_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_key(token: str | None) -> str:
    """Names a session among a person's sessions (its sockets, a logout) without its token."""
    return token_hash(token)[:32] if token else ""


class SignIn(NamedTuple):
    address: str
    token: str


class AuthService:
    def __init__(
        self,
        store: Store,
        domain: str,
        uri: str,
        chain_id: str = "mainnet",
        nonce_ttl_s: int = 300,
        session_ttl_s: int = 30 * 86400,
        clock: Clock = utc_now,
        statement: str = STATEMENT,
    ) -> None:
        if nonce_ttl_s <= 0 or session_ttl_s <= 0:
            raise ValueError("nonce_ttl_s and session_ttl_s must be positive")
        # Refuse at start-up a setting that would make every message unparseable.
        SiwsFields(domain=domain, address="1" * 32, statement=statement, uri=uri, chain_id=chain_id)
        self.store = store
        self.domain = domain
        self.uri = uri
        self.chain_id = chain_id
        self.statement = statement
        self.nonce_ttl_s = nonce_ttl_s
        self.session_ttl_s = session_ttl_s
        self.clock = clock
        self._issued_count = 0
        dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
        self._insert_user = dialect_insert(schema.users).on_conflict_do_nothing(index_elements=["address"])

    def _now(self) -> datetime:
        # Milliseconds, as the issued text carries them, so stored and signed times agree exactly.
        now = self.clock().astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    # -- sign-in ------------------------------------------------------------------------------

    def issue_nonce(self) -> dict[str, str]:
        """Every field of GET /api/auth/nonce; the nonce is stored, single-use, for ``nonce_ttl_s``."""
        now = self._now()
        expires_at = now + timedelta(seconds=self.nonce_ttl_s)
        nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(NONCE_CHARS))
        fields = {
            "domain": self.domain,
            "uri": self.uri,
            "version": VERSION,
            "chain_id": self.chain_id,
            "nonce": nonce,
            "issued_at": iso_ms(now),
            "expiration_time": iso_ms(expires_at),
            "statement": self.statement,
        }
        with self.store.begin() as conn:
            conn.execute(
                schema.nonces.insert().values(
                    nonce=nonce, issued_at=now, expires_at=expires_at, fields=fields, used=False
                )
            )
        self._issued_count += 1
        if self._issued_count % PRUNE_EVERY_ISSUES == 0:
            # Issuing is unauthenticated, so the table is bounded by pruning, not by trust.
            self.prune()
        return fields

    def verify(self, message: str, signature: str, address: str) -> SignIn:
        """Check a signed sign-in message and open a session; raises AuthError with its code."""
        fields = parse_message(message)
        if fields.nonce is None or len(fields.nonce) != NONCE_CHARS:
            raise AuthError("nonce_unknown", "the message carries no nonce this server issued")
        # The nonce is consumed by any attempt that names it, before anything else is checked, and in
        # its own committed transaction so a later refusal cannot roll the consumption back. A signed
        # message therefore gets exactly one try: a replay, or a guess at a signature, cannot be retried.
        # The cost is that whoever knows a nonce can burn it; but a nonce travels only to the client that
        # asked for it, and a burned one costs that client one more GET of a new one.
        issued, expires_at = self._consume(fields.nonce)
        now = self.clock()
        if now >= expires_at:
            raise AuthError("nonce_expired", "the nonce has expired: ask for a new one")
        decode_address(address)
        if fields.address != address:
            raise AuthError("field_mismatch", "the message is for another address", field="address")
        for name in ISSUED_FIELDS:
            if getattr(fields, name) != issued.get(name):
                raise AuthError("field_mismatch", f"{name} differs from what was issued", field=name)
        assert fields.issued_at is not None  # it equals the issued one
        if abs((now - parse_time(fields.issued_at)).total_seconds()) > ISSUED_AT_SKEW_S:
            raise AuthError("stale_issued_at", "Issued At is more than 10 minutes from the server's clock")
        decode_signature(signature)
        if not signature_valid(message.encode("utf-8"), signature, address):
            raise AuthError("bad_signature", "the signature does not verify for this address")
        return SignIn(address, self._open_session(address))

    def _consume(self, nonce: str) -> tuple[dict[str, Any], datetime]:
        n = schema.nonces
        with self.store.begin() as conn:
            # Conditional on used = false and judged by rowcount: of two racing verifies, one wins.
            claimed = conn.execute(
                update(n).where(n.c.nonce == nonce, n.c.used == false()).values(used=true())
            ).rowcount
            row = conn.execute(select(n.c.fields, n.c.expires_at).where(n.c.nonce == nonce)).first()
        if row is None:
            raise AuthError("nonce_unknown", "this nonce was never issued (or was pruned)")
        if claimed != 1:
            raise AuthError("nonce_used", "this nonce has already been used: ask for a new one")
        return row.fields, row.expires_at

    def _open_session(self, address: str) -> str:
        now = self._now()
        token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
        default = short_address(address)
        try:
            return self._open(address, default, name_digests(default), token, now)
        except IntegrityError:
            # Another's short address reads as this one's (an astronomically rare look-alike): the
            # newcomer keeps it unkeyed until they choose a name.
            return self._open(address, default, None, token, now)

    def _open(self, address: str, name: str, keys: tuple[str, str] | None, token: str, now: datetime) -> str:
        name_key, look_key = keys or (None, None)
        row = {"address": address, "display_name": name, "name_key": name_key, "look_key": look_key}
        with self.store.begin() as conn:
            conn.execute(self._insert_user, row | {"created_at": now})
            conn.execute(
                schema.sessions.insert().values(
                    token_hash=token_hash(token),
                    address=address,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.session_ttl_s),
                )
            )
        return token

    # -- sessions -----------------------------------------------------------------------------

    def session_user(self, token: str | None) -> str | None:
        """The address a session token signs in, or None when unknown, expired or malformed."""
        if not isinstance(token, str) or not 0 < len(token) <= SESSION_TOKEN_CHARS_MAX:
            return None
        s = schema.sessions
        query = select(s.c.address).where(s.c.token_hash == token_hash(token), s.c.expires_at > self.clock())
        with self.store.engine.connect() as conn:
            address: str | None = conn.execute(query).scalar_one_or_none()
        return address

    def logout(self, token: str | None) -> bool:
        """End a session. True if there was one to end."""
        if not isinstance(token, str) or not 0 < len(token) <= SESSION_TOKEN_CHARS_MAX:
            return False
        with self.store.begin() as conn:
            ended = conn.execute(
                delete(schema.sessions).where(schema.sessions.c.token_hash == token_hash(token))
            )
        return ended.rowcount > 0

    def prune(self) -> tuple[int, int]:
        """Delete long-expired nonces and expired sessions; returns how many of each."""
        now = self.clock()
        n, s = schema.nonces, schema.sessions
        with self.store.begin() as conn:
            old = now - timedelta(seconds=NONCE_KEEP_AFTER_EXPIRY_S)
            nonces = conn.execute(delete(n).where(n.c.expires_at < old)).rowcount
            sessions = conn.execute(delete(s).where(s.c.expires_at <= now)).rowcount
        return nonces, sessions

    # -- display names ------------------------------------------------------------------------

    def set_display_name(self, address: str, name: str) -> str:
        """Validate and store a user's display name; returns it as stored (NFC, trimmed)."""
        clean = check_display_name(name)
        keys = name_digests(clean)
        users = schema.users
        try:
            with self.store.begin() as conn:
                updated = conn.execute(
                    update(users)
                    .where(users.c.address == address)
                    .values(display_name=clean, name_key=keys[0], look_key=keys[1])
                )
        except IntegrityError:
            raise DisplayNameError(
                "name_taken",
                f"{clean!r} is taken: someone here has a name that reads the same "
                "(the same letters in another case, or look-alike letters); choose another",
            ) from None
        if updated.rowcount != 1:
            raise DisplayNameError("unknown_user", "no user with this address has signed in")
        return clean

    def display_name(self, address: str) -> str:
        return self.display_names([address])[address]

    def display_names(self, addresses: Iterable[str]) -> dict[str, str]:
        """A name for every address asked about: the chosen one, else the short address."""
        wanted = list(dict.fromkeys(addresses))
        names = {a: short_address(a) for a in wanted}
        u = schema.users
        with self.store.engine.connect() as conn:
            for i in range(0, len(wanted), IN_CLAUSE_ITEMS_MAX):
                chunk = wanted[i : i + IN_CLAUSE_ITEMS_MAX]
                rows = conn.execute(select(u.c.address, u.c.display_name).where(u.c.address.in_(chunk)))
                names.update((r.address, r.display_name) for r in rows if r.display_name)
        return names


def check_display_name(name: str) -> str:
    if not isinstance(name, str):
        raise DisplayNameError("invalid_display_name", "a display name is text")
    clean = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(clean) <= DISPLAY_NAME_CHARS_MAX:
        raise DisplayNameError(
            "invalid_display_name", f"a display name has 1 to {DISPLAY_NAME_CHARS_MAX} characters"
        )
    # Control, format (e.g. right-to-left overrides, which disguise a name), private-use and
    # unassigned characters, and line breaks, have no place in a name shown to others.
    if any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in clean):
        raise DisplayNameError("invalid_display_name", "a display name may not contain control characters")
    return clean
