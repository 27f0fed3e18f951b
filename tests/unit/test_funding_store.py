"""Funding sessions persisted in the store (real SQLite): one psbts row per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2custody.custody.funding.records import (
    create_session,
    list_sessions,
    load_session,
    new_session_id,
    save_session,
    session_for_txid,
)
from l2custody.custody.funding.session import (
    ChannelRequest,
    FundingLeg,
    FundingSession,
    LegState,
    SessionState,
)
from l2custody.errors import SessionNotFound
from l2custody.store import Store

PEER = "02" + "ab" * 32


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "l2custody.sqlite")
    s.add_wallet("treasury", "wsh(...)", "regtest", 0)
    yield s
    s.close()


def session(sid: str = "fs-00000001", **changes) -> FundingSession:
    leg = FundingLeg(
        ChannelRequest("west", PEER, 300_000, peer_host="127.0.0.1:9735", private=True),
        close_address="bcrt1qclose",
        state=LegState.REQUESTED,
        intent={
            "node": "west",
            "kind": "lnd",
            "peer_pubkey": PEER,
            "intent_id": "11" * 32,
            "funding_address": "bcrt1qfund",
            "funding_script": "0020" + "22" * 32,
            "amount_sat": 300_000,
            "close_address": "bcrt1qclose",
            "private": True,
            "push_sat": 0,
        },
    )
    base = FundingSession(sid, SessionState.NEGOTIATING, 500, (leg,), owner={"pid": 1, "host": "h"})
    return base.with_state(base.state, **changes) if changes else base


def test_ids_are_short_and_distinct() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("fs-") and len(i) == 11 for i in ids)


def test_a_session_round_trips_through_its_row(store: Store) -> None:
    s = session()
    create_session(store, 1, s)
    assert load_session(store, s.id) == s
    leg = s.legs[0]
    assert leg.funding_script == bytes.fromhex("0020" + "22" * 32) and leg.intent_id == "11" * 32
    row = store.psbt(s.id)
    assert (row.kind, row.state, row.psbt) == ("funding", "negotiating", "")


def test_saving_never_overwrites_signatures_added_by_the_pipeline(store: Store) -> None:
    s = session()
    create_session(store, 1, s)
    built = s.with_state(SessionState.NEGOTIATING, psbt="cHNidP8-unsigned", psbt_fingerprint="f" * 64, txid="aa" * 32)
    save_session(store, built, psbt=True, expected_outputs=[])
    store.update_psbt(s.id, state="partially-signed", psbt="cHNidP8-signed")  # what the pipeline does
    secured = built.update_leg(0, state=LegState.SECURED, channel_point="aa" * 32 + ":0")
    save_session(store, secured.with_state(SessionState.SECURED))
    back = load_session(store, s.id)
    assert back.psbt == "cHNidP8-signed"  # the pipeline's copy survived
    assert back.state is SessionState.SECURED  # the session's own state, not the pipeline's word
    assert (back.psbt_fingerprint, back.txid) == ("f" * 64, "aa" * 32)
    assert store.psbt(s.id).details["expected_outputs"] == []


def test_lookups(store: Store) -> None:
    a = session("fs-0000000a")
    b = session("fs-0000000b")
    create_session(store, 1, a)
    create_session(store, 1, b)
    save_session(store, b.with_state(SessionState.ABORTED, txid="bb" * 32))
    assert [s.id for s in list_sessions(store)] == ["fs-0000000a", "fs-0000000b"]
    assert [s.id for s in list_sessions(store, include_final=False)] == ["fs-0000000a"]
    assert session_for_txid(store, "bb" * 32).id == "fs-0000000b"  # type: ignore[union-attr]
    assert session_for_txid(store, "cc" * 32) is None


def test_unknown_ids_and_plain_spends_are_not_funding_sessions(store: Store) -> None:
    store.add_psbt("3f2a9c0d1e2b4a5c", 1, "send", "verified", "cHNidP8", "f" * 64, {"expected_outputs": []})
    for sid in ("fs-nothere", "3f2a9c0d1e2b4a5c"):
        with pytest.raises(SessionNotFound, match="session list"):
            load_session(store, sid)
    assert list_sessions(store) == []
