"""The inbound channel guard (invariant 3): every channel a peer opens to our
node commits its cooperative close to a fresh multisig address.

``node guard NODE`` runs :func:`run_guard`: the node asks us about each
inbound channel (lnd: ChannelAcceptor); the :class:`GuardPolicy` may refuse
it (size limits, peer allow/deny lists, private or zero-conf channels) with a
message the peer sees; otherwise a fresh multisig address is recorded as
issued and handed to the node as the channel's upfront shutdown address.
Every decision is logged (callback) and written to the audit log.

While the guard is not connected the node applies its own default policy
(lnd: accept, no upfront address), so run it as a service; it reconnects
when the node restarts.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import Capability, NodeBackend
from l2custody.backends.inbound import InboundDecision, InboundRequest
from l2custody.errors import NodeAuthError, NodeError, NotSupported, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.service import Wallet


def _pubkey(text: str) -> str:
    key = text.strip().lower().split("@", 1)[0]
    if len(key) != 66 or key[:2] not in ("02", "03"):
        raise UsageError(f"{text!r} is not a node public key (66 hex characters starting 02 or 03)")
    try:
        bytes.fromhex(key)
    except ValueError:
        raise UsageError(f"{text!r} is not a node public key: not hex") from None
    return key


@dataclass(frozen=True)
class GuardPolicy:
    """Which inbound channels to refuse. The defaults accept every channel
    except zero-conf ones (the funds would not be ours to wait for)."""

    min_channel_sat: int = 0
    max_channel_sat: int | None = None
    allowed_peers: frozenset[str] = frozenset()  # empty: any peer (minus denied_peers)
    denied_peers: frozenset[str] = frozenset()
    allow_private: bool = True
    allow_zero_conf: bool = False

    @classmethod
    def build(
        cls,
        *,
        min_channel_sat: int = 0,
        max_channel_sat: int | None = None,
        allowed_peers: Iterable[str] = (),
        denied_peers: Iterable[str] = (),
        allow_private: bool = True,
        allow_zero_conf: bool = False,
    ) -> GuardPolicy:
        """Validate the operator's options (UsageError naming the bad one)."""
        if min_channel_sat < 0:
            raise UsageError(f"--min-size must be 0 or more sat, got {min_channel_sat}")
        if max_channel_sat is not None and max_channel_sat < max(min_channel_sat, 1):
            raise UsageError(
                f"--max-size ({max_channel_sat} sat) must be at least --min-size ({min_channel_sat} sat) and positive"
            )
        allowed = frozenset(_pubkey(p) for p in allowed_peers)
        denied = frozenset(_pubkey(p) for p in denied_peers)
        both = allowed & denied
        if both:
            raise UsageError(f"peer {sorted(both)[0]} is both allowed and denied; pick one")
        return cls(min_channel_sat, max_channel_sat, allowed, denied, allow_private, allow_zero_conf)

    def refusal(self, req: InboundRequest) -> str | None:
        """Why ``req`` is refused (the message the peer sees), or None to accept."""
        if req.peer_pubkey in self.denied_peers:
            return "this node does not accept channels from you"
        if self.allowed_peers and req.peer_pubkey not in self.allowed_peers:
            return "this node accepts channels only from known peers"
        if req.funding_sat < self.min_channel_sat:
            return f"channel too small: {req.funding_sat} sat, the minimum is {self.min_channel_sat} sat"
        if self.max_channel_sat is not None and req.funding_sat > self.max_channel_sat:
            return f"channel too large: {req.funding_sat} sat, the maximum is {self.max_channel_sat} sat"
        if req.private and not self.allow_private:
            return "this node accepts only public (announced) channels"
        if req.wants_zero_conf and not self.allow_zero_conf:
            return "this node does not accept zero-conf channels"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_channel_sat": self.min_channel_sat,
            "max_channel_sat": self.max_channel_sat,
            "allowed_peers": sorted(self.allowed_peers),
            "denied_peers": sorted(self.denied_peers),
            "allow_private": self.allow_private,
            "allow_zero_conf": self.allow_zero_conf,
        }


@dataclass(frozen=True)
class GuardEvent:
    """One thing the guard did, for the log the operator watches."""

    kind: str  # accepted | rejected | error | listening | disconnected | stopped
    node: str
    peer: str | None = None
    funding_sat: int | None = None
    pending_chan_id: str | None = None
    close_address: str | None = None
    reason: str | None = None
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.ts))
        if self.kind == "accepted":
            return (
                f"{stamp} accepted {self.funding_sat:,} sat channel from {self.peer} "
                f"(close address {self.close_address})"
            )
        if self.kind == "rejected":
            return f"{stamp} rejected {self.funding_sat:,} sat channel from {self.peer}: {self.reason}"
        return f"{stamp} {self.kind}" + (f": {self.reason}" if self.reason else "")


