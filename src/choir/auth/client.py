"""The client's half of sign-in, for tests, the simulator and benchmarks: sign what the server issued
with a real Ed25519 key, exactly as a wallet would."""

from __future__ import annotations

from collections.abc import Mapping

import base58
from nacl.signing import SigningKey

from choir.auth.siws import SiwsFields, build_message


def address_of(keypair: SigningKey) -> str:
    return base58.b58encode(bytes(keypair.verify_key)).decode()


def sign_in_message(fields: Mapping[str, str], keypair: SigningKey) -> tuple[str, str, str]:
    """``(message, signature_b58, address)`` for POST /api/auth/verify, from the fields of
    GET /api/auth/nonce."""
    address = address_of(keypair)
    message = build_message(SiwsFields.from_issued(fields, address))
    signature = keypair.sign(message.encode("utf-8")).signature
    return message, base58.b58encode(signature).decode(), address
