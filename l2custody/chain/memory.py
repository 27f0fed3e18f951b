"""MemoryChain: a ChainSource over blocks held in memory.

For the scanner benchmark and unit tests of chain-following logic (reorgs,
gap windows) where driving a node block by block would only add time. Blocks
are real serialized blocks built with embit (``make_block``), so the scanner
parses exactly what a node would send; there is no proof of work. Integration
tests use a real btcd instead.
"""

from __future__ import annotations

import hashlib
import os

from embit import compact
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.base import AcceptResult, ChainInfo
from l2custody.errors import BroadcastRejected, ChainError

_ZERO = b"\x00" * 32


def _dsha(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def merkle_root(txids_le: list[bytes]) -> bytes:
    """Merkle root of transaction hashes (internal byte order)."""
    level = list(txids_le)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_dsha(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def coinbase(height: int, script_pubkey: bytes, value: int = 50_0000_0000) -> Transaction:
    """A coinbase paying ``value`` to ``script_pubkey`` (BIP-34 height in the script sig)."""
    height_push = height.to_bytes((height.bit_length() + 8) // 8 or 1, "little")
    sig = Script(bytes([len(height_push)]) + height_push + os.urandom(4))
    inp = TransactionInput(_ZERO, 0xFFFFFFFF, script_sig=sig, sequence=0xFFFFFFFF)
    return Transaction(vin=[inp], vout=[TransactionOutput(value, Script(script_pubkey))])


def make_block(prev_hash: str, height: int, txs: list[Transaction], time: int = 1_700_000_000) -> bytes:
    """Serialize a block on top of ``prev_hash`` (RPC byte order) holding a coinbase + ``txs``."""
    all_txs = [coinbase(height, b"\x51")] + txs
    root = merkle_root([t.txid()[::-1] for t in all_txs])
    header = (
        (0x20000000).to_bytes(4, "little")
        + bytes.fromhex(prev_hash)[::-1]
        + root
        + (time + height).to_bytes(4, "little")
        + (0x207FFFFF).to_bytes(4, "little")
        + (0).to_bytes(4, "little")
    )
    return header + compact.to_bytes(len(all_txs)) + b"".join(t.serialize() for t in all_txs)


def block_hash(raw: bytes) -> str:
    return _dsha(raw[:80])[::-1].hex()


class MemoryChain:
    """An in-memory best chain with a mempool; ``reorg(height)`` drops blocks above ``height``."""

    url = "memory://chain"

    def __init__(self, network: str = "regtest") -> None:
        genesis = make_block("00" * 32, 0, [])
        self.network = network
        self.blocks: list[bytes] = [genesis]
        self.hashes: list[str] = [block_hash(genesis)]
        self.mempool: dict[str, bytes] = {}
        self.calls = 0

    # --- building ---------------------------------------------------------------------

    def add_block(self, txs: list[Transaction] | None = None) -> str:
        """Mine ``txs`` (default: the whole mempool) into a new block; returns its hash."""
        if txs is None:
            txs = [Transaction.parse(raw) for raw in self.mempool.values()]
        raw = make_block(self.hashes[-1], len(self.blocks), txs)
        for tx in txs:
            self.mempool.pop(tx.txid().hex(), None)
        self.blocks.append(raw)
        self.hashes.append(block_hash(raw))
        return self.hashes[-1]

    def reorg(self, height: int) -> None:
        """Drop every block above ``height`` (their transactions are not returned to the mempool)."""
        del self.blocks[height + 1 :]
        del self.hashes[height + 1 :]

    # --- ChainSource ---------------------------------------------------------------------

    def info(self) -> ChainInfo:
        return ChainInfo(self.network, self.tip_height(), self.hashes[-1], "memory", False)

    def check_network(self, network: str) -> ChainInfo:
        from l2custody.errors import NetworkMismatch

        if network != self.network:
            raise NetworkMismatch(f"the chain source {self.url} is on {self.network}, not {network}")
        return self.info()

    def tip_height(self) -> int:
        self.calls += 1
        return len(self.blocks) - 1

    def block_hash(self, height: int) -> str:
        self.calls += 1
        if not 0 <= height < len(self.hashes):
            raise ChainError(f"block height {height} out of range")
        return self.hashes[height]

    def block_hashes(self, start: int, count: int) -> list[str]:
        self.calls += 1
        if start < 0 or start + count > len(self.hashes):
            raise ChainError(f"block heights {start}..{start + count - 1} out of range")
        return self.hashes[start : start + count]

    def raw_block(self, hash_: str) -> bytes:
        return self.raw_blocks([hash_])[0]

    def raw_blocks(self, hashes: list[str]) -> list[bytes]:
        self.calls += 1
        index = {h: i for i, h in enumerate(self.hashes)}
        try:
            return [self.blocks[index[h]] for h in hashes]
        except KeyError as exc:
            raise ChainError(f"block {exc.args[0]} not found") from None

    def raw_transaction(self, txid: str) -> bytes:
        self.calls += 1
        if txid in self.mempool:
            return self.mempool[txid]
        raise ChainError(f"no transaction {txid} in the mempool")

    def mempool_txids(self) -> list[str]:
        self.calls += 1
        return list(self.mempool)

    def broadcast(self, raw_tx: bytes) -> str:
        try:
            tx = Transaction.parse(raw_tx)
        except Exception as exc:
            raise BroadcastRejected(f"TX decode failed: {exc}") from None
        txid = tx.txid().hex()
        self.mempool[txid] = raw_tx
        return txid

    def test_accept(self, raw_tx: bytes) -> AcceptResult | None:
        return None

    def estimate_fee_rate(self, target_blocks: int = 6) -> float | None:
        return None