class Guard:
    """Decides inbound channels for one node: the policy, then a fresh address."""

    def __init__(
        self, wallet: Wallet, node: str, policy: GuardPolicy, log: Callable[[GuardEvent], None] | None = None
    ) -> None:
        self.wallet, self.node, self.policy = wallet, node, policy
        self.log = log or (lambda event: None)
        self.accepted = 0
        self.rejected = 0

    def decide(self, req: InboundRequest) -> InboundDecision:
        """Refuse by policy, or accept with a fresh multisig address (recorded first)."""
        store = self.wallet.store
        reason = self.policy.refusal(req)
        details = {
            "peer": req.peer_pubkey,
            "funding_sat": req.funding_sat,
            "push_sat": req.push_sat,
            "private": req.private,
            "pending_chan_id": req.pending_chan_id,
        }
        if reason is not None:
            store.audit(self.wallet.actor, "inbound-rejected", f"node {self.node}", {**details, "reason": reason})
            self.rejected += 1
            self.log(
                GuardEvent("rejected", self.node, req.peer_pubkey, req.funding_sat, req.pending_chan_id, reason=reason)
            )
            return InboundDecision.reject(reason)
        with store.transaction():
            address = self.wallet.next_address(label=f"inbound {req.pending_chan_id[:16]} {self.node}").address
            store.audit(
                self.wallet.actor, "inbound-accepted", f"node {self.node}", {**details, "close_address": address}
            )
        self.accepted += 1
        self.log(
            GuardEvent(
                "accepted", self.node, req.peer_pubkey, req.funding_sat, req.pending_chan_id, close_address=address
            )
        )
        return InboundDecision.accept_to(address)

    def on_error(self, req: InboundRequest, exc: BaseException) -> None:
        self.wallet.store.audit(
            self.wallet.actor,
            "inbound-rejected",
            f"node {self.node}",
            {"peer": req.peer_pubkey, "pending_chan_id": req.pending_chan_id, "reason": f"guard error: {exc!r}"},
        )
        self.rejected += 1
        self.log(
            GuardEvent(
                "error",
                self.node,
                req.peer_pubkey,
                req.funding_sat,
                req.pending_chan_id,
                reason=f"rejected after an internal error: {exc!r}",
            )
        )


@dataclass(frozen=True)
class GuardSummary:
    node: str
    accepted: int
    rejected: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_guard(
    backend: NodeBackend,
    wallet: Wallet,
    policy: GuardPolicy,
    stop: threading.Event,
    *,
    log: Callable[[GuardEvent], None] | None = None,
    reconnect_delay: float = 2.0,
    max_reconnect_delay: float = 30.0,
) -> GuardSummary:
    """Guard ``backend``'s inbound channels until ``stop`` is set.

    Reconnects (with a growing delay, logged) when the stream fails: the node
    went away, is restarting, or reset the stream. Refused credentials and
    unsupported nodes end the guard by raising. Writes
    ``guard-started`` / ``guard-stopped`` audit entries.
    """
    if not backend.supports(Capability.INBOUND_GUARD):
        raise NotSupported(
            f"node {backend.name!r} ({backend.kind}) has no channel acceptor l2custody can drive; "
            "for Core Lightning use the l2custody plugin's openchannel hook"
        )
    guard = Guard(wallet, backend.name, policy, log)
    emit = guard.log
    started = time.monotonic()
    wallet.store.audit(wallet.actor, "guard-started", f"node {backend.name}", policy.to_dict())
    delay = reconnect_delay
    try:
        while not stop.is_set():
            emit(GuardEvent("listening", backend.name, reason="answering inbound channel requests"))
            try:
                backend.accept_inbound(guard.decide, stop, on_error=guard.on_error)
                delay = reconnect_delay
                if not stop.is_set():  # the node ended the stream without an error
                    emit(GuardEvent("disconnected", backend.name, reason="the node closed the stream"))
                    stop.wait(delay)
            except (NodeAuthError, NotSupported):
                raise
            except NodeError as exc:  # unreachable, restarting ("not yet ready"), stream reset
                emit(
                    GuardEvent(
                        "disconnected",
                        backend.name,
                        reason=f"{exc.message}; retrying in {delay:g}s (the node applies its default policy meanwhile)",
                    )
                )
                backend.close()  # a fresh gRPC channel on the next attempt
                stop.wait(delay)
                delay = min(delay * 2, max_reconnect_delay)
    finally:
        summary = GuardSummary(backend.name, guard.accepted, guard.rejected, time.monotonic() - started)
        wallet.store.audit(wallet.actor, "guard-stopped", f"node {backend.name}", summary.to_dict())
        emit(GuardEvent("stopped", backend.name, reason=f"{summary.accepted} accepted, {summary.rejected} rejected"))
    return summary
