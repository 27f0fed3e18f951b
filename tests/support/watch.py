"""Material for the report/watch unit tests.

``ScriptedNode`` STANDS IN for a Lightning node whose reports a unit test must
set (channels in given states, a hot-wallet balance, an event stream that
breaks, a node that stops answering): the real lnd is exercised by
tests/integration/test_watch_lnd.py. The wallet is a real one (SQLite store,
the 2-of-3 vector descriptor) on a MemoryChain.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from l2custody.backends.base import (
    AnchorReserve,
    Capability,
    ChannelEvent,
    ChannelInfo,
    ChannelState,
    CloseResult,
    NodeBackend,
    NodeInfo,
    OnchainBalance,
    SweepResult,
)
from l2custody.custody.watch.alerts import Alert
from l2custody.errors import AlertDeliveryFailed, InsufficientFunds, NodeUnreachable

PEER = "03" + "22" * 32


def outpoint(n: int) -> str:
    return f"{hashlib.sha256(str(n).encode()).hexdigest()}:{n % 3}"


def channel(node: str, n: int, state: ChannelState = ChannelState.OPEN, **kw: Any) -> ChannelInfo:
    base: dict[str, Any] = dict(
        capacity_sat=500_000,
        local_balance_sat=400_000,
        remote_balance_sat=90_000,
        active=True,
        initiator="local",
        close_address_known=state is ChannelState.OPEN,
        short_channel_id=f"{100 + n}x1x0",
    )
    base.update(kw)
    return ChannelInfo(node, outpoint(n), PEER, state, **base)


class ScriptedNode(NodeBackend):
    """A stand-in node (see the module docstring). Set ``channels``, ``balance``,
    ``down`` (every call raises NodeUnreachable), push ``events``."""

    kind = "lnd"
    capabilities = frozenset(
        {Capability.SWEEP, Capability.ANCHOR_RESERVE, Capability.CHANNEL_BACKUP, Capability.CHANNEL_EVENTS}
    )

    def __init__(self, name: str = "west", channels: list[ChannelInfo] | None = None) -> None:
        super().__init__(name)
        self.channels = list(channels or [])
        self.balance = OnchainBalance(0, 0, 0, 0)
        self.reserve = 0
        self.down = False
        self.backup = b"scb-1"
        self.sweeps: list[tuple[str, int | None, bool]] = []
        self.events: queue.Queue[ChannelEvent | Exception | None] = queue.Queue()
        self.subscribe_failures = 0
        self.subscriptions = 0
        self.closed = threading.Event()

    def _check(self) -> None:
        if self.down:
            raise NodeUnreachable(f"cannot reach node {self.name!r}: connection refused (stand-in)")

    def info(self) -> NodeInfo:
        self._check()
        return NodeInfo("02" + "11" * 32, self.name, "0.20.1-beta", "regtest", True, 100, "00" * 32, "lnd")

    def connect_peer(self, pubkey: str, host: str) -> None:
        raise NotImplementedError

    def is_connected(self, pubkey: str) -> bool:
        return True

    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        self._check()
        return [c for c in self.channels if include_closed or c.state is not ChannelState.CLOSED]

    def close_channel(
        self,
        channel_point: str,
        *,
        delivery_address: str | None = None,
        fee_rate: float | None = None,
        force: bool = False,
    ) -> CloseResult:
        raise NotImplementedError

    def onchain_balance(self) -> OnchainBalance:
        self._check()
        return self.balance

    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve:
        self._check()
        return AnchorReserve(self.reserve, self.balance.confirmed_sat, additional_public_channels)

    def sweep_to(
        self, address: str, *, keep_sat: int | None = None, fee_rate: float | None = None, dry_run: bool = False
    ) -> SweepResult:
        self._check()
        kept = max(keep_sat or 0, self.reserve)
        amount = self.balance.confirmed_sat - kept - 200
        if amount <= 0:
            raise InsufficientFunds(f"nothing to sweep from {self.name}")
        self.sweeps.append((address, keep_sat, dry_run))
        txid = None if dry_run else hashlib.sha256(f"sweep{len(self.sweeps)}".encode()).hexdigest()
        if not dry_run:
            self.balance = OnchainBalance(0, kept, 0, 0)
        return SweepResult(address, amount, 200, kept, ("aa" * 32 + ":0",), dry_run, txid)

    def channel_backup(self) -> bytes:
        self._check()
        return self.backup

    def subscribe_channel_events(self) -> Iterator[ChannelEvent]:
        if self.subscribe_failures:
            self.subscribe_failures -= 1
            raise NodeUnreachable(f"cannot reach node {self.name!r} (stand-in)")
        self.subscriptions += 1
        return self._stream()

    def _stream(self) -> Iterator[ChannelEvent]:
        while not self.closed.is_set():
            try:
                item = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        self.closed.set()

    def set_state(self, n: int, state: ChannelState, **kw: Any) -> None:
        point = outpoint(n)
        self.channels = [replace(c, state=state, **kw) if c.channel_point == point else c for c in self.channels]


def random_txid() -> str:
    return os.urandom(32).hex()


class RecordingSink:
    """An alert sink that keeps what it got and fails ``failures`` times first."""

    def __init__(self, name: str = "hook", failures: int = 0) -> None:
        self.name, self.failures = name, failures
        self.got: list[Alert] = []

    def send(self, alert: Alert) -> None:
        if self.failures:
            self.failures -= 1
            raise AlertDeliveryFailed(f"{self.name} is down")
        self.got.append(alert)

    def of(self, kind: str) -> list[Alert]:
        return [a for a in self.got if a.kind == kind]
