"""The edge shard's generation directories: naming, the `CURRENT` pointer (written atomically),
and the lock that makes one process the owner of a shard directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from choir.store.vectors.protocol import VectorIndexError


def _generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def _generation_number(gen_dir: Path) -> int:
    return int(gen_dir.name.removeprefix("gen-"))


def _write_current(root: Path, name: str) -> None:
    tmp = root / "CURRENT.tmp"
    with open(tmp, "w") as f:
        f.write(name)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / "CURRENT")
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _lock_directory(root: Path) -> IO[str]:
    lock_file = open(root / "LOCK", "a")  # noqa: SIM115 - held open for the index's lifetime
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise VectorIndexError(f"{root} is already open (one process owns a vector shard)") from None
    return lock_file
