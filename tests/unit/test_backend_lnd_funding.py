"""lnd backend pieces without a node: the funding output in a PSBT, PSBT v2 -> v0,
protobuf -> dataclass conversion (on real lndgrpc messages), the sweep size estimate."""

from __future__ import annotations

import os

import pytest
from embit import ec
from embit.psbt import PSBT
from embit.script import Script, p2wpkh
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from lndgrpc.compiled import lightning_pb2 as ln

from l2custody.backends.base import ChannelState, CloseType
from l2custody.backends.lnd import convert as conv
from l2custody.backends.lnd.funding import funding_outpoint, to_psbt_v0
from l2custody.backends.lnd.sweep import estimate_vsize
from l2custody.errors import PsbtError

FUNDING_SCRIPT = bytes.fromhex("0020" + "47" * 32)
PEER = "03" + "cd" * 32


def psbt_paying(outputs: list[tuple[bytes, int]]) -> PSBT:
    vin = [TransactionInput(os.urandom(32), 1)]
    vout = [TransactionOutput(value, Script(script)) for script, value in outputs]
    return PSBT(Transaction(version=2, vin=vin, vout=vout))


def change_script() -> bytes:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).data


def test_funding_outpoint_is_txid_and_index_of_the_channel_output() -> None:
    psbt = psbt_paying([(change_script(), 50_000), (FUNDING_SCRIPT, 1_000_000)])
    point = funding_outpoint(psbt.serialize(), FUNDING_SCRIPT, 1_000_000)
    assert point == f"{psbt.tx.txid().hex()}:1"


@pytest.mark.parametrize(
    "outputs, message",
    [
        ([(b"\x00\x14" + b"\x01" * 20, 1_000_000)], "does not pay the channel funding script"),
        ([(FUNDING_SCRIPT, 1_000_000), (FUNDING_SCRIPT, 1_000_000)], "pays more than once"),
        ([(FUNDING_SCRIPT, 999_999)], "pays 999999 sat to the channel output, the node negotiated 1000000"),
    ],
)
def test_funding_outpoint_refuses_wrong_psbts(outputs: list[tuple[bytes, int]], message: str) -> None:
    with pytest.raises(PsbtError, match=message):
        funding_outpoint(psbt_paying(outputs).serialize(), FUNDING_SCRIPT, 1_000_000)


def test_garbage_is_a_psbt_error() -> None:
    with pytest.raises(PsbtError, match="cannot parse the funding PSBT"):
        funding_outpoint(b"not a psbt", FUNDING_SCRIPT, 1)


def test_v0_passes_through_and_v2_becomes_v0_with_the_same_txid() -> None:
    psbt = psbt_paying([(FUNDING_SCRIPT, 1_000_000), (change_script(), 7_000)])
    raw_v0 = psbt.serialize()
    assert to_psbt_v0(raw_v0) == raw_v0
    psbt.version = 2
    raw_v2 = psbt.serialize()
    assert raw_v2 != raw_v0
    converted = to_psbt_v0(raw_v2)
    again = PSBT.parse(converted)
    assert again.version is None
    assert again.tx.txid() == psbt.tx.txid()


def test_open_channel_conversion() -> None:
    msg = ln.Channel(
        active=True,
        remote_pubkey=PEER,
        channel_point="aa" * 32 + ":0",
        chan_id=(457 << 40) | (1 << 16),
        capacity=1_000_000,
        local_balance=996_530,
        remote_balance=0,
        private=False,
        initiator=True,
        close_address="bcrt1qclose",
        commitment_type=ln.ANCHORS,
    )
    info = conv.from_channel("west", msg)
    assert info.state is ChannelState.OPEN and info.short_channel_id == "457x1x0"
    assert info.close_address == "bcrt1qclose" and info.close_address_known
    assert info.initiator == "local" and info.commitment_type == "anchors"
    no_upfront = conv.from_channel("west", ln.Channel(channel_point="bb" * 32 + ":1", commitment_type=5))
    assert no_upfront.close_address is None and no_upfront.close_address_known
    assert no_upfront.commitment_type == "simple_taproot"  # newer than the stubs: still named


