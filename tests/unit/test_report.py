"""The custody snapshot and its checks (custody/report/snapshot.py: pure over typed facts),
the facts read from a real wallet + store (observe.py), and the `report` CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from l2custody.backends.base import ChannelState, CloseType, OnchainBalance
from l2custody.chain.memory import MemoryChain
from l2custody.custody.report.observe import facts_of, read_inputs, read_node
from l2custody.custody.report.snapshot import (
    CHECKS,
    ChannelFacts,
    MultisigFacts,
    NodeFacts,
    ReportInputs,
    ReportSettings,
    SessionFacts,
    build_snapshot,
)
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import L2CUSTODY, run
from tests.support.custody import FOREIGN_ADDRESS
from tests.support.watch import ScriptedNode, channel, outpoint

PEER = "03" + "22" * 32
SETTINGS = ReportSettings(sweep_threshold_sat=100_000, sweep_keep_sat=50_000, deadline_warning_blocks=144)


def facts(n: int, state: str = "open", **kw) -> ChannelFacts:  # type: ignore[no-untyped-def]
    base = dict(
        local_balance_sat=300_000,
        close_address="bcrt1qours",
        close_committed=True if state == "open" else None,
        close_ours=True,
        funding="session",
        session_id="fs-1",
        initiator="local",
    )
    base.update(kw)
    return ChannelFacts("west", outpoint(n), state, PEER, 500_000, **base)  # type: ignore[arg-type]


def inputs(nodes: tuple[NodeFacts, ...], sessions: tuple[SessionFacts, ...] = (), **kw) -> ReportInputs:  # type: ignore[no-untyped-def]
    return ReportInputs(
        "treasury",
        "regtest",
        1_700_000_000.0,
        kw.pop("tip", 500),
        MultisigFacts(2_000_000, 10_000, 0, 500),
        nodes,
        sessions,
        **kw,
    )


def node(*channels: ChannelFacts, confirmed: int = 60_000, reserve: int = 10_000, **kw) -> NodeFacts:  # type: ignore[no-untyped-def]
    return NodeFacts("west", "lnd", channels, OnchainBalance(confirmed, 0, 0, 0), reserve, **kw)


def session(state: str = "secured", blocks_left: int = 500) -> SessionFacts:
    return SessionFacts("fs-1", state, "ab" * 32, 500_000, ("west",), (), 500 + blocks_left, blocks_left)


def test_balances_by_place_and_channels_by_state() -> None:
    n = node(
        facts(1),
        facts(2, local_balance_sat=100_000),
        facts(3, "pending_open", local_balance_sat=490_000),
        facts(
            4, "force_closing", limbo_sat=250_000, maturity_height=510, blocks_til_maturity=10, closing_txid="cd" * 32
        ),
        facts(5, "closing", limbo_sat=40_000),
        facts(6, "closed", local_balance_sat=0, close_type="remote_force"),
        confirmed=70_000,
        reserve=10_000,
    )
    snap = build_snapshot(inputs((n,), (session("broadcast", 1000),)), SETTINGS)
    assert snap.balances == {
        "multisig": 2_010_000,
        "channels_local": 400_000,
        "pending_open": 490_000,
        "limbo": 290_000,
        "hot_wallet": 70_000,
    }
    [report] = snap.nodes
    assert report.by_state["open"] == (2, 400_000) and report.by_state["closed"] == (1, 0)
    assert report.keep_sat == 50_000 and report.sweepable_sat == 20_000  # keep > reserve
    [pending] = report.pending_opens
    assert pending.session_id == "fs-1" and pending.blocks_left == 1000
    force = next(p for p in report.pending_closes if p.state == "force_closing")
    assert (force.limbo_sat, force.maturity_height, force.blocks_til_maturity) == (250_000, 510, 10)
    assert snap.ok and snap.failed_checks() == dict.fromkeys(CHECKS, 0)
    assert snap.channel_counts()[("west", "open")] == 2 and snap.channel_counts()[("west", "pending_open")] == 1
    json.dumps(snap.to_dict())  # JSON-ready


def test_close_address_and_funding_findings_say_what_to_do() -> None:
    n = node(
        facts(1, close_address=FOREIGN_ADDRESS, close_ours=False),
        facts(2, close_address=None, close_committed=False, close_ours=None),
        facts(3, funding="foreign", session_id=None),
        facts(4, funding="peer", session_id=None, initiator="remote"),  # the peer's money: not ours to check
        facts(5, "pending_open", close_address=None, close_committed=None, close_ours=None),  # not reported yet
        facts(6, "force_closing", close_address=FOREIGN_ADDRESS, close_ours=False),  # already going: no finding
    )
    snap = build_snapshot(inputs((n,)), SETTINGS)
    by = {(f.check, f.kind, f.subject): f for f in snap.findings}
    assert set(by) == {
        ("close-address", "foreign", outpoint(1)),
        ("close-address", "missing", outpoint(2)),
        ("funding-source", "foreign", outpoint(3)),
    }
    foreign = by[("close-address", "foreign", outpoint(1))]
    assert FOREIGN_ADDRESS in foreign.message and "--force" in foreign.message and foreign.node == "west"
    assert "no committed close address" in by[("close-address", "missing", outpoint(2))].message
    assert "l2custody channel open" in by[("funding-source", "foreign", outpoint(3))].message
    assert not snap.ok and snap.failed_checks()["close-address"] == 2
    assert foreign.key == f"close-address:foreign:west:{outpoint(1)}"


def test_hot_wallet_above_the_threshold_is_flagged() -> None:
    at = build_snapshot(inputs((node(confirmed=150_000),)), SETTINGS)
    assert at.ok  # 150,000 - 50,000 kept = 100,000: not above the threshold
    over = build_snapshot(inputs((node(confirmed=120_000, reserve=0),)), replace(SETTINGS, sweep_keep_sat=0))
    [f] = over.findings
    assert f.check == "hot-wallet" and "120,000 sat" in f.message and "l2custody sweep west" in f.message


def test_sessions_near_or_past_their_deadline_are_flagged() -> None:
    sessions = (
        session("secured", 200),
        replace(session("secured", 144), id="fs-2"),
        replace(session("secured", -3), id="fs-3"),
        replace(session("broadcast", 10), id="fs-4"),
    )
    snap = build_snapshot(inputs((), sessions), SETTINGS)
    by = {f.subject: f for f in snap.findings}
    assert set(by) == {"fs-2", "fs-3", "fs-4"}
    assert "144 blocks left" in by["fs-2"].message and "session abort fs-2" not in by["fs-2"].message
    assert by["fs-3"].kind == "passed" and "l2custody session abort fs-3" in by["fs-3"].message
    assert "session broadcast fs-4" in by["fs-4"].message


def test_unreachable_node_and_chain_fail_closed() -> None:
    dead = NodeFacts("east", "cln", error="cannot reach node 'east'")
    snap = build_snapshot(inputs((dead,), chain_error="connection refused"), SETTINGS)
    checks = {f.check: f for f in snap.findings}
    assert "cannot reach node 'east'" in checks["node-reachable"].message
    assert "l2custody node check east" in checks["node-reachable"].message
    assert (
        "connection refused" in checks["chain-reachable"].message
        and "as of block 500" in checks["chain-reachable"].message
    )
    assert not snap.nodes[0].reachable


def test_session_facts_count_to_the_broadcast_margin_then_to_the_peer_deadline() -> None:
    from l2custody.custody.funding.session import FundingSession, SessionState

    s = FundingSession("fs-9", SessionState.SECURED, start_height=100, legs=())
    assert SessionFacts.of(s, tip=200, margin=144).blocks_left == 100 + 2016 - 144 - 200
    sent = SessionFacts.of(s.with_state(SessionState.BROADCAST), tip=200, margin=144)
    assert sent.blocks_left == 100 + 2016 - 200 and sent.deadline_height == 2116


# --- facts read from a real wallet and store ---------------------------------------------
@pytest.fixture
def wallet(tmp_path: Path, make_memory_wallet: Callable[..., Wallet]):  # type: ignore[no-untyped-def]
    w = make_memory_wallet(tmp_path, MemoryChain())
    yield w
    w.close()


def test_channel_facts_join_the_store(wallet) -> None:  # type: ignore[no-untyped-def]
    ours = wallet.next_address().address
    infos = [
        channel("west", 1, close_address=ours),
        channel("west", 2, close_address=FOREIGN_ADDRESS),
        channel("west", 3),  # open, node says: no upfront address
        channel("west", 4, ChannelState.CLOSED, close_type=CloseType.COOPERATIVE),
        channel("west", 5, initiator="remote"),
    ]
    one, two, three, four, five = facts_of(wallet, infos)
    assert (one.close_ours, one.close_committed, one.funding) == (True, True, "foreign")
    assert (two.close_ours, two.close_address) == (False, FOREIGN_ADDRESS)
    assert (three.close_committed, three.close_ours) == (False, None)
    assert (four.close_committed, four.close_type) == (None, "cooperative")
    assert five.funding == "peer"
    assert ChannelFacts.from_row(one.to_row()) == one


def test_read_node_and_inputs(wallet) -> None:  # type: ignore[no-untyped-def]
    west = ScriptedNode("west", [channel("west", 1)])
    west.balance, west.reserve = OnchainBalance(80_000, 5_000, 0, 0), 10_000
    facts_ = read_node(wallet, west)
    assert facts_.error is None and facts_.reserve_sat == 10_000 and len(facts_.channels) == 1
    west.down = True
    down = read_node(wallet, west)
    assert down.channels == () and "connection refused" in (down.error or "")
    got = read_inputs(wallet, [west], sync=True)
    assert got.chain_error is None and got.tip_height == 0 and got.nodes[0].error


# --- the CLI --------------------------------------------------------------------------------
def _config(tmp_path: Path) -> Path:
    from l2custody.config import init_config
    from l2custody.wallet.service import Wallet
    from tests.support.wallet import WALLET

    config = init_config(
        tmp_path / "config.toml",
        "regtest",
        data_dir=tmp_path / "data",
        chain_url="http://127.0.0.1:9",
        chain_user="u",
        chain_password="p",
    )
    Wallet.import_(config, WALLET["descriptor"]).close()
    return tmp_path / "config.toml"


def test_cli_report_exits_1_when_a_check_fails_and_says_why(tmp_path: Path) -> None:
    config = _config(tmp_path)
    human = run(config, "report", "--no-sync")
    assert human.exit_code == 1, human.output
    assert "Custody checks:" in human.stdout and "FAIL  chain-reachable" in human.stdout
    assert "the chain source could not be read" in human.stdout
    out = run(config, "report", json_out=True)
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert data["ok"] is False and data["checks"]["chain-reachable"] == 1 and data["nodes"] == []
    bad = run(config, "report", "--node", "nowhere", json_out=True)
    assert bad.exit_code == 2 and json.loads(bad.stdout)["code"] == 53


def test_installed_command_runs_report(tmp_path: Path) -> None:
    import subprocess

    config = _config(tmp_path)
    done = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "--json", "report", "--no-sync"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["findings"][0]["check"] == "chain-reachable"
