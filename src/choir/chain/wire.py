"""Legacy transactions built by hand: exact sizes, packing, compiling and signing.

Why by hand: the settlement worker must know, before signing, whether one more transfer still fits the
1232-byte packet limit (LiteSVM does not enforce it; a cluster drops a larger transaction), and
compiling the message bytes directly is several times faster than going through `Instruction` objects.
Every compiled transaction is still checked against the limit on its real serialized bytes.

Wire format of a legacy transaction::

    compact-u16 n_signatures, n_signatures x 64 bytes
    header (3 bytes), compact-u16 n_keys, n_keys x 32 bytes, recent blockhash (32 bytes)
    compact-u16 n_instructions, each: program index (1), compact-u16 n_accounts, account indices,
                                        compact-u16 data length, data
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from choir.chain.errors import TransactionTooLarge

PACKET_DATA_SIZE: Final = 1232
_SIGNATURE_SIZE: Final = 64
_KEY_SIZE: Final = 32
_HEADER_SIZE: Final = 3
_BLOCKHASH_SIZE: Final = 32
# A legacy message indexes its keys with one byte.
_KEYS_MAX: Final = 256


class Meta(NamedTuple):
    """One account of an instruction; `key` is the 32 raw bytes of the address."""

    key: bytes
    signer: bool
    writable: bool


class Ix(NamedTuple):
    """An instruction in the form the packer and compiler work on (raw 32-byte keys)."""

    program: bytes
    metas: tuple[Meta, ...]
    data: bytes


_ONE_BYTE: Final = tuple(bytes((v,)) for v in range(0x80))


def compact_u16(value: int) -> bytes:
    """Solana's short-vec length prefix."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"compact-u16 out of range: {value}")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _compact_len(value: int) -> int:
    return 1 if value < 0x80 else 2 if value < 0x4000 else 3


def instruction_size(ix: Ix) -> int:
    """Bytes the instruction takes in a compiled message."""
    n = len(ix.metas)
    return 1 + _compact_len(n) + n + _compact_len(len(ix.data)) + len(ix.data)


def transaction_size(n_signatures: int, n_keys: int, n_instructions: int, instruction_bytes: int) -> int:
    """Serialized size of a legacy transaction with these counts."""
    return (
        _compact_len(n_signatures)
        + _SIGNATURE_SIZE * n_signatures
        + _HEADER_SIZE
        + _compact_len(n_keys)
        + _KEY_SIZE * n_keys
        + _BLOCKHASH_SIZE
        + _compact_len(n_instructions)
        + instruction_bytes
    )


def to_ix(instruction: Instruction) -> Ix:
    metas = tuple(Meta(bytes(m.pubkey), m.is_signer, m.is_writable) for m in instruction.accounts)
    return Ix(bytes(instruction.program_id), metas, bytes(instruction.data))


def to_instruction(ix: Ix) -> Instruction:
    metas = [AccountMeta(Pubkey.from_bytes(m.key), m.signer, m.writable) for m in ix.metas]
    return Instruction(Pubkey.from_bytes(ix.program), ix.data, metas)


class TxPacker:
    """Accumulates groups of instructions into one transaction while it stays within the limit.

    A group (for example: create an account, then transfer into it) is all-or-nothing, so a transfer
    is never separated from the instructions that make it possible.
    """

    def __init__(self, payer: bytes, limit_bytes: int = PACKET_DATA_SIZE) -> None:
        # key -> [signer, writable]; insertion order is first appearance, the fee payer first.
        self._flags: dict[bytes, list[bool]] = {payer: [True, True]}
        self._n_signers = 1
        self._ixs: list[Ix] = []
        self._ix_bytes = 0
        self._limit_bytes = limit_bytes
        self.payer = payer

    @property
    def instructions(self) -> list[Ix]:
        return self._ixs

    @property
    def size(self) -> int:
        return transaction_size(self._n_signers, len(self._flags), len(self._ixs), self._ix_bytes)

    def try_add(self, group: Sequence[Ix]) -> bool:
        """Add the group if the transaction still fits; return whether it was added.

        One pass over the group's accounts collects what it would add; nothing changes unless it fits.
        """
        flags = self._flags
        new_keys: dict[bytes, list[bool]] = {}
        new_signers: set[bytes] = set()
        now_writable: list[bytes] = []
        ix_bytes = 0
        for ix in group:
            for key, signer, writable in ix.metas:
                current = flags.get(key)
                if current is None:
                    pending = new_keys.get(key)
                    if pending is None:
                        new_keys[key] = [signer, writable]
                    else:
                        pending[0] = pending[0] or signer
                        pending[1] = pending[1] or writable
                    if signer:
                        new_signers.add(key)
                else:
                    if signer and not current[0]:
                        new_signers.add(key)
                    if writable and not current[1]:
                        now_writable.append(key)
            if ix.program not in flags and ix.program not in new_keys:
                new_keys[ix.program] = [False, False]
            ix_bytes += instruction_size(ix)
        size = transaction_size(
            self._n_signers + len(new_signers),
            len(flags) + len(new_keys),
            len(self._ixs) + len(group),
            self._ix_bytes + ix_bytes,
        )
        if size > self._limit_bytes:
            return False
        flags.update(new_keys)
        for key in new_signers:
            flags[key][0] = True
        for key in now_writable:
            flags[key][1] = True
        self._n_signers += len(new_signers)
        self._ixs.extend(group)
        self._ix_bytes += ix_bytes
        return True


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    data: bytes
    signer_keys: tuple[bytes, ...]