def test_pending_conversion_covers_every_list() -> None:
    P = ln.PendingChannelsResponse
    base = dict(remote_node_pub=PEER, capacity=500_000, initiator=ln.INITIATOR_LOCAL, commitment_type=ln.ANCHORS)
    resp = P(
        pending_open_channels=[P.PendingOpenChannel(channel=P.PendingChannel(channel_point="01" * 32 + ":0", **base))],
        waiting_close_channels=[
            P.WaitingCloseChannel(
                channel=P.PendingChannel(channel_point="02" * 32 + ":0", **base),
                limbo_balance=9,
                closing_txid="cc" * 32,
            )
        ],
        pending_force_closing_channels=[
            P.ForceClosedChannel(
                channel=P.PendingChannel(channel_point="03" * 32 + ":0", **base),
                closing_txid="dd" * 32,
                limbo_balance=499_000,
                maturity_height=615,
                blocks_til_maturity=144,
                recovered_balance=3,
            )
        ],
    )
    states = {c.channel_point[:2]: c for c in conv.from_pending("west", resp)}
    assert states["01"].state is ChannelState.PENDING_OPEN and not states["01"].close_address_known
    assert states["02"].state is ChannelState.CLOSING and states["02"].closing_txid == "cc" * 32
    forced = states["03"]
    assert forced.state is ChannelState.FORCE_CLOSING
    assert (forced.limbo_sat, forced.maturity_height, forced.blocks_til_maturity, forced.recovered_sat) == (
        499_000,
        615,
        144,
        3,
    )
    assert forced.initiator == "local"


def test_closed_conversion_and_unknown_close_type() -> None:
    summary = ln.ChannelCloseSummary(
        channel_point="04" * 32 + ":1",
        remote_pubkey=PEER,
        capacity=600_000,
        closing_tx_hash="ee" * 32,
        close_height=470,
        settled_balance=599_799,
        close_type=ln.ChannelCloseSummary.ABANDONED,
        open_initiator=ln.INITIATOR_LOCAL,
    )
    info = conv.from_closed("west", summary)
    assert info.state is ChannelState.CLOSED and info.close_type is CloseType.ABANDONED
    assert (info.settled_sat, info.close_height, info.closing_txid) == (599_799, 470, "ee" * 32)
    summary.close_type = 42  # a close type newer than our stubs
    assert conv.from_closed("west", summary).close_type is CloseType.UNKNOWN


def test_channel_events() -> None:
    txid_le = bytes.fromhex("01" + "00" * 31)
    ev = ln.ChannelEventUpdate(pending_open_channel=ln.PendingUpdate(txid=txid_le, output_index=2))
    out = conv.from_event("west", ev)
    assert out.kind == "pending_open" and out.channel_point == "00" * 31 + "01:2"
    ev = ln.ChannelEventUpdate(active_channel=ln.ChannelPoint(funding_txid_bytes=txid_le, output_index=0))
    assert conv.from_event("west", ev).channel_point == "00" * 31 + "01:0"
    assert conv.from_event("west", ln.ChannelEventUpdate()) is None


def test_sweep_estimate_is_not_below_what_lnd_paid() -> None:
    # Recorded on lnd 0.20.1: FundPsbt at 2 sat/vB with 373 p2wkh inputs, one p2wkh
    # output and a change output paid 51,044 sat; with 23 inputs at 3 sat/vB, 4,929 sat.
    assert estimate_vsize([0] * 373, 22, with_change=True) * 2 >= 51_044
    assert estimate_vsize([0] * 23, 22, with_change=True) * 3 >= 4_929
    assert estimate_vsize([0] * 23, 22, with_change=True) * 3 < 4_929 * 1.02  # and not wildly above
    assert estimate_vsize([4], 34, with_change=False) < estimate_vsize([1], 34, with_change=False)
