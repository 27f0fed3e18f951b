"""Exposure to older wallet generations (issue 12) in `report`, `channel list` and the snapshot.

The exposure and its findings are pure (custody/report/exposure.py over made-up facts);
then the same over a real wallet with two generations on a MemoryChain (SQLite store,
software signers, `wallet rotate` through the CLI), with ScriptedNode standing in for
the node. On real lnd: tests/integration/test_rotation_lnd.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.custody.channels import view_channels
from l2custody.custody.report.exposure import exposure_findings, generation_exposure
from l2custody.custody.report.observe import read_inputs
from l2custody.custody.report.snapshot import CHECKS, ChannelFacts, ReportSettings, build_snapshot
from l2custody.wallet.generations import GenerationInfo, KeyInfo
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, init_regtest, ok, run, software_signers
from tests.support.wallet import fresh_account_key
from tests.support.watch import PEER, ScriptedNode, channel, outpoint

ALICE, BOB, CAROL, DAVE = (
    KeyInfo(fp, name) for fp, name in [("aa" * 4, "alice"), ("bb" * 4, "bob"), ("cc" * 4, "carol"), ("dd" * 4, "dave")]
)


def gen(
    n: int, current: bool, keys: tuple[KeyInfo, ...], *, coins: int = 0, sat: int = 0, k: int = 2
) -> GenerationInfo:
    return GenerationInfo(n, n, current, k, keys, sat, coins, f"id{n}")


def removed(key: KeyInfo, why: str, in_generation: int = 2) -> KeyInfo:
    return KeyInfo(key.fingerprint, key.signer, in_generation, why)


def facts(
    n: int, generation: int | None, state: str = "open", node: str = "west", local: int = 300_000
) -> ChannelFacts:
    return ChannelFacts(
        node,
        outpoint(n),
        state,
        PEER,
        500_000,
        local,
        close_committed=True,
        close_ours=True,
        close_generation=generation,
    )


GEN1 = gen(1, False, (ALICE, BOB, removed(CAROL, "carol left")), coins=1, sat=250_000)
GEN2 = gen(2, True, (ALICE, BOB, DAVE), coins=2, sat=900_000)


# --- the exposure, pure --------------------------------------------------------------------------
def test_live_channels_count_against_the_generation_their_close_address_belongs_to() -> None:
    channels = [
        facts(1, 1),
        facts(2, 1, "pending_open", local=100_000),
        facts(3, 1, node="east", local=50_000),
        facts(4, 1, "closing"),  # its coin shows up as a coin
        facts(5, 1, "closed"),
        facts(6, 2),
        facts(7, None),  # no multisig close address: not any generation's
    ]
    one, two = generation_exposure([GEN1, GEN2], channels)
    assert (one.channels, one.channel_local_sat, one.by_node) == (
        3,
        450_000,
        {"west": (2, 400_000), "east": (1, 50_000)},
    )
    assert (two.channels, two.channel_local_sat, two.by_node) == (1, 300_000, {"west": (1, 300_000)})
    assert one.exposed and not two.exposed and one.usable_keys == 2 and one.can_sign
    assert one.signers() == ["alice", "bob"] and one.quorum() == "2 of alice, bob"


def test_an_older_generation_with_coins_and_channels_is_a_warning_that_says_what_to_do() -> None:
    exposure = generation_exposure([GEN1, GEN2], [facts(1, 1), facts(2, 1, node="east")])
    by = {f.kind: f for f in exposure_findings(exposure)}
    assert set(by) == {"coins", "channels"} and all(f.check == "generation-exposure" for f in by.values())
    coins, chans = by["coins"].message, by["channels"].message
    assert "1 coin(s), 250,000 sat" in coins and "l2custody wallet migrate --generation 1" in coins
    assert "to generation 2" in coins and "2 of alice, bob" in coins
    assert "2 channel(s) with 600,000 sat local balance on node(s) east (1), west (1)" in chans
    assert "l2custody channel close CHAN" in chans and "keep generation 1's keys" in chans
    assert by["coins"].subject == "generation 1" and by["coins"].key == "generation-exposure:coins:generation 1"


def test_a_generation_whose_quorum_cannot_sign_is_critical_and_names_the_recovery_path() -> None:
    lost = gen(1, False, (ALICE, removed(BOB, "seed lost"), removed(CAROL, "seed lost")), coins=2, sat=400_000)
    [finding] = exposure_findings(generation_exposure([lost, GEN2], [facts(1, 1)]))
    assert finding.kind == "unsignable"
    text = finding.message
    assert "can no longer sign: 1 of its keys can sign and 2 are needed" in text
    assert "bob (seed lost), carol (seed lost)" in text
    assert "2 coin(s), 400,000 sat, can be saved only by a recovery path" in text
    assert "--force" in text and "l2custody sweep NODE" in text  # the channels still have a way out


def test_the_current_generation_and_empty_old_ones_raise_nothing() -> None:
    empty = gen(1, False, (ALICE, removed(BOB, "lost"), removed(CAROL, "lost")))  # cannot sign, holds nothing
    assert exposure_findings(generation_exposure([empty, GEN2], [facts(1, 2)])) == []
    assert exposure_findings(generation_exposure([], [facts(1, 1)])) == []


def test_coins_already_in_a_migration_session_are_to_be_signed_not_migrated_again() -> None:
    from l2custody.custody.report.exposure import MigrationFacts

    moving = (MigrationFacts("9f8e7d6c5b4a3921", "partially-signed", 1, 249_000, coins=1),)
    exposure = generation_exposure([GEN1, GEN2], [], moving)
    assert exposure[0].migrations == moving and exposure[1].migrations == ()
    [coins] = exposure_findings(exposure)
    assert "1 of them are on their way to generation 2" in coins.message
    assert "9f8e7d6c5b4a3921 (partially-signed, 249,000 sat)" in coins.message and "psbt sign" in coins.message
    assert "wallet migrate" not in coins.message  # nothing left for it to move
    more = replace(GEN1, coins=3, balance_sat=500_000)
    [coins] = exposure_findings(generation_exposure([more, GEN2], [], moving))
    assert "move the other 2 with `l2custody wallet migrate --generation 1`" in coins.message


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=4),
    channels=st.lists(
        st.tuples(st.sampled_from(["pending_open", "open", "closing", "closed"]), st.none() | st.integers(1, 5)),
        max_size=8,
    ),
)
def test_exposure_is_found_exactly_where_an_older_generation_holds_something(
    shapes: list[tuple[int, int, int]], channels: list[tuple[str, int | None]]
) -> None:
    """A guard: no older generation holding coins or live channels goes unflagged, the flag is
    critical exactly when its quorum cannot sign, and every live channel is counted once."""
    keys = (ALICE, BOB, CAROL)
    gens = []
    for n, (k, coins, lost) in enumerate(shapes, start=1):
        held = tuple(removed(key, "lost", n + 1) if i < lost else key for i, key in enumerate(keys))
        gens.append(gen(n, n == len(shapes), held, coins=coins, sat=coins * 1000, k=k))
    chans = [facts(i, g, state) for i, (state, g) in enumerate(channels)]
    exposure = generation_exposure(gens, chans)
    findings = exposure_findings(exposure)
    known = {g.generation for g in gens}
    live = [c for c in chans if c.state in ("pending_open", "open") and c.close_generation in known]
    assert sum(e.channels for e in exposure) == len(live)
    for e in exposure:
        mine = {f.kind for f in findings if f.subject == f"generation {e.generation}"}
        holds = not e.current and (e.coins > 0 or e.channels > 0)
        assert bool(mine) == holds
        if holds and e.usable_keys < e.threshold:
            assert mine == {"unsignable"}
        elif holds:
            assert mine == {kind for kind, n in (("coins", e.coins), ("channels", e.channels)) if n}


def test_the_snapshot_carries_the_exposure_and_its_check() -> None:
    from l2custody.custody.report.snapshot import MultisigFacts, NodeFacts, ReportInputs

    node = NodeFacts("west", "lnd", (facts(1, 1), facts(2, 2)))
    inputs = ReportInputs("vault", "regtest", 1.0, 100, MultisigFacts(900_000, 0), (node,), generations=(GEN1, GEN2))
    snap = build_snapshot(inputs, ReportSettings())
    assert "generation-exposure" in CHECKS and snap.failed_checks()["generation-exposure"] == 2
    data = json.loads(json.dumps(snap.to_dict()))
    one, two = data["generations"]
    assert (one["generation"], one["current"], one["exposed"], one["channels"], one["coins"]) == (1, False, True, 1, 1)
    assert one["signers"] == ["alice", "bob"] and one["can_sign"] is True and one["usable_keys"] == 2
    assert one["keys"][2] == {
        "fingerprint": "cccccccc",
        "signer": "carol",
        "usable": False,
        "removed_in": 2,
        "removed_reason": "carol left",
    }
    assert one["nodes"] == {"west": {"channels": 1, "local_sat": 300_000}}
    assert (two["current"], two["balance_sat"], two["channels"]) == (True, 900_000, 1)
    assert data["channels"][0]["close_generation"] == 1
    assert ChannelFacts.from_row(snap.channels[0].to_row()) == snap.channels[0]


# --- a real wallet with two generations ----------------------------------------------------------
@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = init_regtest(tmp_path)
    create_wallet(path, software_signers(path, tmp_path, ("alice", "bob", "carol")))
    return path


def rotate(config: Path, *args: str) -> None:
    ok(config, "wallet", "rotate", "--add", fresh_account_key(), *args, "--yes")


def pay(chain: MemoryChain, script: bytes, value: int) -> None:
    from embit.script import Script
    from embit.transaction import Transaction, TransactionInput, TransactionOutput

    chain.add_block(
        [Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(script))])]
    )


def test_channels_and_the_report_know_which_generation_a_close_pays(config: Path) -> None:
    chain = MemoryChain()
    cfg = load_config(config)
    with Wallet.open(cfg, chain=chain) as gen1:
        old = [gen1.next_address(label=f"close {i}") for i in range(3)]  # three channels committed to generation 1
    rotate(config, "--remove", "carol", "--reason", "carol left")
    node = ScriptedNode("west")
    with Wallet.open(cfg, chain=chain) as wallet:
        new = wallet.next_address(label="close of a channel opened after the rotation")
        node.channels = [channel("west", i, close_address=a.address) for i, a in enumerate(old)]
        node.channels.append(channel("west", 9, close_address=new.address, local_balance_sat=111_000))
        pay(chain, gen1_script(wallet, old[0].index), 250_000)  # the first one closed: its coin is in generation 1
        node.channels = node.channels[1:]

        views = {v.channel_point: v.to_dict() for v in view_channels(wallet, node.channels)}
        assert views[outpoint(1)]["close_generation"] == 1 and views[outpoint(1)]["close_generation_current"] is False
        assert views[outpoint(9)]["close_generation"] == 2 and views[outpoint(9)]["close_generation_current"] is True

        snap = build_snapshot(read_inputs(wallet, [node], sync=True), ReportSettings())
    one, two = (g.to_dict() for g in snap.exposure)
    assert (one["channels"], one["channel_local_sat"], one["coins"], one["balance_sat"]) == (2, 800_000, 1, 250_000)
    assert (two["channels"], two["channel_local_sat"], two["coins"]) == (1, 111_000, 0)
    assert one["signers"] == ["alice", "bob"] and [k["usable"] for k in one["keys"]] == [True, True, False]
    assert {(f.check, f.kind) for f in snap.findings} >= {
        ("generation-exposure", "coins"),
        ("generation-exposure", "channels"),
    }


def gen1_script(wallet: Wallet, index: int) -> bytes:
    record = wallet.store.wallet(generation=1)
    return wallet.sibling(record).descriptor.derive(False, index).script_pubkey


def test_cli_report_shows_each_generation_and_its_exposure(config: Path) -> None:
    chain = MemoryChain()
    cfg = load_config(config)
    with Wallet.open(cfg, chain=chain) as gen1:
        address = gen1.next_address()
        script = gen1.descriptor.derive(False, address.index).script_pubkey
    human = run(config, "report", "--no-sync").stdout
    assert "Wallet generations" not in human  # one generation: nothing to show
    rotate(config, "--remove", "bob", "--remove", "carol", "--reason", "bob and carol lost their seeds")
    pay(chain, script, 250_000)
    with Wallet.open(cfg, chain=chain) as wallet:
        wallet.sync()

    out = run(config, "report", "--no-sync", json_out=True)
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    one, two = data["generations"]
    assert (one["coins"], one["balance_sat"], one["can_sign"], one["usable_keys"]) == (1, 250_000, False, 1)
    assert two["current"] and two["can_sign"]
    [critical] = [f for f in data["findings"] if f["check"] == "generation-exposure"]
    assert critical["kind"] == "unsignable" and "recovery path" in critical["message"]

    human = run(config, "report", "--no-sync").stdout
    assert "Wallet generations" in human and "CANNOT SIGN" in human and "current" in human
    assert "bob (removed: bob and carol lost their seeds)" in human
    assert "250,000 sat more in older generations" in human
    assert "FAIL  generation-exposure (1)" in human
