"""Inbound channel requests and our answers: the data a channel acceptor exchanges.

Plain dataclasses, no gRPC: ``lnd/acceptor.py`` turns lnd's
``ChannelAcceptRequest`` into an :class:`InboundRequest` and an
:class:`InboundDecision` into a ``ChannelAcceptResponse``; the custody layer
(``custody/guard.py``) makes the decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: lnd forwards at most this many characters of a rejection message to the peer.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class InboundRequest:
    """A peer wants to open a channel to our node. Amounts in sat."""

    node: str
    peer_pubkey: str
    pending_chan_id: str  # hex; the node's handle for this negotiation
    funding_sat: int
    push_sat: int
    private: bool  # not announced (channel_flags without the announce bit)
    csv_delay: int  # what the peer asks of us (our to_self_delay)
    commitment_type: str
    wants_zero_conf: bool = False
    channel_reserve_sat: int = 0
    dust_limit_sat: int = 0
    max_accepted_htlcs: int = 0


@dataclass(frozen=True)
class InboundDecision:
    """Accept (committing ``upfront_shutdown`` as our cooperative-close address)
    or reject with ``error``, which the peer sees: no secrets in it."""

    accept: bool
    error: str = ""
    upfront_shutdown: str | None = None

    @classmethod
    def reject(cls, error: str) -> InboundDecision:
        return cls(False, error[:MAX_ERROR_CHARS])

    @classmethod
    def accept_to(cls, address: str) -> InboundDecision:
        return cls(True, "", address)


#: What a channel acceptor calls for each inbound request.
Decide = Callable[[InboundRequest], InboundDecision]
