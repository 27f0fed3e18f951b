"""`watch` on a recovery wallet (custody/watch/refresh.py): a coin nearing its recovery path
gets one refresh PSBT for the primary signers, a coin whose path is open one critical alert,
and a restart repeats nothing.

A real recovery wallet (SQLite store; software signers alice, bob, carol on the 2-of-3
primary path, heir alone after 10 blocks; made through the CLI) on a MemoryChain (real
blocks and transactions), watched with no node registered. On real btcd:
tests/integration/test_refresh_btcd.py.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.custody.report.snapshot import Snapshot
from l2custody.custody.watch.metrics import Metrics
from l2custody.custody.watch.watcher import Watcher, WatchOptions
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.recovery import RefreshRecord, coin_locks, refresh_records
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import ok, set_config
from tests.support.recovery import mine_to, receive, recovery_config
from tests.support.watch import RecordingSink

DELAY, MARGIN = 10, 4


class World:
    """The recovery wallet and its chain. ``start()`` is a (re)start of watch: new wallet and
    watcher objects over the same store."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = recovery_config(tmp_path, delay=DELAY, margin=MARGIN)
        self.chain = MemoryChain()
        mine_to(self.chain, 5)
        self.sink = RecordingSink()
        self.metrics = Metrics()
        self.wallet: Wallet | None = None
        self.watcher: Watcher | None = None

    def receive(self, value: int) -> str:
        with Wallet.open(load_config(self.config), chain=self.chain) as wallet:
            return receive(wallet, self.chain, value)

    def start(self) -> Watcher:
        self.stop()
        cfg = load_config(self.config)
        self.wallet = Wallet.open(cfg, chain=self.chain)
        self.wallet.actor = "watch"
        options = WatchOptions.from_config(cfg, poll_seconds=60)
        self.watcher = Watcher(self.wallet, lambda: [], self._no_node, options, [self.sink], metrics=self.metrics)
        return self.watcher

    @staticmethod
    def _no_node(name: str) -> Any:
        raise AssertionError(f"no node is registered, yet {name} was opened")

    def block(self) -> Snapshot:
        """A new block (with what the mempool holds), and the round that sees it."""
        assert self.watcher is not None
        self.chain.add_block()
        return self.watcher.round()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.wallet is not None:
            self.wallet.close()
        self.watcher = self.wallet = None

    def refreshes(self) -> list[RefreshRecord]:
        assert self.wallet is not None
        return refresh_records(self.wallet.store, self.wallet.record.id)

    def audit(self, action: str) -> list[Any]:
        assert self.wallet is not None
        return [e for e in self.wallet.store.audit_log() if e.action == action]

    def file(self, session: str) -> Path:
        return load_config(self.config).data_dir / "refresh" / f"{session}.psbt"


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = World(tmp_path)
    yield w
    w.stop()


def recovery_findings(snap: Snapshot) -> dict[str, str]:
    return {f.kind: f.message for f in snap.findings if f.check == "recovery-timelock"}


def test_a_coin_nearing_its_recovery_path_gets_one_refresh_psbt_and_the_primary_signers_are_alerted(
    world: World,
) -> None:
    coin = world.receive(300_000)  # block 6: the heir may spend it from block 16
    snap = world.start().round(source="start")  # tip 6: 9 blocks left, outside the margin of 4
    assert world.refreshes() == [] and recovery_findings(snap) == {} and world.sink.got == []
    mine_to(world.chain, 10)
    world.watcher.round()  # type: ignore[union-attr]  # tip 10: 5 blocks left
    assert world.refreshes() == []

    snap = world.block()  # tip 11: 4 blocks left, within the margin
    [refresh] = world.refreshes()
    assert (refresh.outpoints, refresh.open) == ((coin,), True)
    file = world.file(refresh.id)
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert load_psbt(file.read_bytes()).to_base64() == world.wallet.store.psbt(refresh.id).psbt  # type: ignore[union-attr]
    [alert] = world.sink.of("refresh-psbt")
    assert (alert.severity, alert.subject) == ("warning", refresh.id)
    for needle in (refresh.id, str(file), coin, "opens at block 16", "2 of alice, bob, carol", "heir alone after 10"):
        assert needle in alert.message, needle
    assert f"l2custody psbt sign {file} --signer NAME" in alert.message
    assert alert.details["signers"] == ["alice", "bob", "carol"] and alert.details["threshold"] == 2
    assert [c["outpoint"] for c in alert.details["coins"]] == [coin] and alert.details["file"] == str(file)
    [seen] = world.audit("recovery-coin-due")
    assert (seen.actor, seen.subject, seen.details["session"], seen.details["opens_at"]) == (
        "watch",
        coin,
        refresh.id,
        16,
    )
    assert [e.subject for e in world.audit("refresh-prepared")] == [refresh.id]
    # the report's warning now says to sign that session, not to refresh again
    assert f"Refresh session(s) {refresh.id}" in recovery_findings(snap)["due"]
    assert world.sink.of("recovery-timelock")[0].severity == "warning"

    world.block()
    world.start().round(source="start")  # a restart: new wallet and watcher over the same store
    world.block()
    assert [r.id for r in world.refreshes()] == [refresh.id]
    assert len(world.sink.of("refresh-psbt")) == 1 and len(world.audit("recovery-coin-due")) == 1
    assert world.sink.of("recovery-open") == []  # tip 13: the path opens 2 blocks after the next

    # two primary signers sign the prepared file; broadcast and confirmed, the clock restarts
    for signer in ("alice", "bob"):
        ok(world.config, "psbt", "sign", str(file), "--signer", signer)
    world.wallet.broadcast(load_psbt(file.read_bytes()))  # type: ignore[union-attr]
    snap = world.block()  # block 14 confirms the refresh
    assert [r.state for r in world.refreshes()] == ["confirmed"]
    [fresh] = coin_locks(world.wallet, world.chain.tip_height())  # type: ignore[arg-type]
    assert fresh.outpoint != coin and (fresh.height, fresh.opens_at) == (14, 14 + DELAY)
    assert recovery_findings(snap) == {} and snap.recovery is not None and snap.recovery.next_open_blocks == 9
    assert world.sink.of("recovery-open") == []


