"""The `server` and `sqlite_server` fixtures live in tests/conftest.py, shared by every directory."""
