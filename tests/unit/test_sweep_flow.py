"""Sweep rules on a real wallet + store + MemoryChain (no node).

The node's side (lnd funding, signing and publishing the sweep) is covered by
tests/integration/test_sweep_lnd.py; here StandInBackend supplies the answers
the harness cannot produce on demand: a publish that timed out, a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from l2custody.backends.base import Capability, SweepResult
from l2custody.chain.memory import MemoryChain
from l2custody.custody.sweeping.records import sweep_records
from l2custody.custody.sweeping.sweep import (
    peek_address,
    preview_sweep,
    sweep_node,
    sweep_status,
)
from l2custody.errors import (
    BroadcastUnknown,
    InsufficientFunds,
    NotSupported,
    UsageError,
)
from l2custody.wallet.service import Wallet
from tests.support.custody import StandInBackend, closing_tx, random_outpoint, script_of


class SweepingStandIn(StandInBackend):
    capabilities = frozenset({Capability.SWEEP})

    def __init__(self) -> None:
        super().__init__()
        self.answer: SweepResult | Exception | None = None
        self.calls: list[tuple[str, int | None, bool]] = []

    def sweep_to(self, address, *, keep_sat=None, fee_rate=None, dry_run=False):  # type: ignore[no-untyped-def]
        self.calls.append((address, keep_sat, dry_run))
        if isinstance(self.answer, Exception):
            raise self.answer
        assert self.answer is not None
        return SweepResult(
            address,
            self.answer.amount_sat,
            200,
            50_000,
            ("aa" * 32 + ":1",),
            dry_run,
            None if dry_run else self.answer.txid,
        )


@pytest.fixture
def chain() -> MemoryChain:
    return MemoryChain()


@pytest.fixture
def wallet(tmp_path: Path, chain: MemoryChain, make_memory_wallet: Callable[..., Wallet]):  # type: ignore[no-untyped-def]
    w = make_memory_wallet(tmp_path, chain)
    yield w
    w.close()


def test_the_dry_run_shows_the_next_address_without_handing_it_out(wallet) -> None:  # type: ignore[no-untyped-def]
    backend = SweepingStandIn()
    backend.answer = SweepResult("", 700_000, 0, 0, (), True)
    first = peek_address(wallet)
    preview = preview_sweep(backend, wallet, keep_sat=50_000)
    assert preview.address == first and preview.result.amount_sat == 700_000 and backend.calls[0][2] is True
    assert [a for a in wallet.addresses(show_used=True) if a.issued] == []  # nothing handed out
    assert sweep_records(wallet.store) == [] and [e.action for e in wallet.store.audit_log()] == [
        "wallet-imported-descriptor"
    ]
    assert wallet.next_address().address == first and peek_address(wallet) != first
    backend.answer = InsufficientFunds("node 'west' has no confirmed coins in its wallet; nothing to sweep")
    empty = preview_sweep(backend, wallet)
    assert empty.result is None and "nothing to sweep" in empty.reason


def test_an_unanswered_sweep_is_recorded_unknown_then_found_on_chain(wallet, chain) -> None:  # type: ignore[no-untyped-def]
    backend = SweepingStandIn()
    backend.answer = BroadcastUnknown("publishing through 'west' ended with DEADLINE_EXCEEDED")
    with pytest.raises(BroadcastUnknown, match="may have gone out") as unknown:
        sweep_node(backend, wallet, keep_sat=50_000)
    assert "sweep-status west" in unknown.value.message
    [rec] = sweep_records(wallet.store)
    address = backend.calls[0][0]
    assert (rec.state, rec.address, rec.txid) == ("unknown", address, None)
    assert {a.address: a.label for a in wallet.addresses(show_used=True)}[address] == "sweep west"
    assert "nothing has paid" in sweep_status(wallet, rec.id).message

    tx = closing_tx(random_outpoint(), [(script_of(wallet, address), 650_000)])  # the sweep did go out
    chain.broadcast(tx.serialize())
    seen = sweep_status(wallet, rec.id)
    assert seen.record.state == "broadcast" and seen.record.txid == tx.txid().hex()
    assert "waiting for confirmation" in seen.message
    chain.add_block()
    done = sweep_status(wallet, rec.id)
    assert (done.record.state, done.record.vout, done.record.amount, done.confirmations) == ("verified", 0, 650_000, 1)
    actions = [e.action for e in wallet.store.audit_log(subject=f"sweep {rec.id}")]
    assert actions == ["sweep-started", "sweep-unknown", "sweep-found", "sweep-verified"]


def test_a_sweep_is_recorded_with_the_node_figures_then_verified(wallet, chain) -> None:  # type: ignore[no-untyped-def]
    backend = SweepingStandIn()
    address = peek_address(wallet)
    tx = closing_tx(random_outpoint(), [(script_of(wallet, address), 700_000)])
    backend.answer = SweepResult("", 700_000, 0, 0, (), False, tx.txid().hex())
    rec = sweep_node(backend, wallet, keep_sat=50_000, fee_rate=2)
    assert (rec.state, rec.address, rec.amount, rec.fee, rec.kept, rec.txid) == (
        "broadcast",
        address,
        700_000,
        200,
        50_000,
        tx.txid().hex(),
    )
    assert backend.calls == [(address, 50_000, False)]
    chain.add_block([tx])
    done = sweep_status(wallet, rec.id)
    assert done.record.state == "verified" and done.settled and "700,000 sat in the multisig" in done.message
    assert wallet.balance().confirmed == 700_000


def test_refusals_are_recorded_and_bad_options_refused_before_anything(wallet) -> None:  # type: ignore[no-untyped-def]
    backend = SweepingStandIn()
    backend.answer = InsufficientFunds("node 'west': nothing left to sweep after keeping 50000 sat")
    with pytest.raises(InsufficientFunds, match="nothing left"):
        sweep_node(backend, wallet, keep_sat=50_000)
    [rec] = sweep_records(wallet.store)
    assert rec.state == "failed" and "failed: node 'west'" in sweep_status(wallet, rec.id).message
    with pytest.raises(UsageError, match="--keep"):
        sweep_node(backend, wallet, keep_sat=-1)
    with pytest.raises(UsageError, match="fee rate"):
        sweep_node(backend, wallet, fee_rate=0)
    with pytest.raises(NotSupported, match="west"):
        sweep_node(StandInBackend(), wallet)
    assert len(sweep_records(wallet.store)) == 1
    with pytest.raises(UsageError, match="no sweep #9"):
        sweep_status(wallet, 9)
