"""The embedded chain's lifecycle: restore LiteSVM from the saved checkpoint on start, or create it.

    backend = await open_embedded_chain(store, authority, treasury, GENESIS_BALANCES)
    worker = SettlementWorker(backend, authority, treasury_keys, feed, store)
    await worker.start()        # saves the chain's state (with genesis) next to the cursor

The chain must come back exactly as saved with the cursor: `CursorStore` checkpoints carry the snapshot
taken when the last batch completed, and a batch in flight is finished against that state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from solders.keypair import Keypair

from choir.chain.cursor import CursorStore
from choir.chain.genesis import TreasuryMultisig, ensure_genesis
from choir.chain.litesvm_backend import LiteSvmBackend

# Fees (5,000 lamports a signature) and rent (~0.002 SOL a custody account) for well over a million
# accounts; LiteSVM's airdrop account holds about 10^15.
FEE_PAYER_LAMPORTS: Final = 10**14


async def open_embedded_chain(
    store: CursorStore,
    authority: Keypair,
    treasury: TreasuryMultisig,
    balances: Mapping[str, int],
    *,
    fee_payer_lamports: int = FEE_PAYER_LAMPORTS,
) -> LiteSvmBackend:
    """The chain saved with the store's checkpoint, or a new one brought to genesis."""
    checkpoint = await store.load()
    if checkpoint.chain_snapshot is not None:
        backend = LiteSvmBackend.restore(checkpoint.chain_snapshot)
    else:
        backend = LiteSvmBackend()
        backend.fund(authority.pubkey(), fee_payer_lamports)
    # On a restored chain this only verifies; on a new one it mints the supply.
    await ensure_genesis(backend, authority, treasury, balances)
    return backend
