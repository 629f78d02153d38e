"""Refusals of sign-in and sessions, each with a stable ``code`` the API returns as is.

AuthError(code, message)              401 unless noted
├── SiwsError                         the text or its encodings are malformed
│     bad_message, bad_address, bad_signature
├── nonce_unknown, nonce_used, nonce_expired
├── field_mismatch                    ``.field`` names the field that differs from what was issued
├── stale_issued_at                   Issued At more than 10 minutes from the server's clock
├── bad_signature                     a well-formed signature that does not verify
└── DisplayNameError                  invalid_display_name (400), name_taken (409), unknown_user (404)
"""

from __future__ import annotations


class AuthError(Exception):
    status = 401

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class SiwsError(AuthError):
    """A Sign-In With Solana text, address or signature that cannot be read."""


class DisplayNameError(AuthError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = {"unknown_user": 404, "name_taken": 409}.get(code, 400)
