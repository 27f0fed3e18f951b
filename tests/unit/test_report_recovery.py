"""`report` on a recovery wallet (issue 13): each coin with the block at which its first
recovery path opens, and the `recovery-timelock` check.

The findings are pure (custody/report/timelocks.py over made-up facts), checked by example
and by a derandomized property over random coin heights, tips, delays and margins; then
the same through a real recovery wallet (SQLite store, software signers made through the
CLI) on a MemoryChain, and `l2custody report` as an operator runs it (no chain needed: the
report reads the scanned tip). What `watch` does with it: tests/unit/test_watch_refresh.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.custody.report.observe import read_inputs
from l2custody.custody.report.snapshot import CHECKS, MultisigFacts, ReportInputs, ReportSettings, build_snapshot
from l2custody.custody.report.timelocks import (
    MAX_NAMED,
    PathFacts,
    RecoveryFacts,
    RefreshFacts,
    timelock_findings,
)
from l2custody.wallet import recovery
from l2custody.wallet.recovery_timing import CoinLock, lock_of
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, init_regtest, run, software_signers
from tests.support.recovery import mine_to, receive, recovery_config

TIP, DELAY = 1_000, 144


def op(n: int) -> str:
    """Outpoints of one length: none is a substring of another, so "named in the message" is exact."""
    return f"{n:064x}:0"


def coin(n: int, height: int | None, *, value: int = 100_000, tip: int = TIP, delay: int = DELAY) -> CoinLock:
    return lock_of(op(n), value, height, delay, tip)


def facts(
    coins: Sequence[CoinLock],
    *,
    tip: int = TIP,
    margin: int = 100,
    refreshes: Sequence[RefreshFacts] = (),
    reserved: dict[str, str] | None = None,
    delay: int = DELAY,
) -> RecoveryFacts:
    return RecoveryFacts(
        "vault",
        tip,
        margin,
        2,
        ("alice", "bob", "carol"),
        (PathFacts(delay, 1, ("heir",)),),
        tuple(coins),
        reserved or {},
        tuple(refreshes),
    )


# --- the check, pure -------------------------------------------------------------------------------
def test_coins_whose_path_opens_within_the_margin_are_a_warning_naming_the_coins_and_heights() -> None:
    # tip 1,000, heir after 144 blocks: a coin of block 900 opens at 1,044 (43 blocks), of 950 at 1,094 (93)
    coins = [coin(1, 900, value=300_000), coin(2, 950), coin(3, 990), coin(4, None)]
    [due] = timelock_findings(facts(coins))
    assert (due.check, due.kind, due.subject, due.key) == (
        "recovery-timelock",
        "due",
        "vault",
        "recovery-timelock:due:vault",
    )
    text = due.message
    assert "2 coin(s) of the wallet vault, 400,000 sat" in text and "refresh margin of 100 blocks" in text
    assert f"{op(1)} (300,000 sat) at block 1,044, in 43 blocks; {op(2)} (100,000 sat) at block 1,094, in 93" in text
    assert "heir alone after 144 blocks" in text and "the tip is 1,000" in text
    assert "`l2custody wallet refresh`" in text and "signed by 2 of alice, bob, carol" in text
    assert "`l2custody psbt broadcast FILE`" in text
    assert op(3) not in text and op(4) not in text  # 133 blocks left: later; unconfirmed: no clock yet


def test_a_coin_whose_path_is_open_is_critical_the_recovery_keys_can_spend_it_now() -> None:
    opened, due = coin(1, 857), coin(2, 900)  # 857 + 144 = 1,001: the next block may hold a recovery spend
    by = {f.kind: f for f in timelock_findings(facts([opened, due]))}
    assert set(by) == {"open", "due"}
    text = by["open"].message
    assert f"{op(1)} (100,000 sat) opened at block 1,001" in text and "can spend them NOW" in text
    assert "`l2custody wallet refresh`" in text and op(2) not in text
    assert op(1) not in by["due"].message


def test_coins_a_refresh_session_already_re_spends_are_to_be_signed_not_refreshed_again() -> None:
    coins = [coin(1, 900), coin(2, 950)]
    moving = RefreshFacts("9f8e7d6c5b4a3921", "partially-signed", (op(1), op(2)))
    [due] = timelock_findings(facts(coins, refreshes=[moving]))
    text = due.message
    assert "Refresh session(s) 9f8e7d6c5b4a3921 (partially-signed, 2 of these coins) already re-spend them" in text
    assert "signed by 2 of alice, bob, carol and broadcast" in text and "psbt sign FILE --signer NAME" in text
    assert "wallet refresh`" not in text  # nothing left for it to pick

    some = RefreshFacts("9f8e7d6c5b4a3921", "verified", (op(1),))
    [due] = timelock_findings(facts([*coins, coin(3, 940)], refreshes=[some]))
    assert "(verified, 1 of these coins)" in due.message
    assert "Refresh the other 2 with `l2custody wallet refresh`" in due.message


def test_a_coin_reserved_by_another_session_must_be_freed_first() -> None:
    [due] = timelock_findings(facts([coin(1, 900)], reserved={op(1): "fund0001"}))
    assert "1 of them are reserved by session(s) fund0001: finish or abort those" in due.message
    assert "wallet refresh`" not in due.message


def test_a_long_list_names_the_first_coins_and_counts_the_rest() -> None:
    coins = [coin(i, 900 + i) for i in range(MAX_NAMED + 2)]
    [due] = timelock_findings(facts(coins))
    assert op(MAX_NAMED - 1) in due.message and op(MAX_NAMED) not in due.message
    assert "and 2 more (`l2custody report --json` lists them)" in due.message


def test_nothing_near_and_a_wallet_without_recovery_paths_raise_nothing() -> None:
    assert timelock_findings(facts([coin(1, 990), coin(2, None)])) == []
    assert timelock_findings(facts([])) == []
    assert timelock_findings(None) == []


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    heights=st.lists(st.none() | st.integers(0, 3_000), max_size=MAX_NAMED),
    tip=st.integers(0, 3_000),
    delay=st.integers(1, 2_000),
    margin=st.integers(0, 1_000),
)
def test_a_coin_is_flagged_exactly_when_its_path_is_open_or_opens_within_the_margin(
    heights: list[int | None], tip: int, delay: int, margin: int
) -> None:
    """A guard: every coin the recovery keys can spend by the next block is named critical,
    every coin within the margin of that is named a warning, and no other coin is named."""
    coins = [coin(i, None if h is None else min(h, tip), tip=tip, delay=delay) for i, h in enumerate(heights)]
    findings = {f.kind: f for f in timelock_findings(facts(coins, tip=tip, margin=margin, delay=delay))}
    expected_kinds = set()
    for c in coins:
        if c.height is None:
            expected = None
        elif tip + 1 >= c.height + delay:  # BIP-68: a block at height + delay may hold the spend
            expected = "open"
        elif c.height + delay - (tip + 1) <= margin:
            expected = "due"
        else:
            expected = None
        named = {kind for kind, f in findings.items() if c.outpoint in f.message}
        assert named == ({expected} if expected else set()), (c, margin)
        if expected:
            expected_kinds.add(expected)
    assert set(findings) == expected_kinds


def test_the_snapshot_carries_every_coin_and_its_check() -> None:
    recovery_facts = facts(
        [coin(1, 857), coin(2, 900), coin(3, 990), coin(4, None)],
        refreshes=[RefreshFacts("abcd", "verified", (op(2),))],
        reserved={op(2): "abcd"},
    )
    inputs = ReportInputs("vault", "regtest", 1.0, TIP, MultisigFacts(400_000, 0), (), recovery=recovery_facts)
    snap = build_snapshot(inputs, ReportSettings())
    assert "recovery-timelock" in CHECKS and snap.failed_checks()["recovery-timelock"] == 2
    data = json.loads(json.dumps(snap.to_dict()))["recovery"]
    assert (data["wallet"], data["tip_height"], data["margin_blocks"]) == ("vault", TIP, 100)
    assert data["primary"] == {"threshold": 2, "signers": ["alice", "bob", "carol"]}
    assert data["paths"] == [{"delay": DELAY, "threshold": 1, "keys": ["heir"]}]
    assert (data["due"], data["open"], data["next_open_blocks"]) == (1, 1, 43)
    assert data["refresh_sessions"] == [{"session": "abcd", "state": "verified", "coins": [op(2)]}]
    one, two, three, four = data["coins"]
    assert one == {
        "outpoint": op(1),
        "value": 100_000,
        "height": 857,
        "delay": DELAY,
        "opens_at": 1_001,
        "blocks_left": 0,
        "open": True,
        "status": "open",
        "reserved_by": None,
        "refresh_session": None,
    }
    assert (two["status"], two["refresh_session"], two["reserved_by"]) == ("due", "abcd", "abcd")
    assert (three["status"], three["blocks_left"]) == ("later", 133)
    assert (four["status"], four["opens_at"], four["blocks_left"]) == ("unconfirmed", None, None)
    plain = build_snapshot(ReportInputs("vault", "regtest", 1.0, TIP, MultisigFacts(0, 0), ()), ReportSettings())
    assert plain.to_dict()["recovery"] is None and plain.failed_checks()["recovery-timelock"] == 0


# --- a real recovery wallet --------------------------------------------------------------------------
@pytest.fixture
def config(tmp_path: Path) -> Path:
    return recovery_config(tmp_path, delay=10, margin=4)


def test_the_report_reads_each_coins_opening_from_the_wallet(config: Path) -> None:
    chain = MemoryChain()
    mine_to(chain, 5)
    with Wallet.open(load_config(config), chain=chain) as wallet:
        old = receive(wallet, chain, 300_000)  # block 6: the heir may spend it in block 16
        mine_to(chain, 8)
        young = receive(wallet, chain, 100_000)  # block 9: opens at 19
        mine_to(chain, 12)
        snap = build_snapshot(read_inputs(wallet, [], sync=True), ReportSettings.from_config(wallet.config))
        assert snap.recovery is not None
        status = {c.outpoint: snap.recovery.status(c) for c in snap.recovery.coins}
        assert status == {old: "due", young: "later"}  # tip 12: 3 blocks left, then 6 (margin 4)
        [due] = [f for f in snap.findings if f.check == "recovery-timelock"]
        assert f"{old} (300,000 sat) at block 16, in 3 blocks" in due.message and young not in due.message

        plan = recovery.refresh(wallet, fee_rate=2)  # a refresh in flight: the report says to sign it
        snap = build_snapshot(read_inputs(wallet, [], sync=False), ReportSettings.from_config(wallet.config))
        [due] = [f for f in snap.findings if f.check == "recovery-timelock"]
        assert f"Refresh session(s) {plan.session.id}" in due.message and "wallet refresh`" not in due.message


def test_cli_report_shows_each_coins_recovery_path_and_the_check(config: Path) -> None:
    chain = MemoryChain()
    mine_to(chain, 5)
    with Wallet.open(load_config(config), chain=chain) as wallet:
        old = receive(wallet, chain, 300_000)  # block 6: opens at 16
        young = receive(wallet, chain, 100_000)  # block 7: opens at 17
        mine_to(chain, 15)
        wallet.sync()  # the scanned tip is 15: old is open, young 1 block away

    out = run(config, "report", "--no-sync", json_out=True)  # the configured chain is never reached
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    coins = {c["outpoint"]: c for c in data["recovery"]["coins"]}
    assert (coins[old]["status"], coins[old]["opens_at"], coins[old]["blocks_left"]) == ("open", 16, 0)
    assert (coins[young]["status"], coins[young]["opens_at"], coins[young]["blocks_left"]) == ("due", 17, 1)
    by = {f["kind"]: f for f in data["findings"] if f["check"] == "recovery-timelock"}
    assert set(by) == {"open", "due"} and old in by["open"]["message"] and young in by["due"]["message"]
    assert data["checks"]["recovery-timelock"] == 2

    human = run(config, "report", "--no-sync").stdout
    assert "Recovery paths of" in human and "heir alone after 10 blocks" in human
    assert "signed by 2 of alice, bob, carol" in human
    assert "OPEN NOW" in human and "DUE A REFRESH" in human
    assert "FAIL  recovery-timelock (2)" in human


def test_a_multisig_wallet_has_no_recovery_section(tmp_path: Path) -> None:
    path = init_regtest(tmp_path)
    create_wallet(path, software_signers(path, tmp_path))
    data = json.loads(run(path, "report", "--no-sync", json_out=True).stdout)
    assert data["recovery"] is None and data["checks"]["recovery-timelock"] == 0
    assert "Recovery paths" not in run(path, "report", "--no-sync").stdout
