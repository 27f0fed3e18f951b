"""Core Lightning output -> our dataclasses, on real lightningd v25.12.1 output.

The fixtures are ../shared/cln-fixtures (captured from real daemons on regtest;
its README says which call produced each file). The expectations come from
those files themselves (the close transaction's outputs, the block that
confirmed the funding), not from a hand-written model of CLN.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from l2custody.backends.base import ChannelState, CloseType
from l2custody.backends.cln.convert import (
    DEFAULT_EMERGENCY_SAT,
    channel_info,
    channel_state,
    closed_channel_info,
    complete_params,
    emergency_reserve_sat,
    has_anchor_channel,
    msat,
    node_info,
    onchain_balance,
    parse_version,
    supports_withhold,
)

FIXTURES = Path(__file__).parents[2].parent / "shared" / "cln-fixtures"
pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"the captured lightningd output is not here ({FIXTURES} is missing)"
)
L1_PEER = "02c221931a5713cb2d14f28921daf8a17b952665ddd55a8e7cffb43243f7ce4633"
EXTERNAL = "02d8688f0176024b88a7a4e0004506681da1acb2d0605e15092a16113f2d4cc4:1"  # the PSBT-funded channel
INBOUND = "0b20c167eebf8ef81c5ff301232e5f03f87661b4c6cc92801e7ab2efdd06bd69:0"  # l2 opened it to l1


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def channels(name: str) -> dict[str, Any]:
    infos = [channel_info("l1", e) for e in load(name)["channels"]]
    return {c.channel_point: c for c in infos if c is not None}


def test_getinfo_gives_identity_network_and_sync() -> None:
    info = node_info(load("getinfo.json"))
    assert info.pubkey.startswith("027210ac") and info.kind == "cln"
    assert info.version == "v25.12.1" and info.network == "regtest"
    assert info.synced_to_chain and info.block_height == 101 and info.block_hash == ""
    assert info.uris == (f"{info.pubkey}@127.0.0.1:29735",)
    behind = node_info({**load("getinfo.json"), "warning_bitcoind_sync": "Bitcoind is not up-to-date with network."})
    assert not behind.synced_to_chain
    mainnet = node_info({**load("getinfo.json"), "network": "bitcoin"})
    assert mainnet.network == "main"


def test_externally_funded_channel_is_open_with_our_close_address() -> None:
    ch = channels("listpeerchannels.normal.json")[EXTERNAL]
    request = load("fundchannel_start.request.json")
    assert ch.state is ChannelState.OPEN and ch.active and ch.private
    assert ch.close_address == request["close_to"] and ch.close_address_known
    assert ch.capacity_sat == request["amount"] == ch.local_balance_sat and ch.remote_balance_sat == 0
    assert ch.short_channel_id == "102x1x1" and ch.initiator == "local" and ch.peer_pubkey == L1_PEER
    assert ch.commitment_type == "anchors" and ch.closing_txid is None and ch.close_type is None


def test_inbound_channel_and_balances_after_a_payment() -> None:
    both = channels("listpeerchannels.two.json")
    inbound = both[INBOUND]
    assert inbound.initiator == "remote" and inbound.capacity_sat == 500_000
    assert inbound.close_address is not None and inbound.close_address.startswith("bcrt1p")
    # That close_to is l1's own wallet address (no plugin set one): lightningd's default destination,
    # which `close` may replace. Known as the node's own (listaddresses), it is no upfront address.
    entry = next(e for e in load("listpeerchannels.two.json")["channels"] if e["funding_txid"] == INBOUND[:64])
    own = channel_info("l1", entry, {entry["close_to_addr"]})
    assert own is not None and own.close_address is None and own.close_address_known
    assert both[EXTERNAL].state is ChannelState.OPEN


def test_mutual_close_seen_on_chain_is_closed_and_settles_what_the_close_tx_paid_us() -> None:
    ch = channels("listpeerchannels.after_mutual.json")[EXTERNAL]
    close = load("close.mutual.json")
    assert close["type"] == "mutual"
    assert ch.state is ChannelState.CLOSED and ch.close_type is CloseType.COOPERATIVE
    assert ch.closing_txid == close["txids"][-1]
    # The closing transaction itself is the oracle: its output to our close_to script.
    from embit.transaction import Transaction

    tx = Transaction.parse(bytes.fromhex(close["txs"][-1]))
    script = load("fundchannel_start.json")["close_to"]
    paid = [o.value for o in tx.vout if o.script_pubkey.data.hex() == script]
    assert paid == [ch.settled_sat]


def test_unilateral_close_waiting_for_the_chain_is_force_closing_with_our_commitment() -> None:
    ch = channels("listpeerchannels.onchain.json")[INBOUND]
    close = load("close.unilateral.json")
    assert ch.state is ChannelState.FORCE_CLOSING and ch.close_type is CloseType.LOCAL_FORCE
    assert ch.closing_txid == close["txids"][-1]
    assert ch.limbo_sat == ch.local_balance_sat == 0  # l1 had nothing on its side of l2's channel
    mutual = channels("listpeerchannels.onchain.json")[EXTERNAL]
    assert mutual.state is ChannelState.CLOSED and not mutual.active  # peer offline, still resolved


@pytest.mark.parametrize(
    "state, status, expected",
    [
        ("CHANNELD_AWAITING_LOCKIN", [], (ChannelState.PENDING_OPEN, None)),
        ("CHANNELD_SHUTTING_DOWN", [], (ChannelState.CLOSING, None)),
        ("CLOSINGD_COMPLETE", [], (ChannelState.CLOSING, CloseType.COOPERATIVE)),
        ("FUNDING_SPEND_SEEN", [], (ChannelState.FORCE_CLOSING, CloseType.UNKNOWN)),
        (
            "ONCHAIN",
            ["ONCHAIN:Tracking their unilateral close", "ONCHAIN:2 outputs unresolved: in 5 blocks will spend"],
            (ChannelState.FORCE_CLOSING, CloseType.REMOTE_FORCE),
        ),
        (
            "ONCHAIN",
            [
                "ONCHAIN:Tracking our own unilateral close",
                "ONCHAIN:All outputs resolved: waiting 90 more blocks before forgetting channel",
            ],
            (ChannelState.CLOSED, CloseType.LOCAL_FORCE),
        ),
        (
            "ONCHAIN",
            ["ONCHAIN:Tracking their illegal close: taking all funds"],
            (ChannelState.FORCE_CLOSING, CloseType.BREACH),
        ),
    ],
)
def test_state_mapping_from_the_onchain_billboard(state: str, status: list[str], expected: tuple[Any, Any]) -> None:
    # Start from a real entry and change only what differs between these states.
    entry = {
        **load("listpeerchannels.normal.json")["channels"][0],
        "state": state,
        "status": status,
        "state_changes": [],
    }
    assert channel_state(entry) == expected


def test_maturity_from_the_billboard() -> None:
    entry = {
        **load("listpeerchannels.normal.json")["channels"][0],
        "state": "ONCHAIN",
        "state_changes": [],
        "status": [
            "ONCHAIN:Tracking our own unilateral close",
            "ONCHAIN:1 outputs unresolved: in 5 blocks will spend DELAYED_OUTPUT_TO_US (x:1) using OUR_DELAYED_RETURN_TO_WALLET",
        ],
    }
    ch = channel_info("l1", entry)
    assert ch is not None and ch.state is ChannelState.FORCE_CLOSING and ch.blocks_til_maturity == 5
    assert ch.limbo_sat == 1_000_000 and ch.closing_txid == entry["scratch_txid"]


def test_a_negotiation_without_funding_output_is_not_a_channel() -> None:
    entry = {"peer_id": L1_PEER, "peer_connected": True, "state": "OPENINGD", "opener": "local", "features": []}
    assert channel_info("l1", entry) is None


def test_close_to_without_an_address_form_is_not_reported_as_none() -> None:
    entry = dict(load("listpeerchannels.normal.json")["channels"][0])
    entry.pop("close_to_addr")
    ch = channel_info("l1", entry)
    assert ch is not None and ch.close_address is None and not ch.close_address_known
    entry.pop("close_to")
    ch = channel_info("l1", entry)
    assert ch is not None and ch.close_address is None and ch.close_address_known


def test_closed_channels_from_listclosedchannels() -> None:
    assert load("listclosedchannels.json") == {"closedchannels": []}  # nothing forgotten yet in the capture
    # A forgotten channel carries the schema's required fields; built from the live entry of the same channel.
    live = load("listpeerchannels.after_mutual.json")["channels"][0]
    entry = {
        "peer_id": live["peer_id"],
        "channel_id": live["channel_id"],
        "opener": "local",
        "private": True,
        "total_msat": live["total_msat"],
        "funding_txid": live["funding_txid"],
        "funding_outnum": live["funding_outnum"],
        "funding_withheld": False,
        "leased": False,
        "final_to_us_msat": live["to_us_msat"],
        "min_to_us_msat": live["min_to_us_msat"],
        "max_to_us_msat": live["max_to_us_msat"],
        "last_commitment_txid": live["scratch_txid"],
        "close_cause": "user",
        "channel_type": live["channel_type"],
        "short_channel_id": "102x1x1",
        "total_local_commitments": 3,
        "total_remote_commitments": 3,
        "total_htlcs_sent": 1,
    }
    ch = closed_channel_info("l1", entry)
    assert ch.channel_point == EXTERNAL and ch.state is ChannelState.CLOSED
    assert ch.closing_txid == live["scratch_txid"] and ch.close_type is CloseType.UNKNOWN
    assert ch.settled_sat == 900_000 and not ch.close_address_known
    # Funded but still marked withheld when it closed: lightningd v25.12.1 sent no closing transaction.
    withheld = closed_channel_info("l1", {**entry, "funding_withheld": True})
    assert withheld.close_type is CloseType.UNKNOWN and withheld.closing_txid is None
    refused = {k: v for k, v in entry.items() if k != "short_channel_id"}
    assert closed_channel_info("l1", {**refused, "close_cause": "remote"}).close_type is CloseType.FUNDING_CANCELED
    # As lightningd v25.12.1 listed a channel cancelled (fundchannel_cancel) after fundchannel_complete
    # without withhold: no short_channel_id, a "last commitment" that never existed on chain.
    cancelled = {k: v for k, v in entry.items() if k != "short_channel_id"}
    cancelled.update(
        total_local_commitments=0,
        total_remote_commitments=0,
        close_cause="user",
        last_commitment_txid="eda70b3a4e3144e9b054163c05067280404e6a954f328975044704fde39e75b1",
    )
    ch = closed_channel_info("l1", cancelled)
    assert ch.close_type is CloseType.ABANDONED and ch.closing_txid is None and ch.settled_sat == 0


def test_wallet_balance_and_the_emergency_reserve() -> None:
    assert onchain_balance(load("listfunds.after_force.json"), 0).total_sat == 0
    withdraw = load("withdraw.l2.json")  # l2's wallet after the withdraw: its change output
    from embit.transaction import Transaction

    tx = Transaction.parse(bytes.fromhex(withdraw["tx"]))
    change = tx.vout[1]
    funds = {
        "outputs": [
            {
                "txid": withdraw["txid"],
                "output": 1,
                "amount_msat": change.value * 1000,
                "status": "unconfirmed",
                "reserved": False,
            },
            {"txid": withdraw["txid"], "output": 0, "amount_msat": 1000, "status": "spent", "reserved": False},
            {"txid": "aa" * 32, "output": 0, "amount_msat": 30_000_000, "status": "confirmed", "reserved": True},
        ]
    }
    balance = onchain_balance(funds, DEFAULT_EMERGENCY_SAT)
    assert balance.confirmed_sat == 30_000 and balance.unconfirmed_sat == change.value
    assert balance.locked_sat == 30_000 and balance.reserved_anchor_sat == 25_000
    assert (
        emergency_reserve_sat({"configs": {"min-emergency-msat": {"value_msat": 30_000_000, "source": "cmdline"}}})
        == 30_000
    )
    assert emergency_reserve_sat({"configs": {}}) == DEFAULT_EMERGENCY_SAT
    assert has_anchor_channel(load("listpeerchannels.normal.json")["channels"])
    assert not has_anchor_channel(
        [{"channel_type": {"bits": [12], "names": ["static_remotekey/even"]}, "features": []}]
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("v25.12.1", (25, 12, 1)),
        ("v25.12", (25, 12, 0)),
        ("v25.12rc2", (25, 12, 0)),
        ("v24.11.1-modded", (24, 11, 1)),
        ("25.09.3", (25, 9, 3)),
        ("garbage", (0, 0, 0)),
    ],
)
def test_versions(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    "version, withhold",
    [
        ("v25.12.1", True),
        ("v25.12", True),
        ("v26.06", True),
        ("v25.09.3", False),
        ("v24.11.1", False),
        ("v25.12rc1", True),
    ],
)
def test_withhold_is_passed_explicitly_from_v25_12_and_left_out_before(version: str, withhold: bool) -> None:
    psbt = base64.b64encode(b"psbt").decode()
    params = complete_params(L1_PEER, psbt, version)
    assert supports_withhold(version) is withhold
    assert params["id"] == L1_PEER and params["psbt"] == psbt
    if withhold:
        assert params["withhold"] is True
    else:
        assert "withhold" not in params  # an unknown parameter before v25.12: lightningd would refuse it


def test_the_psbt_given_to_fundchannel_complete_funds_the_channel_lightningd_lists() -> None:
    from l2custody.backends.lnd.funding import funding_outpoint

    recorded = load("hook-rpc_command-fundchannel_complete-003.json")["rpc_command"]["params"]
    start = load("fundchannel_start.json")
    point = funding_outpoint(
        base64.b64decode(recorded["psbt"]),
        bytes.fromhex(start["scriptpubkey"]),
        load("fundchannel_start.request.json")["amount"],
    )
    assert point == EXTERNAL
    assert recorded["withhold"] is False  # how the capture ran; we pass true from v25.12 (see cln/convert)


def test_a_withheld_funding_psbt_is_finalized_from_the_block_that_confirmed_it() -> None:
    from embit.psbt import PSBT

    from l2custody.backends.cln.funding import finalized_from_block, scid_position
    from l2custody.errors import NodeError

    entry = load("listpeerchannels.normal.json")["channels"][0]
    block = load("getrawblockbyheight.json")["block"]
    height, index = scid_position(entry["short_channel_id"])
    assert (height, index) == (102, 1)
    final = PSBT.from_base64(finalized_from_block(entry["funding"]["psbt"], block, index, entry["funding_txid"]))
    assert all(inp.final_scriptwitness is not None for inp in final.inputs)
    from l2custody.wallet.psbt import extract

    raw = extract(final).hex()
    assert raw in block  # exactly the transaction the block holds, signatures included
    with pytest.raises(NodeError, match="not the funding"):
        finalized_from_block(entry["funding"]["psbt"], block, 0, entry["funding_txid"])


def test_msat_in_every_shape_cln_sends() -> None:
    from pyln.client import Millisatoshi

    assert msat(1000) == msat("1000msat") == msat(Millisatoshi(1000)) == 1000 and msat(None) == 0