def compile_message(payer: bytes, ixs: Sequence[Ix], blockhash: bytes) -> CompiledMessage:
    """Compile a legacy message: keys ordered writable signers, readonly signers, writable, readonly."""
    flags: dict[bytes, list[bool]] = {payer: [True, True]}
    for ix in ixs:
        for key, signer, writable in ix.metas:
            current = flags.get(key)
            if current is None:
                flags[key] = [signer, writable]
            else:
                current[0] = current[0] or signer
                current[1] = current[1] or writable
        if ix.program not in flags:
            flags[ix.program] = [False, False]
    if len(flags) > _KEYS_MAX:
        raise TransactionTooLarge(f"{len(flags)} account keys; a legacy message indexes at most {_KEYS_MAX}")
    buckets: tuple[list[bytes], list[bytes], list[bytes], list[bytes]] = ([], [], [], [])
    for key, (signer, writable) in flags.items():
        buckets[(0 if writable else 1) if signer else (2 if writable else 3)].append(key)
    keys = buckets[0] + buckets[1] + buckets[2] + buckets[3]
    index = {key: i for i, key in enumerate(keys)}
    n_signers = len(buckets[0]) + len(buckets[1])
    out = bytearray((n_signers, len(buckets[1]), len(buckets[3])))
    out += compact_u16(len(keys))
    out += b"".join(keys)
    out += blockhash
    out += compact_u16(len(ixs))
    for program, metas, data in ixs:
        out.append(index[program])
        out += compact_u16(len(metas))
        out += bytes([index[m[0]] for m in metas])
        out += compact_u16(len(data))
        out += data
    return CompiledMessage(bytes(out), tuple(keys[:n_signers]))


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed legacy transaction: its wire bytes and its first signature (its id on chain)."""

    raw: bytes
    signature: Signature

    def to_transaction(self) -> Transaction:
        return Transaction.from_bytes(self.raw)


def signer_map(keypairs: Iterable[Keypair]) -> dict[bytes, Keypair]:
    """Keypairs by raw public key; build it once, as deriving a public key is not free."""
    return {bytes(kp.pubkey()): kp for kp in keypairs}


def sign_message(message: CompiledMessage, keypairs: Iterable[Keypair] | Mapping[bytes, Keypair]) -> SignedTx:
    """Sign with exactly the keypairs the message requires, in its signer order; check the size."""
    by_key = keypairs if isinstance(keypairs, Mapping) else signer_map(keypairs)
    signatures = bytearray(compact_u16(len(message.signer_keys)))
    first: Signature | None = None
    for key in message.signer_keys:
        keypair = by_key.get(key)
        if keypair is None:
            raise ValueError(f"no keypair for required signer {Pubkey.from_bytes(key)}")
        signature = keypair.sign_message(message.data)
        if first is None:
            first = signature
        signatures += bytes(signature)
    raw = bytes(signatures) + message.data
    if len(raw) > PACKET_DATA_SIZE:
        raise TransactionTooLarge(f"transaction is {len(raw)} bytes; the limit is {PACKET_DATA_SIZE}")
    assert first is not None  # the fee payer always signs
    return SignedTx(raw, first)


def build_transaction(
    payer: Keypair, ixs: Sequence[Ix], blockhash: Hash, signers: Iterable[Keypair] = ()
) -> SignedTx:
    """Compile and sign; the payer signs and pays the fee."""
    message = compile_message(bytes(payer.pubkey()), ixs, bytes(blockhash))
    return sign_message(message, [payer, *signers])


def _read_compact_u16(data: bytes, offset: int) -> tuple[int, int]:
    """Decode a compact-u16 at `offset`; return (value, offset after it)."""
    value = 0
    for i in range(3):
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, offset + i + 1
    raise ValueError("compact-u16 longer than 3 bytes")


def resign_with_blockhash(
    raw: bytes, blockhash: bytes, keypairs: Iterable[Keypair] | Mapping[bytes, Keypair]
) -> SignedTx:
    """The same instructions under a new blockhash, signed again: a new transaction, a new signature."""
    n_signatures, offset = _read_compact_u16(raw, 0)
    message = raw[offset + _SIGNATURE_SIZE * n_signatures :]
    n_keys, keys_at = _read_compact_u16(message, _HEADER_SIZE)
    blockhash_at = keys_at + _KEY_SIZE * n_keys
    signer_keys = tuple(
        message[keys_at + _KEY_SIZE * i : keys_at + _KEY_SIZE * (i + 1)] for i in range(message[0])
    )
    data = message[:blockhash_at] + blockhash + message[blockhash_at + _BLOCKHASH_SIZE :]
    return sign_message(CompiledMessage(data, signer_keys), keypairs)
