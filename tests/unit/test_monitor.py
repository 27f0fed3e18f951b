"""The watch rounds (custody/watch/watcher.py) on a real wallet + store + MemoryChain, with
ScriptedNode standing in for the node (see watch_support). Real lnd: test_watch_lnd.py."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l2custody.backends.base import (
    Capability,
    ChannelEvent,
    ChannelState,
    CloseType,
    OnchainBalance,
)
from l2custody.chain.memory import MemoryChain
from l2custody.custody.watch.metrics import Metrics
from l2custody.custody.watch.state import alerts as outbox
from l2custody.custody.watch.watcher import Watcher, WatchOptions
from l2custody.errors import NodeUnreachable
from l2custody.wallet.service import Wallet
from regtest import wait_for
from tests.support.custody import FOREIGN_ADDRESS
from tests.support.watch import RecordingSink, ScriptedNode, channel, outpoint


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, tmp_path: Path, make_wallet: Callable[..., Wallet]) -> None:
        self.tmp = tmp_path
        self.chain = MemoryChain()
        self.wallet = make_wallet(tmp_path, self.chain)
        self.wallet.actor = "watch"
        self.node = ScriptedNode("west")
        self.sink = RecordingSink()
        self.clock = Clock()
        self.metrics = Metrics()
        self.options = WatchOptions(
            poll_seconds=60,
            backup_dir=tmp_path / "backups",
            unreachable_alert_seconds=60,
            reconnect_min_seconds=0.01,
            reconnect_max_seconds=0.05,
        )
        self.watcher = self.make()

    def make(self, **options: Any) -> Watcher:
        from dataclasses import replace

        return Watcher(
            self.wallet,
            lambda: ["west"],
            lambda name: self.node,
            replace(self.options, **options),
            [self.sink],
            metrics=self.metrics,
            clock=self.clock,
        )

    def clean(self, n: int, state: ChannelState = ChannelState.OPEN, **kw: Any) -> Any:
        """A channel no custody check objects to: a multisig close address, opened by the peer."""
        return channel("west", n, state, close_address=self.wallet.next_address().address, initiator="remote", **kw)

    def audit(self, action: str | None = None) -> list[Any]:
        return [
            e for e in self.wallet.store.audit_log() if e.actor == "watch" and (action is None or e.action == action)
        ]

    def moves(self) -> list[tuple[str, str | None, str | None, str]]:
        return [
            (e.subject, e.details["from"], e.details["to"], e.details["source"]) for e in self.audit("channel-state")
        ]


@pytest.fixture
def world(tmp_path: Path, make_memory_wallet: Callable[..., Wallet]):  # type: ignore[no-untyped-def]
    w = World(tmp_path, make_memory_wallet)
    yield w
    w.watcher.close()
    w.wallet.close()


def test_first_round_is_a_baseline_then_each_transition_is_recorded_once(world: World) -> None:
    world.node.channels = [channel("west", 1)]
    world.watcher.round(source="start")
    [base] = world.audit("watch-baseline")
    assert base.subject == "node west" and base.details == {"channels": 1, "by_state": {"open": 1}}
    assert world.moves() == []
    world.node.channels.append(channel("west", 2, ChannelState.PENDING_OPEN))
    world.node.set_state(1, ChannelState.CLOSING, close_address_known=False)
    world.watcher.round()
    world.watcher.round()
    assert sorted(world.moves()) == sorted(
        [(outpoint(2), None, "pending_open", "poll"), (outpoint(1), "open", "closing", "poll")]
    )
    [entry] = [e for e in world.audit("channel-state") if e.subject == outpoint(1)]
    assert entry.details["node"] == "west" and entry.details["short_channel_id"] == "101x1x0"


def test_a_restart_reconciles_from_the_node_and_repeats_nothing(world: World) -> None:
    world.node.channels = [channel("west", 1)]
    world.watcher.round(source="start")
    world.node.channels.append(channel("west", 2, ChannelState.PENDING_OPEN))
    world.watcher.round()
    world.watcher.close()
    # watch is down: the channel opens and the other is force closed by the peer
    world.node.set_state(2, ChannelState.OPEN)
    world.node.set_state(
        1, ChannelState.FORCE_CLOSING, limbo_sat=390_000, closing_txid="cd" * 32, close_address_known=False
    )
    again = world.make()
    again.round(source="start")
    again.round()
    assert world.moves() == [
        (outpoint(2), None, "pending_open", "poll"),
        *sorted(
            [(outpoint(2), "pending_open", "open", "start"), (outpoint(1), "open", "force_closing", "start")],
            key=_order(world),
        ),
    ]
    assert len(world.audit("watch-baseline")) == 1
    [force] = [a for a in world.sink.got if a.kind == "force-close"]
    assert force.subject == outpoint(1) and "390,000 sat" in force.message
    again.close()


def _order(world: World):  # type: ignore[no-untyped-def]
    recorded = [m for m in world.moves() if m[3] == "start"]
    return lambda m: recorded.index(m)


def test_alerts_reach_every_sink_once_and_failed_sinks_are_retried(world: World) -> None:
    world.node.channels = [channel("west", 1)]
    world.watcher.round()  # (its custody findings alert here)
    flaky = RecordingSink("flaky", failures=1)
    world.watcher.sinks.append(flaky)
    world.node.set_state(1, ChannelState.FORCE_CLOSING, limbo_sat=1000, close_address_known=False)
    world.watcher.round()
    force = [e for e in outbox(world.wallet.store) if e.alert.kind == "force-close"]
    assert [a.kind for a in world.sink.got if a.kind == "force-close"] == ["force-close"]
    [entry] = force
    assert entry.delivered is None and entry.sent_to == ("hook",) and "flaky is down" in (entry.last_error or "")
    world.watcher.round()
    assert [a.kind for a in flaky.got] == ["force-close"]
    assert [a.kind for a in world.sink.got].count("force-close") == 1
    [entry] = [e for e in outbox(world.wallet.store) if e.alert.kind == "force-close"]
    assert entry.delivered is not None and entry.attempts == 2 and entry.sent_to == ("flaky", "hook")


def test_an_unreachable_node_alerts_after_the_threshold_and_keeps_its_last_figures(world: World) -> None:
    world.node.channels = [world.clean(1)]
    world.node.balance = OnchainBalance(20_000, 0, 0, 0)
    world.watcher.round()
    world.node.down = True
    world.clock.now += 10
    snap = world.watcher.round()
    assert [e.details["error"] for e in world.audit("node-unreachable")] == [
        "cannot reach node 'west': connection refused (stand-in)"
    ]
    assert not snap.nodes[0].reachable and snap.balances["channels_local"] == 400_000  # last known
    assert [a.kind for a in world.sink.got] == []
    world.clock.now += 59
    world.watcher.round()
    assert [a.kind for a in world.sink.got] == []
    world.clock.now += 2
    world.watcher.round()
    [alert] = world.sink.got
    assert alert.kind == "node-unreachable" and "l2custody node check west" in alert.message
    world.node.down = False
    world.clock.now += 5
    world.watcher.round()
    [back] = world.audit("node-reachable")
    assert back.details["unreachable_seconds"] == pytest.approx(66, abs=1)
    assert [e.details["kind"] for e in world.audit("condition-cleared")] == ["node-unreachable"]
    world.node.down = True  # a second outage alerts again
    world.watcher.round()
    world.clock.now += 61
    world.watcher.round()
    assert [a.kind for a in world.sink.got] == ["node-unreachable", "node-unreachable"]


def test_custody_findings_alert_once_and_clear(world: World) -> None:
    world.node.channels = [channel("west", 1, close_address=FOREIGN_ADDRESS), channel("west", 2)]
    for _ in range(3):
        world.watcher.round()
    kinds = sorted(a.kind for a in world.sink.got)
    assert kinds == ["foreign-close-address", "foreign-funding", "foreign-funding", "no-close-address"]
    world.node.set_state(1, ChannelState.CLOSED, close_type=CloseType.COOPERATIVE, close_address_known=False)
    world.watcher.round()
    assert [a.kind for a in world.sink.got[4:]] == ["foreign-close"]  # the close itself paid a foreign address
    cleared = {(e.subject, e.details["kind"]) for e in world.audit("condition-cleared")}
    assert cleared == {(outpoint(1), "foreign-close-address"), (outpoint(1), "foreign-funding")}


def test_backups_are_written_0600_when_channels_change(world: World) -> None:
    world.node.channels = [channel("west", 1)]
    world.watcher.round()
    path = world.tmp / "backups" / "west.channel-backup"
    assert path.read_bytes() == b"scb-1" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    world.node.backup = b"scb-2"
    world.watcher.round()  # nothing changed: not asked again
    assert path.read_bytes() == b"scb-1"
    world.node.channels.append(channel("west", 2, ChannelState.PENDING_OPEN))
    world.watcher.round()
    assert path.read_bytes() == b"scb-2"
    assert [e.details["bytes"] for e in world.audit("backup-written")] == [5, 5]


def test_auto_sweep_off_logs_one_dry_run_per_figure(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.node.balance = OnchainBalance(300_000, 0, 0, 0)
    world.node.reserve = 10_000
    caplog.set_level("INFO", "l2custody.watch")
    world.watcher.round()
    world.watcher.round()
    assert [s[2] for s in world.node.sweeps] == [True]  # one dry run, nothing sent
    assert "auto-sweep is off" in caplog.text and "would send 289,800 sat" in caplog.text
    [dry] = world.audit("sweep-dry-run")
    assert dry.details["amount_sat"] == 289_800
    assert [a.kind for a in world.sink.got] == ["hot-wallet"]


def test_auto_sweep_moves_the_excess_once(world: World) -> None:
    watcher = world.make(auto_sweep=True, sweep_keep_sat=20_000)
    world.node.balance = OnchainBalance(300_000, 0, 0, 0)
    watcher.round()
    watcher.round()
    [(address, keep, dry)] = world.node.sweeps
    assert keep == 20_000 and not dry
    labels = {a.address: a.label for a in world.wallet.addresses(show_used=True)}
    assert labels[address] == "sweep west"
    [alert] = world.sink.got
    assert alert.kind == "auto-sweep" and alert.severity == "info" and "279,800 sat" in alert.message
    watcher.close()


def test_funding_deadline_findings_alert(world: World) -> None:
    from l2custody.custody.funding.records import create_session
    from l2custody.custody.funding.session import FundingSession, SessionState

    for _ in range(3):
        world.chain.add_block([])
    session = FundingSession("fs-near", SessionState.SECURED, start_height=3 - 2016 + 144 + 100, legs=())
    create_session(world.wallet.store, world.wallet.record.id, session)
    snap = world.watcher.round()
    [s] = snap.sessions
    assert s.blocks_left == 100
    [alert] = world.sink.got
    assert alert.kind == "funding-deadline" and "fs-near" in alert.message and "100 blocks left" in alert.message


def test_metrics_page_after_a_round(world: World) -> None:
    world.node.channels = [channel("west", 1), channel("west", 2, ChannelState.FORCE_CLOSING, limbo_sat=7_000)]
    world.node.balance = OnchainBalance(12_000, 3_000, 0, 0)
    world.watcher.round()
    page = world.metrics.page()
    assert 'l2custody_balance_sat{place="hot_wallet"} 15000' in page
    assert 'l2custody_balance_sat{place="limbo"} 7000' in page
    assert 'l2custody_channels{node="west",state="force_closing"} 1' in page
    assert 'l2custody_node_up{node="west"} 1' in page
    assert "l2custody_custody_violations 2" in page  # the open channel: no close address, foreign funding


def test_run_follows_node_events_and_stops_promptly(world: World) -> None:
    world.node.channels = [channel("west", 1)]
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=world.watcher.run, args=(stop,), kwargs={"on_ready": lambda _s: ready.set()})
    thread.start()
    try:
        wait_for(ready.is_set, 10, what="the first round")
        wait_for(lambda: world.node.subscriptions == 1, 10, what="the event subscription")
        world.node.set_state(1, ChannelState.CLOSING, close_address_known=False)
        world.node.events.put(ChannelEvent("west", "inactive", outpoint(1)))
        wait_for(lambda: world.moves() != [], 10, what="the event round")
        [move] = world.audit("channel-state")
        assert move.details["source"] == "event" and move.details["node_events"] == ["inactive"]
        wait_for(
            lambda: 'l2custody_node_last_event_timestamp_seconds{node="west"} 0.0' not in world.metrics.page(),
            10,
            what="the event time on the metrics page (rendered at the end of the round)",
        )
        started = time.monotonic()
        stop.set()
        thread.join(10)
        # promptly = on the stop signal, not at the next poll (60 s away); the margin is
        # for a loaded 2-core CI machine
        assert not thread.is_alive() and time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(5)


def test_the_follower_reconnects_with_backoff(world: World) -> None:
    import logging
    import queue

    from l2custody.custody.watch.follow import NodeFollower

    world.node.subscribe_failures = 2
    wakes: queue.Queue[Any] = queue.Queue()
    follower = NodeFollower(world.node, wakes, logging.getLogger("test"), min_delay=0.01, max_delay=0.04)
    follower.start()
    try:
        wait_for(lambda: world.node.subscriptions == 1, 10, what="a subscription after two failures")
        world.node.events.put(NodeUnreachable("stream broke (stand-in)"))
        wait_for(lambda: world.node.subscriptions == 2, 10, what="a resubscription")
        world.node.events.put(ChannelEvent("west", "open", outpoint(1)))
        kinds = []
        wait_for(lambda: kinds.extend(w.kind for w in _drain(wakes)) or "open" in kinds, 10, what="the event")
        assert kinds.count("subscribed") == 2 and follower.breaks == 3
    finally:
        follower.shutdown()
    assert not follower.is_alive()


def _drain(q: Any) -> list[Any]:
    import queue

    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_a_failed_round_is_logged_and_the_next_one_retries(world: World, caplog: pytest.LogCaptureFixture) -> None:
    from l2custody.errors import StoreError

    calls = []

    def names() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise StoreError("the store is busy (stand-in)")
        return ["west"]

    world.watcher.node_names = names
    world.watcher.options = WatchOptions(poll_seconds=0.05, backup_dir=world.tmp / "backups")
    stop = threading.Event()
    thread = threading.Thread(target=world.watcher.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: world.audit("watch-baseline"), 10, what="a round after the failed one")
    finally:
        stop.set()
        thread.join(5)
    assert "watch round failed (StoreError: the store is busy (stand-in))" in caplog.text


def test_cln_plugin_notifications_wake_cln_nodes(world: World) -> None:
    world.node.capabilities = world.node.capabilities | {Capability.PLUGIN_EVENTS}  # type: ignore[misc]
    world.watcher.round()
    assert world.watcher._plugin_wakes() == set()  # the first look sets the mark
    store = world.wallet.store
    store.audit("cln-plugin", "coin_movement", "x", {})
    assert world.watcher._plugin_wakes() == set()
    store.audit("cln-plugin", "channel_state_changed", "ab:0", {"new_state": "CHANNELD_NORMAL"})
    assert world.watcher._plugin_wakes() == {"west"}
    assert world.watcher._plugin_wakes() == set()
