"""The settlement keys: the custody authority (fee payer, owner of every custody account) and the
treasury multisig's signers, kept in one file under the data directory.

They must outlive the process: a restart that made new keys would derive other custody addresses and
another mint, a different chain. The file is created once, atomically and never overwritten
(written to a private temporary name, then hard-linked into place, which fails if the file appeared
meanwhile), with mode 0600; a file that others may read is refused, as ssh refuses such a key.

Format (JSON): ``{"version": 1, "authority": <base58 keypair>, "treasury_threshold": m,
"treasury_signers": [<base58 keypair>, ...]}``, the keypairs as Solana wallets print them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from solders.keypair import Keypair

from choir.chain.errors import ChainError
from choir.chain.genesis import TreasuryMultisig

KEYS_FILE_MODE: Final = 0o600
_FORMAT_VERSION: Final = 1
# Two of three: one lost or leaked treasury key neither locks nor opens the treasury.
TREASURY_THRESHOLD: Final = 2
TREASURY_SIGNERS: Final = 3


@dataclass(frozen=True)
class ChainKeys:
    authority: Keypair
    treasury_signers: tuple[Keypair, ...]
    threshold: int

    def __post_init__(self) -> None:
        TreasuryMultisig(self.threshold, tuple(k.pubkey() for k in self.treasury_signers))  # validates

    @property
    def multisig(self) -> TreasuryMultisig:
        return TreasuryMultisig(self.threshold, tuple(k.pubkey() for k in self.treasury_signers))

    @property
    def signing(self) -> tuple[Keypair, ...]:
        """The signers the worker uses: exactly the threshold, the first ones."""
        return self.treasury_signers[: self.threshold]

    @classmethod
    def generate(cls, threshold: int = TREASURY_THRESHOLD, signers: int = TREASURY_SIGNERS) -> ChainKeys:
        return cls(Keypair(), tuple(Keypair() for _ in range(signers)), threshold)

    def to_json(self) -> dict[str, object]:
        return {
            "version": _FORMAT_VERSION,
            "authority": str(self.authority),
            "treasury_threshold": self.threshold,
            "treasury_signers": [str(k) for k in self.treasury_signers],
        }

    @classmethod
    def from_json(cls, data: object) -> ChainKeys:
        if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
            raise ValueError("not a version 1 Choir keys file")
        signers = data["treasury_signers"]
        if not isinstance(signers, list):
            raise ValueError("treasury_signers must be a list")
        return cls(
            Keypair.from_base58_string(str(data["authority"])),
            tuple(Keypair.from_base58_string(str(k)) for k in signers),
            int(data["treasury_threshold"]),
        )


def load_or_create_keys(path: Path) -> ChainKeys:
    """The keys in `path`, made (2 of 3 treasury signers) the first time."""
    if not path.exists():
        _create(path, ChainKeys.generate())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ChainError(f"{path} holds private keys but its mode is {mode:o}: run `chmod 600 {path}`")
    try:
        return ChainKeys.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ChainError(f"cannot read the settlement keys in {path}: {exc}") from None


def _create(path: Path, keys: ChainKeys) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEYS_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(keys.to_json(), out)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # never replaces a file another process just created
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
