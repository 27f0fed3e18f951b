"""Closing flow rules on a real wallet + store + MemoryChain (no node).

The node's reports come from StandInBackend (see custody_support); how real
lnd closes is covered by tests/integration/test_close_lnd.py. Here: where a
close pays, what is recorded before the node is asked, how node failures are
recorded, and the verification paths the harness cannot produce (a chain
source without txindex, a publish that timed out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from l2custody.backends.base import ChannelInfo, ChannelState, CloseType, scid_to_str
from l2custody.chain.memory import MemoryChain
from l2custody.custody.channels import find_view, view_channels
from l2custody.custody.closing.close import close_channel, close_status, plan_close
from l2custody.custody.closing.records import close_record, close_records
from l2custody.errors import (
    ChannelNotFound,
    CustodyViolation,
    NodeError,
    NodeUnreachable,
    UsageError,
)
from l2custody.wallet.service import Wallet
from tests.support.custody import (
    FOREIGN_ADDRESS,
    StandInBackend,
    closing_tx,
    random_outpoint,
    script_of,
)

PEER = "03" + "22" * 32


def channel(cp: str | None = None, **changes) -> ChannelInfo:  # type: ignore[no-untyped-def]
    base = ChannelInfo(
        node="west",
        channel_point=cp or random_outpoint(),
        peer_pubkey=PEER,
        state=ChannelState.OPEN,
        capacity_sat=500_000,
        local_balance_sat=300_000,
        remote_balance_sat=196_000,
        short_channel_id="120x1x0",
        active=True,
        close_address=None,
        close_address_known=True,
    )
    return replace(base, **changes)


@pytest.fixture
def chain() -> MemoryChain:
    return MemoryChain()


@pytest.fixture
def wallet(tmp_path: Path, chain: MemoryChain, make_memory_wallet: Callable[..., Wallet]):  # type: ignore[no-untyped-def]
    w = make_memory_wallet(tmp_path, chain)
    yield w
    w.close()


# --- where a close pays ----------------------------------------------------------------
def test_plan_follows_the_committed_address(wallet) -> None:  # type: ignore[no-untyped-def]
    ours = wallet.next_address().address
    [up, none, foreign, closing] = view_channels(
        wallet,
        [
            channel(close_address=ours),
            channel(),
            channel(close_address=FOREIGN_ADDRESS),
            channel(state=ChannelState.CLOSING, close_address_known=False),
        ],
    )
    assert (up.close_ours, none.close_ours, foreign.close_ours, closing.close_ours) == (True, None, False, None)
    assert plan_close(up).address_source == "upfront" and plan_close(up).destination == ours
    assert plan_close(none).address_source == "delivery" and plan_close(none).destination is None
    with pytest.raises(CustodyViolation, match="not an address of the multisig") as refused:
        plan_close(foreign)
    assert FOREIGN_ADDRESS in refused.value.message and "--force" in refused.value.message
    assert plan_close(foreign, allow_foreign=True).address_source == "foreign-upfront"
    forced = plan_close(foreign, force=True)
    assert forced.address_source == "node-wallet" and "l2custody sweep west" in " ".join(forced.explanation)
    with pytest.raises(UsageError, match="closing, not open"):
        plan_close(closing)
    unknown = view_channels(wallet, [channel(close_address_known=False)])[0]
    with pytest.raises(UsageError, match="does not report the upfront shutdown address"):
        plan_close(unknown)


def test_channels_are_found_by_point_short_id_or_lnd_number(wallet) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    views = view_channels(wallet, [ch])
    scid = (120 << 40) | (1 << 16)
    assert scid_to_str(scid) == "120x1x0"
    for ref in (ch.channel_point, ch.channel_point.upper(), " 120x1x0 ", "120X001x0", str(scid)):
        assert find_view(views, ref).channel_point == ch.channel_point
    with pytest.raises(ChannelNotFound, match="channel list"):
        find_view(views, "121x1x0")
    with pytest.raises(UsageError, match="not a channel reference"):
        find_view(views, "chan-1")
    twice = view_channels(wallet, [ch, replace(ch, node="east")])
    with pytest.raises(UsageError, match="--node"):
        find_view(twice, "120x1x0")


# --- closing: recorded before the node is asked --------------------------------------------
def test_a_delivery_address_is_issued_and_recorded_before_the_node_sees_it(wallet) -> None:  # type: ignore[no-untyped-def]
    view = view_channels(wallet, [channel()])[0]
    backend = StandInBackend(channels=[view.channel])
    out = close_channel(backend, wallet, view, fee_rate=2)
    [(cp, delivery, force)] = backend.closes
    assert (cp, force) == (view.channel_point, False) and delivery == out.record.expected_address
    issued = {a.address: a.label for a in wallet.addresses(show_used=True)}
    assert issued[delivery] == f"close {cp}"
    rec = close_record(wallet.store, cp)
    assert (rec.state, rec.closing_txid, rec.address_source) == ("pending", backend.closing_txid, "delivery")
    assert [e.action for e in wallet.store.audit_log(subject=cp)] == ["close-requested", "close-broadcast"]


def test_node_refusals_and_silences_are_recorded(wallet) -> None:  # type: ignore[no-untyped-def]
    view = view_channels(wallet, [channel()])[0]
    backend = StandInBackend(channels=[view.channel])
    backend.close_error = NodeError("lnd refused: peer offline")
    with pytest.raises(NodeError, match="peer offline"):
        close_channel(backend, wallet, view)
    assert close_record(wallet.store, view.channel_point).state == "failed"
    backend.close_error = NodeUnreachable("cannot reach lnd")
    with pytest.raises(NodeUnreachable, match="may or may not have started") as unknown:
        close_channel(backend, wallet, view)
    assert "close-status" in unknown.value.message
    assert close_record(wallet.store, view.channel_point).state == "unknown"
    backend.close_error = None
    close_channel(backend, wallet, view)  # the retry reuses the first attempt's delivery address
    assert len({delivery for _, delivery, _ in backend.closes}) == 1
    assert [a.label for a in wallet.addresses(show_used=True)] == [f"close {view.channel_point}"]
    with pytest.raises(UsageError, match="fee fixed in the commitment"):
        close_channel(backend, wallet, view, force=True, fee_rate=3)
    assert close_record(wallet.store, view.channel_point).state == "pending"


# --- verification ------------------------------------------------------------------------------
def test_a_confirmed_close_paying_the_upfront_address_is_verified_once(wallet, chain) -> None:  # type: ignore[no-untyped-def]
    ours = wallet.next_address(label="upfront").address
    ch = channel(close_address=ours)
    tx = closing_tx(
        ch.channel_point, [(script_of(wallet, ours), 299_000), (script_of(wallet, FOREIGN_ADDRESS), 195_000)]
    )
    backend = StandInBackend(channels=[ch])
    close_channel(backend, wallet, view_channels(wallet, [ch])[0])
    backend.closing_txid = tx.txid().hex()
    backend.channels = [
        replace(
            ch, state=ChannelState.CLOSING, closing_txid=tx.txid().hex(), close_address=None, close_address_known=False
        )
    ]
    chain.broadcast(tx.serialize())
    pending = close_status(backend, wallet, ch.channel_point)
    assert pending.state == "pending" and "waiting for confirmation" in pending.message
    assert pending.verdict is not None and pending.verdict.ok
    chain.add_block()
    backend.channels = [
        replace(backend.channels[0], state=ChannelState.CLOSED, settled_sat=299_000, close_type=CloseType.COOPERATIVE)
    ]
    done = close_status(backend, wallet, ch.channel_point)
    assert done.state == "verified" and done.wallet_utxo == f"{tx.txid().hex()}:0"
    assert wallet.balance().confirmed == 299_000
    again = close_status(backend, wallet, ch.channel_point)
    assert again.state == "verified" and "299,000 sat" in again.message
    actions = [e.action for e in wallet.store.audit_log(subject=ch.channel_point)]
    assert actions == ["close-requested", "close-broadcast", "close-txid-changed", "close-verified"]


def test_without_txindex_a_confirmed_close_that_paid_us_nothing_is_a_violation(wallet, chain) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    tx = closing_tx(ch.channel_point, [(script_of(wallet, FOREIGN_ADDRESS), 299_000)])
    chain.add_block([tx])  # MemoryChain serves only mempool transactions, like a node without txindex
    closed = replace(
        ch,
        state=ChannelState.CLOSED,
        closing_txid=tx.txid().hex(),
        settled_sat=299_000,
        close_type=CloseType.COOPERATIVE,
        close_address_known=False,
    )
    status = close_status(StandInBackend(channels=[closed]), wallet, ch.channel_point)
    assert status.state == "violation" and "no txindex" in status.message and tx.txid().hex() in status.message
    actions = [e.action for e in wallet.store.audit_log(subject=ch.channel_point)]
    assert actions == ["close-observed", "custody-violation"]


def test_a_force_close_ends_in_the_node_wallet_and_points_to_sweep(wallet) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    backend = StandInBackend(channels=[ch])
    close_channel(backend, wallet, view_channels(wallet, [ch])[0], force=True)
    backend.channels = [
        replace(
            ch,
            state=ChannelState.FORCE_CLOSING,
            limbo_sat=299_000,
            maturity_height=150,
            blocks_til_maturity=4,
            close_address_known=False,
        )
    ]
    locked = close_status(backend, wallet, ch.channel_point)
    assert locked.state == "pending" and "until height 150 (4 blocks)" in locked.message
    backend.channels = [replace(ch, state=ChannelState.CLOSED, settled_sat=299_000, close_type=CloseType.LOCAL_FORCE)]
    done = close_status(backend, wallet, ch.channel_point)
    assert done.state == "in-node-wallet" and done.next_step == "l2custody sweep west" and done.settled
    assert [r.state for r in close_records(wallet.store)] == ["in-node-wallet"]


def test_a_cooperative_close_overtaken_by_a_force_close_is_followed_as_one(wallet) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    backend = StandInBackend(channels=[ch])
    close_channel(backend, wallet, view_channels(wallet, [ch])[0])
    backend.channels = [
        replace(
            ch,
            state=ChannelState.CLOSED,
            settled_sat=250_000,
            close_type=CloseType.REMOTE_FORCE,
            closing_txid="dd" * 32,
        )
    ]
    status = close_status(backend, wallet, ch.channel_point)
    assert (status.state, status.record.kind, status.next_step) == ("in-node-wallet", "force", "l2custody sweep west")
    assert "close-became-force" in [e.action for e in wallet.store.audit_log(subject=ch.channel_point)]


def test_an_open_channel_has_no_close_to_follow(wallet) -> None:  # type: ignore[no-untyped-def]
    ch = channel()
    with pytest.raises(UsageError, match="channel close"):
        close_status(StandInBackend(channels=[ch]), wallet, ch.channel_point)
    with pytest.raises(ChannelNotFound):
        close_status(StandInBackend(), wallet, ch.channel_point)
