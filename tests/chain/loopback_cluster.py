"""A JSON-RPC server on 127.0.0.1 whose bank is a LiteSVM: the part of Solana's RPC API `RpcBackend` uses.

No validator can be installed here, so this stands in for a cluster to drive the real solana-py client
over real HTTP. Responses are built with solders' own RPC response types, the ones solana-py parses.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetBlockHeightResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetSignatureStatusesResp,
    GetTransactionResp,
    RpcBlockhash,
    RpcResponseContext,
    SendTransactionResp,
)
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiTransactionStatusMeta,
)

from choir.chain import LiteSvmBackend

BLOCKHASH_LIFETIME_BLOCKS = 150
REQUEST_BYTES_MAX = 1 << 20


class LoopbackCluster:
    def __init__(self, backend: LiteSvmBackend) -> None:
        self.svm = backend.svm
        self.block_height = 1
        self.valid_until: dict[Hash, int] = {}
        self.sent: dict[Signature, bytes] = {}
        self.methods: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def advance(self, blocks: int) -> None:
        """Blocks pass: blockhashes older than their lifetime stop being valid."""
        self.block_height += blocks
        self.svm.expire_blockhash()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if length > REQUEST_BYTES_MAX:
                    return
                request = json.loads(await reader.readexactly(length))
                body = json.dumps(self._answer(request)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        writer.close()

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request["method"], request.get("params", [])
        self.methods.append(method)
        answer = getattr(self, "_" + method)(params)
        answer["id"] = request["id"]
        return answer

    def _context(self) -> RpcResponseContext:
        return RpcResponseContext(self.block_height)

    def _getLatestBlockhash(self, params: list[Any]) -> dict[str, Any]:
        self.advance(1)
        blockhash = self.svm.latest_blockhash()
        self.valid_until[blockhash] = self.block_height + BLOCKHASH_LIFETIME_BLOCKS
        value = RpcBlockhash(blockhash, self.valid_until[blockhash])
        return json.loads(GetLatestBlockhashResp(value, self._context()).to_json())

    def _getBlockHeight(self, params: list[Any]) -> dict[str, Any]:
        return json.loads(GetBlockHeightResp(self.block_height).to_json())

    def _getMinimumBalanceForRentExemption(self, params: list[Any]) -> dict[str, Any]:
        value = self.svm.minimum_balance_for_rent_exemption(params[0])
        return json.loads(GetMinimumBalanceForRentExemptionResp(value).to_json())

    def _getMultipleAccounts(self, params: list[Any]) -> dict[str, Any]:
        accounts: list[Account | None] = [self.svm.get_account(Pubkey.from_string(k)) for k in params[0]]
        return json.loads(GetMultipleAccountsResp(accounts, self._context()).to_json())

    def _sendTransaction(self, params: list[Any]) -> dict[str, Any]:
        raw = base64.b64decode(params[0])
        tx = Transaction.from_bytes(raw)
        signature = tx.signatures[0]
        if self.svm.get_transaction(signature) is not None:
            return _preflight_failure("AlreadyProcessed")
        if self.valid_until.get(tx.message.recent_blockhash, 0) < self.block_height:
            return _preflight_failure("BlockhashNotFound")
        simulated = self.svm.simulate_transaction(tx)
        if isinstance(simulated, FailedTransactionMetadata):
            return _preflight_failure(json.loads(simulated.to_json())["err"])
        self.svm.send_transaction(tx)
        self.sent[signature] = raw
        return json.loads(SendTransactionResp(signature).to_json())

    def _getSignatureStatuses(self, params: list[Any]) -> dict[str, Any]:
        statuses: list[TransactionStatus | None] = []
        for text in params[0]:
            landed = self.svm.get_transaction(Signature.from_string(text))
            if landed is None:
                statuses.append(None)
                continue
            error = landed.err() if isinstance(landed, FailedTransactionMetadata) else None
            finalized = TransactionConfirmationStatus.Finalized
            statuses.append(TransactionStatus(self.block_height, None, error, error, finalized))
        return json.loads(GetSignatureStatusesResp(statuses, self._context()).to_json())

    def _getTransaction(self, params: list[Any]) -> dict[str, Any]:
        signature = Signature.from_string(params[0])
        landed = self.svm.get_transaction(signature)
        if landed is None or signature not in self.sent:
            return json.loads(GetTransactionResp(None).to_json())
        meta = landed.meta() if isinstance(landed, FailedTransactionMetadata) else landed
        status = UiTransactionStatusMeta(None, meta.fee(), [], [], log_messages=meta.logs())
        tx = VersionedTransaction.from_bytes(self.sent[signature])
        encoded = EncodedTransactionWithStatusMeta(tx, status, None)
        value = EncodedConfirmedTransactionWithStatusMeta(self.block_height, encoded)
        return json.loads(GetTransactionResp(value).to_json())


def _preflight_failure(err: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "error": {
            "code": -32002,
            "message": "Transaction simulation failed",
            "data": {"err": err, "logs": [], "accounts": None, "unitsConsumed": 0, "returnData": None},
        },
    }
