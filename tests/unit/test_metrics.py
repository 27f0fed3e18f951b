"""Prometheus exposition (custody/watch/metrics.py): the page format, the loopback-only
listen address, and the real HTTP server."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

import pytest

from l2custody.backends.base import OnchainBalance
from l2custody.custody.report.snapshot import (
    ChannelFacts,
    MultisigFacts,
    NodeFacts,
    ReportInputs,
    ReportSettings,
    build_snapshot,
)
from l2custody.custody.watch.metrics import (
    CONTENT_TYPE,
    Metrics,
    MetricsServer,
    parse_listen,
    render,
)
from l2custody.errors import UsageError

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$')


def snapshot():  # type: ignore[no-untyped-def]
    ch = ChannelFacts(
        'we"st', "ab" * 32 + ":0", "open", "03" + "22" * 32, 500_000, 321_000, close_committed=False, funding="session"
    )
    node = NodeFacts('we"st', "lnd", (ch,), OnchainBalance(40_000, 2_000, 0, 0), 10_000)
    inputs = ReportInputs("treasury", "regtest", 1_700_000_000.5, 812, MultisigFacts(900_000, 0), (node,))
    return build_snapshot(inputs, ReportSettings())


def test_the_page_is_valid_exposition_text() -> None:
    page = render(
        snapshot(),
        last_events={'we"st': 1_700_000_000.25},
        undelivered_alerts=2,
        duration_seconds=0.012,
        session_states={"secured": 1},
    )
    lines = page.splitlines()
    assert page.endswith("\n")
    for line in lines:
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) l2custody_[a-z_]+ ", line), line
        else:
            assert SAMPLE.match(line), line
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    assert len(names) == len([x for x in lines if x.startswith("# TYPE")])  # each metric declared once
    assert 'l2custody_balance_sat{place="multisig"} 900000' in lines
    assert 'l2custody_balance_sat{place="channels_local"} 321000' in lines
    assert 'l2custody_balance_sat{place="hot_wallet"} 42000' in lines
    assert 'l2custody_node_balance_sat{node="we\\"st",place="channels_local"} 321000' in lines
    assert 'l2custody_channels{node="we\\"st",state="open"} 1' in lines
    assert 'l2custody_channels{node="we\\"st",state="closed"} 0' in lines
    assert "l2custody_custody_violations 1" in lines
    assert 'l2custody_custody_check_failures{check="close-address"} 1' in lines
    assert 'l2custody_node_last_event_timestamp_seconds{node="we\\"st"} 1700000000.25' in lines
    assert "l2custody_chain_tip_height 812" in lines and "l2custody_alerts_undelivered 2" in lines
    assert 'l2custody_funding_sessions{state="secured"} 1' in lines


@pytest.mark.parametrize("text", ["127.0.0.1:9739", "localhost:0", "[::1]:9739", "127.0.0.2:1"])
def test_loopback_addresses_are_accepted(text: str) -> None:
    host, port = parse_listen(text)
    assert host in ("127.0.0.1", "::1", "127.0.0.2") and 0 <= port <= 65535


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.0.0.0:9739", "loopback address only"),
        ("192.168.1.5:9739", "loopback address only"),
        ("example.com:80", "loopback address only"),
        ("9739", "expected HOST:PORT"),
        ("127.0.0.1:99999", "expected HOST:PORT"),
        ("127.0.0.1:", "expected HOST:PORT"),
    ],
)
def test_other_addresses_are_refused(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as err:
        parse_listen(text)
    assert "--metrics 127.0.0.1:9739" in err.value.message


def test_the_server_serves_the_current_page() -> None:
    metrics = Metrics()
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(server.url, timeout=10) as r:
            assert r.headers["Content-Type"] == CONTENT_TYPE and b"no watch round" in r.read()
        metrics.set_page("l2custody_chain_tip_height 5\n")
        with urllib.request.urlopen(server.url, timeout=10) as r:
            assert r.read() == b"l2custody_chain_tip_height 5\n"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url.replace("/metrics", "/other"), timeout=10)
        assert missing.value.code == 404
        with pytest.raises(UsageError, match="pick another port"):
            MetricsServer(metrics, "127.0.0.1", server.address[1])
    finally:
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=2).close()


def test_each_wallet_generation_has_its_exposure_gauges() -> None:
    from l2custody.wallet.generations import GenerationInfo, KeyInfo

    keys = (KeyInfo("aaaaaaaa", "alice"), KeyInfo("bbbbbbbb", "bob"), KeyInfo("cccccccc", "carol", 2, "carol left"))
    old_channel = ChannelFacts("west", "ab" * 32 + ":1", "open", "03" + "22" * 32, 500_000, 250_000, close_generation=1)
    node = NodeFacts("west", "lnd", (old_channel,), OnchainBalance(0, 0, 0, 0))
    generations = (
        GenerationInfo(1, 1, False, 2, keys, 120_000, 1, "id1"),
        GenerationInfo(2, 2, True, 2, keys[:2] + (KeyInfo("dddddddd", "dave"),), 900_000, 3, "id2"),
    )
    inputs = ReportInputs("vault", "regtest", 1.0, 812, MultisigFacts(900_000, 0), (node,), generations=generations)
    lines = render(build_snapshot(inputs, ReportSettings()), last_events={}).splitlines()
    old, new = 'generation="1",current="false"', 'generation="2",current="true"'
    assert f"l2custody_generation_channels{{{old}}} 1" in lines
    assert f"l2custody_generation_channels{{{new}}} 0" in lines
    assert f"l2custody_generation_channel_local_sat{{{old}}} 250000" in lines
    assert f"l2custody_generation_balance_sat{{{old}}} 120000" in lines
    assert f"l2custody_generation_balance_sat{{{new}}} 900000" in lines
    assert f"l2custody_generation_coins{{{new}}} 3" in lines
    assert f"l2custody_generation_usable_keys{{{old}}} 2" in lines
    assert f"l2custody_generation_usable_keys{{{new}}} 3" in lines
    assert f"l2custody_generation_threshold{{{old}}} 2" in lines
    assert 'l2custody_custody_check_failures{check="generation-exposure"} 2' in lines  # coins + channels
    assert all(SAMPLE.match(line) for line in lines if not line.startswith("#"))


def test_a_recovery_wallet_has_its_timelock_gauges_and_a_multisig_wallet_none() -> None:
    from l2custody.custody.report.timelocks import PathFacts, RecoveryFacts
    from l2custody.wallet.recovery_timing import lock_of

    # tip 1,000, heir after 144 blocks: opened (block 850), due in 43 and 93 blocks, later (133), unconfirmed
    coins = tuple(lock_of(f"{i:064x}:0", 1_000, h, 144, 1_000) for i, h in enumerate((850, 900, 950, 990, None)))
    facts = RecoveryFacts("vault", 1_000, 100, 2, ("alice", "bob", "carol"), (PathFacts(144, 1, ("heir",)),), coins)
    inputs = ReportInputs("vault", "regtest", 1.0, 1_000, MultisigFacts(5_000, 0), (), recovery=facts)
    lines = render(build_snapshot(inputs, ReportSettings()), last_events={}).splitlines()
    assert "l2custody_recovery_coins_due 2" in lines and "l2custody_recovery_coins_open 1" in lines
    assert "l2custody_recovery_next_open_blocks 43" in lines
    assert 'l2custody_custody_check_failures{check="recovery-timelock"} 2' in lines  # open + due
    assert all(SAMPLE.match(line) for line in lines if not line.startswith("#"))

    only_open = RecoveryFacts("vault", 1_000, 100, 2, ("a", "b", "c"), facts.paths, coins[:1])
    inputs = ReportInputs("vault", "regtest", 1.0, 1_000, MultisigFacts(1_000, 0), (), recovery=only_open)
    assert "l2custody_recovery_next_open_blocks -1" in render(build_snapshot(inputs, ReportSettings()), last_events={})
    assert "l2custody_recovery_" not in render(snapshot(), last_events={})
