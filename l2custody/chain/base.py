"""The ChainSource protocol: what l2custody needs from a Bitcoin node.

Implementations (``chain/rpc.py`` for Bitcoin Core and btcd JSON-RPC) return
plain Python values, never raw JSON. Every method may raise
ChainUnreachable (the source cannot be reached: the message names the URL and
what to check) or ChainError (the source answered with an error).
Constructors never touch the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChainInfo:
    """What ``getblockchaininfo`` says, normalised across Core and btcd."""

    network: str  # "main" | "test" | "regtest" | "signet" (embit names)
    height: int
    best_hash: str
    kind: str  # "bitcoind" | "btcd"
    initial_download: bool


@dataclass(frozen=True)
class AcceptResult:
    """``testmempoolaccept`` for one transaction."""

    txid: str
    allowed: bool
    reason: str | None = None


@runtime_checkable
class ChainSource(Protocol):
    """A Bitcoin node we read blocks from and broadcast through."""

    url: str

    def info(self) -> ChainInfo:
        """Network, tip and sync state of the node."""
        ...

    def check_network(self, network: str) -> ChainInfo:
        """Raise NetworkMismatch unless the node is on ``network`` (embit name)."""
        ...

    def tip_height(self) -> int:
        """Height of the node's best block."""
        ...

    def block_hash(self, height: int) -> str:
        """Hash (hex, RPC byte order) of the block at ``height`` on the best chain."""
        ...

    def block_hashes(self, start: int, count: int) -> list[str]:
        """Hashes of ``count`` consecutive blocks from ``start`` (batched where possible)."""
        ...

    def raw_block(self, block_hash: str) -> bytes:
        """The serialized block (``getblock <hash> 0``)."""
        ...

    def raw_blocks(self, block_hashes: list[str]) -> list[bytes]:
        """Several serialized blocks, in order (batched where possible)."""
        ...

    def raw_transaction(self, txid: str) -> bytes:
        """A serialized transaction from the mempool (or the chain, with txindex)."""
        ...

    def mempool_txids(self) -> list[str]:
        """Txids in the node's mempool."""
        ...

    def broadcast(self, raw_tx: bytes) -> str:
        """Send a transaction; returns its txid.

        Raises BroadcastRejected when the node refused it (nothing went out)
        and BroadcastUnknown when we cannot tell (timeout, connection lost):
        then check the chain before trying anything else.
        """
        ...

    def test_accept(self, raw_tx: bytes) -> AcceptResult | None:
        """``testmempoolaccept``; None when the node does not offer it."""
        ...

    def estimate_fee_rate(self, target_blocks: int = 6) -> float | None:
        """Fee rate in sat/vB for confirmation within ``target_blocks``; None if unknown."""
        ...
