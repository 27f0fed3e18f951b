"""What the operator asks for: peers, batch files, and the checks made before any node is asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2custody.custody.funding.negotiate import (
    MIN_CHANNEL_SAT,
    check_requests,
    expected_point,
    outcome_text,
)
from l2custody.custody.funding.requests import channel_request, parse_peer, read_batch
from l2custody.custody.funding.session import (
    ChannelRequest,
    FundingLeg,
    FundingSession,
    LegState,
    SessionState,
)
from l2custody.errors import AmountError, UsageError

PEER = "02" + "ab" * 32
OTHER = "03" + "cd" * 32


def test_a_peer_may_carry_its_address() -> None:
    assert parse_peer(PEER) == (PEER, None)
    assert parse_peer(f"{PEER.upper()}@203.0.113.5:9735") == (PEER, "203.0.113.5:9735")
    assert parse_peer(f"{PEER}@[::1]:9735") == (PEER, "[::1]:9735")


@pytest.mark.parametrize("bad", ["", "02abc", "04" + "ab" * 32, "02" + "zz" * 32, "xyz@host:1"])
def test_what_is_not_a_node_key_is_refused_with_an_example(bad: str) -> None:
    with pytest.raises(UsageError, match="66 hex characters starting with 02 or 03"):
        parse_peer(bad)


@pytest.mark.parametrize("host", ["host", "host:", "host:port"])
def test_a_peer_address_needs_a_port(host: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_peer(f"{PEER}@{host}")


def test_amounts_are_read_like_everywhere_else() -> None:
    r = channel_request("west", PEER, "0.005btc", private=True, push="1000sat")
    assert (r.amount_sat, r.push_sat, r.private, r.peer_host) == (500_000, 1_000, True, None)
    with pytest.raises(AmountError, match="cannot read amount"):
        channel_request("west", PEER, "lots")
    with pytest.raises(UsageError, match="node name"):
        channel_request("", PEER, "500000")


def test_a_csv_batch_names_node_peer_amount_and_optionally_private(tmp_path: Path) -> None:
    f = tmp_path / "b.csv"
    f.write_text(
        "# channels for the west node\n"
        "node, peer, amount, private\n"
        f"west, {PEER}@127.0.0.1:9735, 2000000, false\n"
        f"west, {OTHER}, 0.01btc, yes\n"
        f"east, {PEER}, 300000,\n"
    )
    rows = read_batch(f)
    assert [(r.node, r.peer_pubkey, r.amount_sat, r.private, r.peer_host) for r in rows] == [
        ("west", PEER, 2_000_000, False, "127.0.0.1:9735"),
        ("west", OTHER, 1_000_000, True, None),
        ("east", PEER, 300_000, False, None),
    ]


def test_a_json_batch_is_a_list_or_a_channels_object(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    rows = [{"node": "west", "peer": PEER, "amount": 250000, "private": True, "push": 1000}]
    f.write_text(json.dumps(rows))
    [r] = read_batch(f)
    assert (r.amount_sat, r.private, r.push_sat) == (250_000, True, 1_000)
    f.write_text(json.dumps({"channels": rows}))
    assert read_batch(f) == [r]


def test_batch_errors_name_the_file_and_the_row(tmp_path: Path) -> None:
    f = tmp_path / "b.csv"
    f.write_text(f"node,peer,amount\nwest,{PEER},500000\nwest,{PEER[:-2]},500000\n")
    with pytest.raises(UsageError, match=r"b.csv row 2: peer"):
        read_batch(f)
    f.write_text(f"node,peer,amount,private\nwest,{PEER},500000,maybe\n")
    with pytest.raises(UsageError, match="row 1: private must be true/false"):
        read_batch(f)
    f.write_text("node,amount\nwest,1\n")
    with pytest.raises(UsageError, match="missing: peer"):
        read_batch(f)
    f.write_text("[{oops")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_batch(f)
    f.write_text("node,peer,amount\n")
    with pytest.raises(UsageError, match="no channels listed"):
        read_batch(f)
    with pytest.raises(UsageError, match="cannot read the batch file"):
        read_batch(tmp_path / "missing.csv")


def test_requests_are_checked_before_any_node_is_asked() -> None:
    good = ChannelRequest("west", PEER, 300_000)
    check_requests([good, ChannelRequest("west", PEER, 300_001)])
    with pytest.raises(UsageError, match="no channels"):
        check_requests([])
    with pytest.raises(UsageError, match="below the smallest channel"):
        check_requests([ChannelRequest("west", PEER, MIN_CHANNEL_SAT - 1)])
    with pytest.raises(UsageError, match="push"):
        check_requests([ChannelRequest("west", PEER, 300_000, push_sat=300_000)])
    with pytest.raises(UsageError, match="listed twice"):
        check_requests([good, good])


def _session(*states: LegState, txid: str = "") -> FundingSession:
    legs = tuple(
        FundingLeg(
            ChannelRequest("west", PEER, 300_000 + i),
            close_address=f"bcrt1qclose{i}",
            state=s,
            output_index=i if txid else None,
        )
        for i, s in enumerate(states)
    )
    return FundingSession("fs-1", SessionState.FAILED, 100, legs, txid=txid)


def test_a_legs_channel_point_is_known_once_the_psbt_is() -> None:
    s = _session(LegState.REQUESTED, LegState.SECURED, txid="aa" * 32)
    assert expected_point(s, s.legs[0]) == "aa" * 32 + ":0"
    assert expected_point(_session(LegState.PLANNED), _session(LegState.PLANNED).legs[0]) == ""


def test_the_outcome_of_an_undone_session_says_nothing_was_lost() -> None:
    s = _session(LegState.CANCELLED, LegState.ABANDONED, LegState.ABANDONED)
    text = outcome_text(s)
    assert "nothing was broadcast" in text and "1 cancelled" in text and "2 abandoned" in text
    assert "Nothing was lost" in text
    left = s.with_state(SessionState.FAILED, error="x; left to clean up (run ...): west: unreachable")
    assert "left to clean up" in outcome_text(left)
