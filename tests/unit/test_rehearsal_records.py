"""The rehearsals table: the state machine a rehearsal moves through, rows read back as
written, what the rows say about a generation (rehearsed? who signed when? did the last one
fail?), and the refusal channel opens get from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2custody.errors import PolicyViolation, PsbtError, StoreDamaged
from l2custody.store import Store
from l2custody.wallet.rehearsal_records import (
    MOVES,
    RehearsalRecord,
    RehearsalState,
    SignerRef,
    last_signed,
    latest_failure,
    rehearsal,
    rehearsals,
    require_rehearsed,
    save_rehearsal,
    unfinished,
)

S = RehearsalState
SIGNERS = (SignerRef("s0", "73c5da0a", "software"), SignerRef("vault", "28645006", "file"))


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store.open(tmp_path / "s.sqlite") as s:
        with s.transaction():
            s.add_wallet("treasury", "wsh(...)", "regtest", 0)
            s.add_wallet("treasury", "wsh(...2)", "regtest", 0, generation=2)
        yield s


def record(rid: str, state: RehearsalState = S.SIGNING, wallet_id: int = 1, **kw) -> RehearsalRecord:  # type: ignore[no-untyped-def]
    return RehearsalRecord(rid, wallet_id, state, 10_000, SIGNERS, **kw)


def put(store: Store, rec: RehearsalRecord) -> RehearsalRecord:
    with store.transaction():
        return save_rehearsal(store, rec)


# --- the state machine ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "to"),
    [(a, b) for a in S for b in S if a != b],
    ids=lambda s: s.value,
)
def test_a_rehearsal_moves_only_along_the_machine(start: RehearsalState, to: RehearsalState) -> None:
    allowed = {
        (S.SIGNING, S.BROADCASTING),
        (S.SIGNING, S.FAILED),
        (S.SIGNING, S.ABORTED),
        (S.BROADCASTING, S.BROADCAST),
        (S.BROADCASTING, S.FAILED),
        (S.BROADCAST, S.CONFIRMED),
        (S.BROADCAST, S.FAILED),
    }
    rec = record("rh-1", start)
    if (start, to) in allowed:
        assert rec.moved(to).state is to
    else:
        with pytest.raises(PsbtError, match=f"rehearsal rh-1 is {start.value}; it cannot become {to.value}"):
            rec.moved(to)


def test_settled_states_have_no_way_out_and_only_unsent_ones_can_be_aborted() -> None:
    assert {s for s in S if s.settled} == {S.CONFIRMED, S.FAILED, S.ABORTED}
    assert all(not MOVES[s] for s in S if s.settled)
    assert {s for s in S if S.ABORTED in MOVES[s]} == {S.SIGNING}
    assert {s for s in S if s.may_be_on_chain} == {S.BROADCASTING, S.BROADCAST, S.CONFIRMED}


def test_moving_merges_details_and_keeps_the_rest() -> None:
    rec = record("rh-1", details={"session": "abcd", "signed": {"s0": {"at": 1.0}}})
    moved = rec.moved(S.BROADCASTING, txid="ab" * 32, details={"fee": 300})
    assert moved.details == {"session": "abcd", "signed": {"s0": {"at": 1.0}}, "fee": 300}
    assert (moved.txid, moved.session_id, moved.signer_names) == ("ab" * 32, "abcd", ("s0", "vault"))
    assert rec.details == {"session": "abcd", "signed": {"s0": {"at": 1.0}}}  # the original is untouched


# --- rows ----------------------------------------------------------------------------------------
def test_rows_read_back_as_written_and_per_generation(store: Store) -> None:
    first = put(store, record("rh-1", details={"session": "abcd"}))
    assert rehearsal(store, "rh-1") == first and first.created > 0
    put(store, first.moved(S.ABORTED, error="aborted by the operator"))
    put(store, record("rh-2", wallet_id=2))
    assert [r.id for r in rehearsals(store)] == ["rh-1", "rh-2"]
    assert [r.id for r in rehearsals(store, 2)] == ["rh-2"] and rehearsals(store, 1)[0].state is S.ABORTED
    assert unfinished(store, 1) is None and unfinished(store, 2).id == "rh-2"  # type: ignore[union-attr]
    assert rehearsal(store, "rh-nope") is None


def test_a_row_not_as_l2custody_writes_it_is_damage(store: Store) -> None:
    put(store, record("rh-1"))
    with store.transaction():
        store.execute("UPDATE rehearsals SET state = 'half-done' WHERE id = 'rh-1'")
    with pytest.raises(StoreDamaged, match="rehearsal rh-1"):
        rehearsals(store)


def test_who_signed_when_counts_confirmed_rehearsals_only() -> None:
    ok1 = record("rh-1", S.CONFIRMED, details={"signed": {"s0": {}, "vault": {}}, "confirmed_at": 100.0})
    ok2 = record("rh-2", S.CONFIRMED, details={"signed": {"s0": {}, "s1": {}}, "confirmed_at": 200.0})
    failed = record("rh-3", S.FAILED, details={"signed": {"s1": {}}}, updated=300.0)
    assert last_signed([ok1, ok2, failed]) == {"s0": 200.0, "vault": 100.0, "s1": 200.0}


def test_a_failure_counts_until_a_later_rehearsal_settles() -> None:
    failed = record("rh-1", S.FAILED, error="vault returned it unsigned")
    assert latest_failure([failed]) == failed
    assert latest_failure([failed, record("rh-2", S.SIGNING)]) == failed  # still the last settled one
    assert latest_failure([failed, record("rh-2", S.CONFIRMED)]) is None
    assert latest_failure([failed, record("rh-2", S.ABORTED)]) is None


# --- the open guard ------------------------------------------------------------------------------
def test_a_generation_without_a_confirmed_rehearsal_funds_no_channel(store: Store) -> None:
    newest = store.wallet()
    assert newest.generation == 2
    with pytest.raises(PolicyViolation) as never:
        require_rehearsed(store, newest, required=True)
    assert never.value.message == (
        "the wallet treasury (generation 2) has never been rehearsed: run `l2custody wallet rehearse` to prove "
        "its signers can sign a spend before funding channels from it, or set [rehearsal] required = false in "
        "the config"
    )
    put(store, record("rh-1", S.CONFIRMED, wallet_id=1))  # generation 1's rehearsal does not count
    put(store, record("rh-2", S.FAILED, wallet_id=2, error="vault returned it unsigned"))
    with pytest.raises(PolicyViolation, match=r"never been rehearsed \(rehearsal rh-2 failed: vault returned it"):
        require_rehearsed(store, newest, required=True)
    put(store, record("rh-3", S.BROADCAST, wallet_id=2))
    with pytest.raises(PolicyViolation, match=r"rehearsal rh-3 is broadcast: `l2custody wallet rehearse` continues"):
        require_rehearsed(store, newest, required=True)
    require_rehearsed(store, newest, required=False)  # the operator's choice: no refusal
    put(store, record("rh-3", S.CONFIRMED, wallet_id=2))
    require_rehearsed(store, newest, required=True)
