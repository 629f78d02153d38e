"""HTTP: the REST routes, their dependencies and views, and one error table.

deps.py      what a handler needs (the ``Deps`` interface the server's runtime satisfies),
             the signed-in user, the Origin check
views.py     records -> JSON, from one committed snapshot
errors.py    every refusal as ``{code, message}`` with its HTTP status, in one table
routes/      auth, threads, accounts, search, ask, ops
"""

from choir.http.deps import Deps
from choir.http.routes import router

__all__ = ["Deps", "router"]
