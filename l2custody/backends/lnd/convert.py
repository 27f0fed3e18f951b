"""lnd protobuf messages -> our dataclasses. Pure functions, no network.

Enum values newer than the compiled stubs (lnd adds commitment types and close
types over time) arrive as plain integers; they map to "unknown" names here
rather than failing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from l2custody.backends.base import ChannelEvent, ChannelInfo, ChannelState, CloseType, scid_to_str

_COMMITMENT_TYPES = {
    0: "unknown",
    1: "legacy",
    2: "static_remote_key",
    3: "anchors",
    4: "script_enforced_lease",
    5: "simple_taproot",
    6: "simple_taproot_overlay",
}
_INITIATORS = {0: "unknown", 1: "local", 2: "remote", 3: "both"}
_CLOSE_TYPES = {
    0: CloseType.COOPERATIVE,
    1: CloseType.LOCAL_FORCE,
    2: CloseType.REMOTE_FORCE,
    3: CloseType.BREACH,
    4: CloseType.FUNDING_CANCELED,
    5: CloseType.ABANDONED,
}


def txid_from_bytes(raw: bytes) -> str:
    """lnd sends txids as little-endian bytes (the wire order); show them reversed."""
    return raw[::-1].hex()


def commitment_type(value: int) -> str:
    return _COMMITMENT_TYPES.get(int(value), f"type_{int(value)}")


def _initiator_from_bool(initiator: bool) -> str:
    return "local" if initiator else "remote"


def from_channel(node: str, ch: Any) -> ChannelInfo:
    """An open channel (``lnrpc.Channel``)."""
    return ChannelInfo(
        node=node,
        channel_point=ch.channel_point,
        peer_pubkey=ch.remote_pubkey,
        state=ChannelState.OPEN,
        capacity_sat=ch.capacity,
        local_balance_sat=ch.local_balance,
        remote_balance_sat=ch.remote_balance,
        short_channel_id=scid_to_str(ch.chan_id) if ch.chan_id else None,
        active=ch.active,
        private=ch.private,
        initiator=_initiator_from_bool(ch.initiator),
        close_address=ch.close_address or None,
        close_address_known=True,
        commitment_type=commitment_type(ch.commitment_type),
    )


def _pending(node: str, pc: Any, state: ChannelState, **extra: Any) -> ChannelInfo:
    return ChannelInfo(
        node=node,
        channel_point=pc.channel_point,
        peer_pubkey=pc.remote_node_pub,
        state=state,
        capacity_sat=pc.capacity,
        local_balance_sat=pc.local_balance,
        remote_balance_sat=pc.remote_balance,
        private=pc.private,
        initiator=_INITIATORS.get(int(pc.initiator), "unknown"),
        commitment_type=commitment_type(pc.commitment_type),
        **extra,
    )


def from_pending(node: str, resp: Any) -> list[ChannelInfo]:
    """Everything in a ``PendingChannelsResponse``: opens, waiting closes, force
    closes in limbo (and the deprecated pending_closing list)."""
    out = [_pending(node, p.channel, ChannelState.PENDING_OPEN) for p in resp.pending_open_channels]
    for w in resp.waiting_close_channels:
        out.append(
            _pending(
                node,
                w.channel,
                ChannelState.CLOSING,
                closing_txid=w.closing_txid or None,
                limbo_sat=w.limbo_balance,
            )
        )
    for f in resp.pending_force_closing_channels:
        out.append(
            _pending(
                node,
                f.channel,
                ChannelState.FORCE_CLOSING,
                closing_txid=f.closing_txid or None,
                limbo_sat=f.limbo_balance,
                recovered_sat=f.recovered_balance,
                maturity_height=f.maturity_height or None,
                blocks_til_maturity=f.blocks_til_maturity,
            )
        )
    for c in resp.pending_closing_channels:
        out.append(_pending(node, c.channel, ChannelState.CLOSING, closing_txid=c.closing_txid or None))
    return out


# The order lnd's channel lists are read in, one after another (see latest_of).
READ_ORDER = ("pending", "open", "pending", "closed", "pending")
READ_ORDER_OPEN_ONLY = READ_ORDER[:3]  # without closed channels


def latest_of(reads: Iterable[list[ChannelInfo]]) -> list[ChannelInfo]:
    """Every channel of several lists read one after another, each listed once as
    the latest read saw it.

    lnd answers pending, open and closed channels in three calls. Read in
    READ_ORDER (pending, open, pending, closed, pending), a channel that moves on between
    two reads (always forward: pending open, open, closing, closed) is in a later
    one, so it is never lost, as it can be when the lists are read at once (still
    pending when the open list is read, open when the pending list is). The last
    pending read puts a force close whose outputs still mature, which lnd lists as
    closed too, back in its place."""
    latest: dict[str, ChannelInfo] = {}
    for read in reads:
        for info in read:
            latest[info.channel_point] = info
    return list(latest.values())


def from_closed(node: str, c: Any) -> ChannelInfo:
    """A ``ChannelCloseSummary``."""
    return ChannelInfo(
        node=node,
        channel_point=c.channel_point,
        peer_pubkey=c.remote_pubkey,
        state=ChannelState.CLOSED,
        capacity_sat=c.capacity,
        short_channel_id=scid_to_str(c.chan_id) if c.chan_id else None,
        initiator=_INITIATORS.get(int(c.open_initiator), "unknown"),
        closing_txid=c.closing_tx_hash or None,
        close_type=_CLOSE_TYPES.get(int(c.close_type), CloseType.UNKNOWN),
        close_height=c.close_height or None,
        settled_sat=c.settled_balance,
        limbo_sat=c.time_locked_balance,
    )


def _point_str(cp: Any) -> str:
    if cp.funding_txid_str:
        txid = cp.funding_txid_str
    else:
        txid = txid_from_bytes(cp.funding_txid_bytes)
    return f"{txid}:{cp.output_index}"


def from_event(node: str, ev: Any) -> ChannelEvent | None:
    """A ``ChannelEventUpdate``; None for event types we do not know."""
    which = ev.WhichOneof("channel")
    if which == "open_channel":
        info = from_channel(node, ev.open_channel)
        return ChannelEvent(node, "open", info.channel_point, info)
    if which == "closed_channel":
        info = from_closed(node, ev.closed_channel)
        return ChannelEvent(node, "closed", info.channel_point, info)
    if which == "active_channel":
        return ChannelEvent(node, "active", _point_str(ev.active_channel))
    if which == "inactive_channel":
        return ChannelEvent(node, "inactive", _point_str(ev.inactive_channel))
    if which == "fully_resolved_channel":
        return ChannelEvent(node, "fully_resolved", _point_str(ev.fully_resolved_channel))
    if which == "pending_open_channel":
        p = ev.pending_open_channel
        return ChannelEvent(node, "pending_open", f"{txid_from_bytes(p.txid)}:{p.output_index}")
    return None
