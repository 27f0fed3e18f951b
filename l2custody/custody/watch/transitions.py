"""Channel transitions: what changed between two readings of a node, and which of
those changes are alerts. Pure functions over :class:`ChannelFacts` (no I/O).

``watch`` keeps the last reading of every node in the store and diffs each new
one against it, so every state change is found exactly once, also across a
restart (the reading and the audit entries of its transitions are written in
one transaction).

Nodes stop reporting some facts as a channel moves on (lnd reports the
committed close address of open channels only): :func:`diff_channels` carries
those forward from the previous reading, so a channel that committed a
foreign close address is still known to do so when it closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from l2custody.custody.report.snapshot import ChannelFacts

STATE, ACTIVITY, GONE = "state", "activity", "gone"
CLOSED, COOPERATIVE = "closed", "cooperative"


@dataclass(frozen=True)
class Transition:
    """One change of one channel: ``kind`` ``state`` (``old`` -> ``new`` state, ``old``
    None when first seen), ``activity`` (``inactive`` <-> ``active``) or ``gone`` (the
    node no longer lists it). ``facts`` is the channel now (the last known for gone)."""

    node: str
    channel_point: str
    kind: str
    old: str | None
    new: str | None
    facts: ChannelFacts

    @property
    def action(self) -> str:
        """The audit log action."""
        return "channel-activity" if self.kind == ACTIVITY else "channel-state"

    def details(self, source: str, woken_by: Iterable[str] = ()) -> dict[str, Any]:
        """The audit entry's details: the move, and the node's own identifiers for the channel."""
        f = self.facts
        out: dict[str, Any] = {
            "node": self.node,
            "from": self.old,
            "to": self.new,
            "source": source,
            "short_channel_id": f.short_channel_id,
            "peer": f.peer,
            "capacity_sat": f.capacity_sat,
            "local_balance_sat": f.local_balance_sat,
            "funding": f.funding,
            "session_id": f.session_id,
            "close_address": f.close_address,
            "close_address_ours": f.close_ours,
        }
        if f.closing_txid or f.close_type or f.limbo_sat:
            out.update(
                closing_txid=f.closing_txid,
                close_type=f.close_type,
                limbo_sat=f.limbo_sat,
                maturity_height=f.maturity_height,
            )
        woken = sorted(set(woken_by))
        if woken:
            out["node_events"] = woken
        return out


def carry_known(old: ChannelFacts | None, new: ChannelFacts) -> ChannelFacts:
    """``new``, with the close address facts and short channel id the node stopped
    reporting taken from ``old``."""
    if old is None:
        return new
    changes: dict[str, Any] = {}
    if new.close_committed is None and old.close_committed is not None:
        changes.update(close_committed=old.close_committed, close_address=old.close_address, close_ours=old.close_ours)
    elif new.close_address is None and old.close_address is not None:
        changes.update(close_address=old.close_address, close_ours=old.close_ours)
    if new.short_channel_id is None and old.short_channel_id is not None:
        changes["short_channel_id"] = old.short_channel_id
    return replace(new, **changes) if changes else new


def diff_channels(
    old: Mapping[str, ChannelFacts], new: Iterable[ChannelFacts]
) -> tuple[dict[str, ChannelFacts], list[Transition]]:
    """The new reading (facts carried forward, by channel point) and the transitions from ``old``."""
    current: dict[str, ChannelFacts] = {}
    moves: list[Transition] = []
    for facts in new:
        point = facts.channel_point
        before = old.get(point)
        facts = carry_known(before, facts)
        current[point] = facts
        if before is None:
            moves.append(Transition(facts.node, point, STATE, None, facts.state, facts))
        elif before.state != facts.state:
            moves.append(Transition(facts.node, point, STATE, before.state, facts.state, facts))
        elif before.active != facts.active and facts.state == "open":
            moves.append(
                Transition(facts.node, point, ACTIVITY, _activity(before.active), _activity(facts.active), facts)
            )
    if len(current) != len(old) or any(p not in current for p in old):
        for point, before in old.items():
            if point not in current:
                moves.append(Transition(before.node, point, GONE, before.state, None, before))
    return current, moves


def _activity(active: bool) -> str:
    return "active" if active else "inactive"


# --- which transitions are alerts ------------------------------------------------------------
@dataclass(frozen=True)
class EventAlert:
    """An alert a transition raises (once per ``key``)."""

    key: str
    kind: str
    severity: str  # critical | warning | info
    node: str
    subject: str
    message: str
    details: dict[str, Any]


def transition_alerts(moves: Iterable[Transition], previous: Mapping[str, ChannelFacts]) -> list[EventAlert]:
    """Force closes, and cooperative closes that did not pay a multisig address."""
    out: list[EventAlert] = []
    for t in moves:
        if t.kind != STATE or t.new is None:
            continue
        f = t.facts
        before = previous.get(t.channel_point)
        where = f"channel {f.channel_point} of node {f.node!r}"
        if f.force_closed and not (before is not None and before.force_closed):
            who = {
                "remote_force": "by the peer",
                "local_force": "by our node",
                "breach": "by a BREACH (the peer published a revoked state)",
            }.get(f.close_type or "", "")
            locked = (
                (
                    f" {f.limbo_sat:,} sat are time-locked"
                    + (f" until height {f.maturity_height}" if f.maturity_height else "")
                    + ";"
                )
                if f.limbo_sat
                else ""
            )
            out.append(
                EventAlert(
                    f"force-close:{f.node}:{f.channel_point}",
                    "force-close",
                    "critical",
                    f.node,
                    f.channel_point,
                    f"{where} was force closed{(' ' + who) if who else ''} (closing tx {f.closing_txid or 'unknown'}):"
                    f"{locked} the proceeds land in the node wallet, from where `l2custody sweep {f.node}` "
                    "(or watch's auto-sweep) moves them to the multisig",
                    {
                        "node": f.node,
                        "channel_point": f.channel_point,
                        "closing_txid": f.closing_txid,
                        "close_type": f.close_type,
                        "limbo_sat": f.limbo_sat,
                        "maturity_height": f.maturity_height,
                        "capacity_sat": f.capacity_sat,
                        "peer": f.peer,
                    },
                )
            )
        elif t.new == CLOSED and f.close_type == COOPERATIVE and f.close_ours is not True:
            if f.close_ours is False:
                what, severity = f"paid {f.close_address}, which is not a multisig address", "critical"
            else:
                what, severity = "paid an address nobody committed (not known to be the multisig)", "warning"
            out.append(
                EventAlert(
                    f"foreign-close:{f.node}:{f.channel_point}",
                    "foreign-close",
                    severity,
                    f.node,
                    f.channel_point,
                    f"{where} closed cooperatively and {what}; check the closing transaction {f.closing_txid} "
                    f"(`l2custody channel close-status {f.channel_point}`)",
                    {
                        "node": f.node,
                        "channel_point": f.channel_point,
                        "closing_txid": f.closing_txid,
                        "close_address": f.close_address,
                        "capacity_sat": f.capacity_sat,
                        "peer": f.peer,
                    },
                )
            )
    return out
