"""The REST routes (DESIGN §7), one module per concern, joined into one router. Amounts are
decimal strings of base units; errors are ``{code, message}``; state-changing calls check
``Origin`` as the socket does."""

from fastapi import APIRouter

from choir.http.routes import accounts, ask, auth, inbox, ops, search, threads

router = APIRouter()
for _module in (auth, threads, accounts, search, ask, inbox, ops):
    router.include_router(_module.router)

__all__ = ["router"]
