"""Material for the closing, sweeping and guard unit tests: a real wallet (SQLite store,
the 2-of-3 vector descriptor) on a MemoryChain (real blocks, no node), and transactions.

``StandInBackend`` stands in for a node whose *reports* a test needs to fix (a channel
closed by the peer, a publish that timed out); the real lnd is exercised by the
integration tests (tests/integration/test_close_lnd.py, test_sweep_lnd.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.backends.base import (
    ChannelInfo,
    CloseResult,
    NodeBackend,
    NodeInfo,
    OnchainBalance,
)
from l2custody.chain.memory import MemoryChain
from l2custody.config import init_config
from l2custody.wallet.service import Wallet
from tests.support.wallet import WALLET, outside_address

FOREIGN_ADDRESS = outside_address()


def make_wallet(tmp_path: Path, chain: MemoryChain | None = None) -> Wallet:
    config = init_config(tmp_path / "config.toml", "regtest", data_dir=tmp_path / "data")
    return Wallet.import_(config, WALLET["descriptor"], chain=chain or MemoryChain())


def script_of(wallet: Wallet, address: str) -> bytes:
    from l2custody.wallet.addresses import address_to_script

    return address_to_script(address, "regtest")


def closing_tx(funding: str, outputs: list[tuple[bytes, int]]) -> Transaction:
    """A transaction spending ``funding`` ("txid:n") to ``outputs`` (unsigned: shape only)."""
    txid, vout = funding.split(":")
    return Transaction(
        version=2,
        vin=[TransactionInput(bytes.fromhex(txid), int(vout))],
        vout=[TransactionOutput(value, Script(spk)) for spk, value in outputs],
        locktime=0,
    )


def random_outpoint() -> str:
    return f"{os.urandom(32).hex()}:0"


class StandInBackend(NodeBackend):
    """A node whose channel list and answers the test sets (see the module docstring)."""

    kind = "lnd"

    def __init__(self, name: str = "west", channels: list[ChannelInfo] | None = None) -> None:
        super().__init__(name)
        self.channels = list(channels or [])
        self.closes: list[tuple[str, str | None, bool]] = []
        self.close_error: Exception | None = None
        self.closing_txid = "cc" * 32

    def info(self) -> NodeInfo:
        return NodeInfo("02" + "11" * 32, self.name, "0.20.1-beta", "regtest", True, 100, "00" * 32, "lnd")

    def connect_peer(self, pubkey: str, host: str) -> None:
        raise NotImplementedError

    def is_connected(self, pubkey: str) -> bool:
        return True

    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        return list(self.channels)

    def close_channel(
        self,
        channel_point: str,
        *,
        delivery_address: str | None = None,
        fee_rate: float | None = None,
        force: bool = False,
    ) -> CloseResult:
        self.closes.append((channel_point, delivery_address, force))
        if self.close_error is not None:
            raise self.close_error
        from l2custody.backends.base import ChannelState

        return CloseResult(channel_point, self.closing_txid, ChannelState.CLOSING, delivery_address)

    def onchain_balance(self) -> OnchainBalance:
        return OnchainBalance(0, 0, 0, 0)
