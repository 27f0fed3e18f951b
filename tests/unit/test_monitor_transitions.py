"""Channel transitions (custody/watch/transitions.py): the diff between two readings of a
node, the facts carried forward, and which transitions are alerts. Pure."""

from __future__ import annotations

from dataclasses import replace

from l2custody.custody.report.snapshot import ChannelFacts
from l2custody.custody.watch.transitions import (
    carry_known,
    diff_channels,
    transition_alerts,
)
from tests.support.watch import outpoint

PEER = "03" + "22" * 32
FOREIGN = "bcrt1qforeign"


def facts(n: int, state: str = "open", **kw) -> ChannelFacts:  # type: ignore[no-untyped-def]
    base = dict(
        local_balance_sat=300_000,
        active=True,
        close_address="bcrt1qours",
        close_committed=True,
        close_ours=True,
        funding="session",
        short_channel_id=f"{n}x1x0",
    )
    base.update(kw)
    return ChannelFacts("west", outpoint(n), state, PEER, 500_000, **base)  # type: ignore[arg-type]


def by_point(*items: ChannelFacts) -> dict[str, ChannelFacts]:
    return {f.channel_point: f for f in items}


def test_new_changed_inactive_and_gone_channels() -> None:
    old = by_point(facts(1), facts(2), facts(3), facts(4, "pending_open", close_committed=None))
    new = [facts(1, local_balance_sat=1), facts(2, active=False), facts(4), facts(5, "pending_open")]
    current, moves = diff_channels(old, new)
    got = {(t.channel_point, t.kind, t.old, t.new) for t in moves}
    assert got == {
        (outpoint(2), "activity", "active", "inactive"),
        (outpoint(4), "state", "pending_open", "open"),
        (outpoint(5), "state", None, "pending_open"),
        (outpoint(3), "gone", "open", None),
    }
    assert set(current) == {outpoint(1), outpoint(2), outpoint(4), outpoint(5)}
    # a balance change is not a transition (payments are not recorded one by one)
    assert not any(t.channel_point == outpoint(1) for t in moves)
    [gone] = [t for t in moves if t.kind == "gone"]
    assert gone.action == "channel-state" and gone.details("poll")["to"] is None


def test_close_facts_the_node_stopped_reporting_are_carried_forward() -> None:
    before = facts(1, close_address=FOREIGN, close_ours=False)
    closing = facts(1, "closing", close_address=None, close_committed=None, close_ours=None, short_channel_id=None)
    carried = carry_known(before, closing)
    assert (carried.close_address, carried.close_committed, carried.close_ours) == (FOREIGN, True, False)
    assert carried.short_channel_id == "1x1x0"
    assert carry_known(None, closing) is closing
    # what the node reports now wins
    assert carry_known(before, facts(1, close_address="bcrt1qnew")).close_address == "bcrt1qnew"


def test_details_name_the_nodes_identifiers() -> None:
    _, [move] = diff_channels(
        by_point(facts(1)), [facts(1, "force_closing", closing_txid="cd" * 32, limbo_sat=290_000, maturity_height=150)]
    )
    d = move.details("event", ["closed", "closed", "inactive"])
    assert d["from"] == "open" and d["to"] == "force_closing" and d["source"] == "event"
    assert d["short_channel_id"] == "1x1x0" and d["peer"] == PEER and d["closing_txid"] == "cd" * 32
    assert d["limbo_sat"] == 290_000 and d["node_events"] == ["closed", "inactive"]


def test_force_close_alerts_once() -> None:
    old = by_point(facts(1))
    current, moves = diff_channels(
        old, [facts(1, "force_closing", closing_txid="cd" * 32, limbo_sat=250_000, maturity_height=150)]
    )
    [alert] = transition_alerts(moves, old)
    assert (
        alert.kind == "force-close" and alert.severity == "critical" and alert.key == f"force-close:west:{outpoint(1)}"
    )
    assert "250,000 sat are time-locked until height 150" in alert.message and "l2custody sweep west" in alert.message
    # resolving it later raises nothing new
    later, moves = diff_channels(current, [facts(1, "closed", close_type="remote_force")])
    assert transition_alerts(moves, current) == []
    # a force close seen only once it is closed (watch was down) still alerts, naming who
    _, moves = diff_channels(old, [facts(1, "closed", close_type="remote_force")])
    [late] = transition_alerts(moves, old)
    assert late.kind == "force-close" and "by the peer" in late.message


def test_cooperative_closes_alert_unless_they_pay_the_multisig() -> None:
    old = by_point(
        facts(1),
        facts(2, close_address=FOREIGN, close_ours=False),
        facts(3, close_address=None, close_committed=False, close_ours=None),
    )
    closed = [replace(f, state="closed", close_type="cooperative", close_committed=None) for f in old.values()]
    _, moves = diff_channels(old, closed)
    alerts = {a.subject: a for a in transition_alerts(moves, old)}
    assert set(alerts) == {outpoint(2), outpoint(3)}
    assert alerts[outpoint(2)].severity == "critical" and FOREIGN in alerts[outpoint(2)].message
    assert alerts[outpoint(3)].severity == "warning" and "nobody committed" in alerts[outpoint(3)].message
