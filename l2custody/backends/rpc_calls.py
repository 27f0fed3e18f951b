"""A node RPC call held for judgement (lnd RPC middleware): what it would do with money.

The lnd adapter (``backends/lnd/middleware.py``) decodes each intercepted
request into an :class:`RpcCall`; the rules (``custody/enforce``) judge it
and answer with a :class:`CallVerdict`. Nothing protobuf crosses this line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: What a call does, as far as custody cares.
KIND_CLOSE = "close"  # CloseChannel: delivery_address
KIND_OPEN = "open"  # OpenChannel/OpenChannelSync/BatchOpenChannel: close_addresses
KIND_PAY = "pay"  # SendCoins/SendMany/SendOutputs/FundPsbt(raw): payments
KIND_PSBT = "psbt"  # FundPsbt(psbt)/SignPsbt/FinalizePsbt: psbt
KIND_TX = "tx"  # PublishTransaction: raw_tx
KIND_ACCEPT = "accept"  # ChannelAcceptor answers: close_addresses (upfront_shutdown)
KIND_FEE = "fee"  # BumpFee / BumpForceCloseFee: only the fee rate matters
KIND_HARMLESS = "harmless"  # needs a sensitive permission but moves nothing out (leases, labels...)
KIND_OTHER = "other"  # not fund-moving (reads, off-chain payments, ...)
KIND_UNCHECKED = "unchecked"  # fund-moving or key-handing, and no rule reads it: refused


@dataclass(frozen=True)
class Payment:
    """One output a call asks the node to pay. ``amount_sat`` None: everything (send_all)."""

    where: str  # "addr", "AddrToAmount[bcrt1...]", "outputs[2]"
    address: str | None = None
    script: bytes | None = None
    amount_sat: int | None = None


@dataclass(frozen=True)
class RpcCall:
    """One intercepted request (or stream opening) on a node."""

    node: str
    method: str  # full URI: /lnrpc.Lightning/SendCoins
    phase: str  # "request" | "stream-auth" | "response"
    caveat: str | None  # our custom caveat's condition; None: the macaroon does not carry it
    kind: str = KIND_OTHER
    payments: tuple[Payment, ...] = ()
    close_addresses: tuple[str, ...] = ()  # one per channel opened/accepted; "" = none set
    external_funding: bool = False  # an open funded through a shim (PSBT or canned), not the node wallet
    delivery_address: str | None = None
    force: bool = False
    fee_rate_sat_vb: float | None = None  # the rate the caller set (None: the node picks)
    psbt: bytes | None = None
    raw_tx: bytes | None = None
    problem: str | None = None  # why the request could not be read: refused
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def short_method(self) -> str:
        return self.method.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CallVerdict:
    """Allow or refuse; ``message`` is what the caller reads (the rule, how to allow it)."""

    allow: bool
    rule: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, rule: str, **details: Any) -> CallVerdict:
        return cls(True, rule, "", details)

    @classmethod
    def refuse(cls, rule: str, message: str, **details: Any) -> CallVerdict:
        return cls(False, rule, message, details)

    def to_dict(self) -> dict[str, Any]:
        return {"allow": self.allow, "rule": self.rule, "message": self.message, **self.details}


#: The rules: judge one call (may raise; the caller then refuses).
Judge = Callable[[RpcCall], CallVerdict]


class RpcMiddleware(Protocol):
    """A node that lets us judge its RPC requests (``Capability.RPC_MIDDLEWARE``; lnd)."""

    def close(self) -> None:
        """Drop the connection (the next call opens a fresh one)."""

    def sensitive_methods(self) -> frozenset[str]:
        """Full URIs of the methods that can move funds, sign, or mint credentials."""

    def wallet_addresses(self) -> frozenset[str]:
        """Every address of the node's own (default-account) on-chain wallet."""

    def bake_macaroon(self, permissions: Sequence[str], caveat: tuple[str, str]) -> bytes:
        """A new macaroon with ``permissions`` ("entity:action") restricted by custom caveat
        ``(name, condition)``."""

    def intercept(
        self,
        name: str,
        caveat_name: str | None,
        judge: Judge,
        stop: threading.Event,
        *,
        own_caveat: str,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        """Register as middleware ``name`` for ``caveat_name`` (None: read-only) and answer each
        intercepted call with ``judge`` until ``stop``. ``RpcCall.caveat`` tells whether the
        caller's macaroon carries ``own_caveat``. A judge that raises refuses the call.
        Raises NodeError subclasses when the stream fails."""
