"""Identity: Sign-In With Solana, sessions, origin checks and rate limits (DESIGN §2, §7)."""

from choir.auth.client import address_of, sign_in_message
from choir.auth.errors import AuthError, DisplayNameError, SiwsError
from choir.auth.origin import normalize_origin, origin_allowed
from choir.auth.ratelimit import SlidingWindow, TokenBucket
from choir.auth.service import AuthService, SignIn, check_display_name, short_address
from choir.auth.siws import SiwsFields, build_message, parse_message, verify_signature

__all__ = [
    "AuthError",
    "AuthService",
    "DisplayNameError",
    "SignIn",
    "SiwsError",
    "SiwsFields",
    "SlidingWindow",
    "TokenBucket",
    "address_of",
    "build_message",
    "check_display_name",
    "normalize_origin",
    "origin_allowed",
    "parse_message",
    "short_address",
    "sign_in_message",
    "verify_signature",
]
