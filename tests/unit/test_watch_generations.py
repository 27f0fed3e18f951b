"""`watch` and older wallet generations (custody/watch/migration.py): a coin landing in one is
recognised, its migration PSBT prepared once, the signers alerted, and a restart repeats nothing.

A real wallet (SQLite store, software signers alice, bob, carol; `wallet rotate` through the
CLI) on a MemoryChain (real blocks and transactions), ScriptedNode standing in for the node.
On real lnd + btcd: tests/integration/test_rotation_lnd.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.custody.watch.watcher import Watcher, WatchOptions
from l2custody.wallet.generations import migration_records
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, init_regtest, ok, software_signers
from tests.support.wallet import fresh_account_key
from tests.support.watch import RecordingSink, ScriptedNode, channel, outpoint


class World:
    """Generation 1 (alice, bob, carol; 2-of-3) committed three channel close addresses, then
    a rotation made generation 2. ``start()`` is a (re)start of watch: new objects, same store."""

    def __init__(self, tmp_path: Path, rotation: tuple[str, ...] = ("--remove", "carol")) -> None:
        self.tmp = tmp_path
        self.config = init_regtest(tmp_path)
        create_wallet(self.config, software_signers(self.config, tmp_path, ("alice", "bob", "carol")))
        self.chain = MemoryChain()
        with Wallet.open(load_config(self.config), chain=self.chain) as gen1:
            closes = [gen1.next_address(label=f"close of channel {i}") for i in range(3)]
            self.scripts = [gen1.descriptor.derive(False, a.index).script_pubkey for a in closes]
        ok(
            self.config,
            "wallet",
            "rotate",
            "--add",
            fresh_account_key(),
            *rotation,
            "--reason",
            "rotation test",
            "--yes",
        )
        self.node = ScriptedNode("west", [channel("west", i, close_address=a.address) for i, a in enumerate(closes)])
        self.sink = RecordingSink()
        self.wallet: Wallet | None = None
        self.watcher: Watcher | None = None

    def start(self) -> Watcher:
        self.stop()
        cfg = load_config(self.config)
        self.wallet = Wallet.open(cfg, chain=self.chain)
        self.wallet.actor = "watch"
        options = WatchOptions.from_config(cfg, poll_seconds=60)
        self.watcher = Watcher(self.wallet, lambda: ["west"], lambda name: self.node, options, [self.sink])
        return self.watcher

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.wallet is not None:
            self.wallet.close()
        self.watcher = self.wallet = None

    def close_channel(self, n: int, value: int, *, confirm: bool = True) -> str:
        """Channel ``n`` closes cooperatively: its closing transaction pays the address it committed."""
        tx = Transaction(
            vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(self.scripts[n]))]
        )
        self.node.channels = [c for c in self.node.channels if c.channel_point != outpoint(n)]
        if confirm:
            self.chain.add_block([tx])
        else:
            self.chain.broadcast(tx.serialize())
        return f"{tx.txid().hex()}:0"

    def audit(self, action: str) -> list[Any]:
        assert self.wallet is not None
        return [e for e in self.wallet.store.audit_log() if e.action == action]

    def migrations(self) -> list[Any]:
        assert self.wallet is not None
        return migration_records(self.wallet.store)

    def set_config(self, key: str, value: str) -> None:
        text = self.config.read_text()
        assert f"{key} = " in text
        self.config.write_text(
            "\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in text.splitlines())
        )


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = World(tmp_path)
    yield w
    w.stop()


def test_a_coin_landing_in_an_old_generation_gets_one_migration_psbt_and_the_signers_are_alerted(world: World) -> None:
    coin = world.close_channel(0, 250_000)
    snap = world.start().round(source="start")

    [move] = world.migrations()
    assert (move.from_generation, move.to_generation, move.outpoints, move.open) == (1, 2, (coin,), True)
    file = load_config(world.config).data_dir / "migrations" / f"{move.id}.psbt"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert load_psbt(file.read_bytes()).to_base64() == world.wallet.store.psbt(move.id).psbt  # type: ignore[union-attr]
    [alert] = world.sink.of("migration-psbt")
    assert alert.severity == "warning" and alert.subject == move.id
    for needle in (move.id, str(file), "250,000 sat", "generation 1", "2 of alice, bob", "l2custody psbt sign"):
        assert needle in alert.message, needle
    assert alert.details["signers"] == ["alice", "bob"] and alert.details["coins"] == [coin]
    [seen] = world.audit("old-generation-coin")
    assert (seen.actor, seen.subject, seen.details["session"]) == ("watch", coin, move.id)
    assert [e.subject for e in world.audit("migration-prepared")] == [move.id]

    # the exposure: generation 1 holds the coin (its migration in flight) and the two other channels
    one = snap.exposure[0]
    assert (one.coins, one.channels, [m.session for m in one.migrations]) == (1, 2, [move.id])
    assert {a.details["kind"] for a in world.sink.of("old-generation")} == {"coins", "channels"}

    world.chain.add_block()
    world.watcher.round()  # type: ignore[union-attr]
    world.start().round(source="start")  # a restart: new wallet and watcher over the same store
    world.chain.add_block()
    world.watcher.round()  # type: ignore[union-attr]
    assert [m.id for m in world.migrations()] == [move.id]
    assert len(world.sink.of("migration-psbt")) == 1 and len(world.audit("old-generation-coin")) == 1

    # generation 1's quorum signs (the CLI finds the generation), the migration confirms: the coin is in 2
    for signer in ("alice", "bob"):
        ok(world.config, "psbt", "sign", str(file), "--signer", signer)
    owner = world.wallet.for_psbt(load_psbt(file.read_bytes()))  # type: ignore[union-attr]
    assert owner.record.generation == 1
    owner.broadcast(load_psbt(file.read_bytes()))
    world.chain.add_block()
    snap = world.watcher.round()  # type: ignore[union-attr]
    one, two = snap.exposure
    assert (one.coins, two.coins, two.balance_sat) == (0, 1, 250_000 - fee(world, move.id))
    assert [m.state for m in world.migrations()] == ["confirmed"] and not one.migrations
    assert [f.kind for f in snap.findings if f.check == "generation-exposure"] == ["channels"]


def fee(world: World, session: str) -> int:
    assert world.wallet is not None
    return int(world.wallet.store.psbt(session).details["fee"])


def test_an_unconfirmed_coin_waits_for_its_confirmation(world: World) -> None:
    world.close_channel(1, 300_000, confirm=False)
    snap = world.start().round(source="start")
    assert snap.exposure[0].coins == 1 and world.migrations() == [] and world.sink.of("migration-psbt") == []
    world.chain.add_block()
    world.watcher.round()  # type: ignore[union-attr]
    assert len(world.migrations()) == 1 and len(world.sink.of("migration-psbt")) == 1


def test_an_aborted_migration_is_left_to_the_operator(world: World) -> None:
    world.close_channel(0, 250_000)
    world.start().round(source="start")
    [move] = world.migrations()
    ok(world.config, "psbt", "abort", move.id)
    world.chain.add_block()
    snap = world.watcher.round()  # type: ignore[union-attr]
    assert [m.state for m in world.migrations()] == ["aborted"] and len(world.sink.of("migration-psbt")) == 1
    [coins] = [f for f in snap.findings if f.kind == "coins"]
    assert "l2custody wallet migrate --generation 1" in coins.message  # the report still says what to do


def test_with_the_switch_off_watch_alerts_once_per_coin_and_prepares_nothing(world: World) -> None:
    world.set_config("auto_migrate_psbt", "false")
    coin = world.close_channel(0, 250_000)
    world.start().round(source="start")
    world.start().round(source="start")
    world.chain.add_block()
    world.watcher.round()  # type: ignore[union-attr]
    assert world.migrations() == []
    [alert] = world.sink.of("old-generation-coin")
    assert alert.severity == "warning" and alert.subject == coin
    assert f"l2custody wallet migrate --generation 1 --utxo {coin}" in alert.message
    assert "auto_migrate_psbt is off" in alert.message
    assert [e.subject for e in world.audit("old-generation-coin")] == [coin]


def test_a_generation_whose_quorum_cannot_sign_gets_a_critical_alert_and_no_psbt(tmp_path: Path) -> None:
    world = World(tmp_path, ("--remove", "bob", "--remove", "carol"))
    try:
        coin = world.close_channel(0, 250_000)
        world.start().round(source="start")
        assert world.migrations() == []
        [alert] = world.sink.of("old-generation-coin")
        assert alert.severity == "critical" and alert.subject == coin and "recovery path" in alert.message
        [exposure] = world.sink.of("old-generation")
        assert exposure.severity == "critical" and exposure.details["kind"] == "unsignable"
        assert "force close" in exposure.message  # two channels still pay generation 1 on a cooperative close
    finally:
        world.stop()