def test_with_the_switch_off_watch_alerts_once_per_coin_and_prepares_nothing(world: World) -> None:
    set_config(world.config, "recovery", "auto_refresh_psbt", "false")
    coin = world.receive(300_000)  # block 6: opens at 16
    mine_to(world.chain, 12)
    world.start().round(source="start")
    world.start().round(source="start")
    world.block()
    assert world.refreshes() == []
    [alert] = world.sink.of("recovery-due")
    assert (alert.severity, alert.subject) == ("warning", coin)
    assert f"l2custody wallet refresh --utxo {coin}" in alert.message and "auto_refresh_psbt is off" in alert.message
    assert "at block 16, in 3 blocks" in alert.message and "2 of alice, bob, carol" in alert.message
    assert [e.subject for e in world.audit("recovery-coin-due")] == [coin]
    assert world.sink.of("refresh-psbt") == []


@pytest.mark.parametrize("prepare", [True, False])
def test_a_coin_whose_recovery_path_is_open_raises_one_critical_alert(world: World, prepare: bool) -> None:
    set_config(world.config, "recovery", "auto_refresh_psbt", "true" if prepare else "false")
    coin = world.receive(300_000)  # block 6: opens at 16
    mine_to(world.chain, 15)  # watch was not running: the next block may already hold a recovery spend
    world.start().round(source="start")
    world.block()
    world.start().round(source="start")
    [alert] = world.sink.of("recovery-open")
    assert (alert.severity, alert.subject) == ("critical", coin)
    assert "the recovery keys alone (heir alone after 10 blocks) can spend it NOW" in alert.message
    assert [e.subject for e in world.audit("recovery-coin-open")] == [coin]
    assert world.sink.of("recovery-due") == []  # an open coin is the critical alert, not also a warning
    [condition] = world.sink.of("recovery-timelock")
    assert condition.severity == "critical" and condition.details["kind"] == "open"
    if prepare:  # the refresh that closes the window again is ready too, and the alert names it
        [refresh] = world.refreshes()
        assert refresh.outpoints == (coin,) and f"refresh session {refresh.id} re-spends it" in alert.message
        assert len(world.sink.of("refresh-psbt")) == 1
    else:
        assert world.refreshes() == [] and f"l2custody wallet refresh --utxo {coin}" in alert.message


def test_an_aborted_refresh_is_left_to_the_operator(world: World) -> None:
    world.receive(300_000)
    mine_to(world.chain, 11)
    world.start().round(source="start")
    [refresh] = world.refreshes()
    ok(world.config, "psbt", "abort", refresh.id)
    snap = world.block()
    assert [r.state for r in world.refreshes()] == ["aborted"] and len(world.sink.of("refresh-psbt")) == 1
    assert "Refresh them with `l2custody wallet refresh`" in recovery_findings(snap)["due"]  # the report still says


def test_the_metrics_count_the_coins_due_and_open(world: World) -> None:
    world.receive(300_000)  # block 6: opens at 16
    mine_to(world.chain, 8)
    world.receive(100_000)  # block 9: opens at 19
    mine_to(world.chain, 12)
    world.start().round(source="start")
    lines = world.metrics.page().splitlines()
    assert "l2custody_recovery_coins_due 1" in lines and "l2custody_recovery_coins_open 0" in lines
    assert "l2custody_recovery_next_open_blocks 3" in lines  # tip 12: block 16 is 3 blocks after the next
    assert 'l2custody_custody_check_failures{check="recovery-timelock"} 1' in lines
