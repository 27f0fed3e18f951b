"""Funding-session rules: when a session may be broadcast, and how it round-trips."""

import pytest

from l2custody.custody.funding.session import (
    PEER_FORGET_BLOCKS,
    ChannelRequest,
    FundingLeg,
    FundingSession,
    LegState,
    SessionState,
)
from l2custody.errors import DeadlinePassed, SessionError


def make_session(state=SessionState.SECURED, leg_states=(LegState.SECURED, LegState.SECURED)):
    legs = tuple(
        FundingLeg(
            request=ChannelRequest(node=f"n{i}", peer_pubkey="02" + "ab" * 32, amount_sat=100_000 * (i + 1)),
            close_address="bcrt1qexample",
            state=s,
        )
        for i, s in enumerate(leg_states)
    )
    return FundingSession(id="s1", state=state, start_height=500, legs=legs, reserved_utxos=("aa:0",))


def test_a_secured_session_within_the_margin_may_be_broadcast():
    make_session().check_broadcastable(tip_height=500 + PEER_FORGET_BLOCKS - 144, margin=144)


def test_broadcast_is_refused_one_block_past_the_margin_and_offers_abort():
    with pytest.raises(DeadlinePassed, match="session abort s1"):
        make_session().check_broadcastable(tip_height=500 + PEER_FORGET_BLOCKS - 143, margin=144)


def test_broadcast_is_refused_while_a_leg_is_not_counter_signed():
    session = make_session(leg_states=(LegState.SECURED, LegState.REQUESTED))
    with pytest.raises(SessionError, match="not counter-signed"):
        session.check_broadcastable(tip_height=501, margin=144)


@pytest.mark.parametrize("state", [SessionState.NEGOTIATING, SessionState.ABORTED, SessionState.FAILED])
def test_only_secured_sessions_are_broadcastable(state):
    with pytest.raises(SessionError, match=state.value):
        make_session(state=state).check_broadcastable(tip_height=501, margin=144)


def test_blocks_left_counts_down_to_the_margin():
    session = make_session()
    assert session.blocks_left(tip_height=500, margin=144) == PEER_FORGET_BLOCKS - 144
    assert session.amount_sat == 300_000


def test_a_session_survives_a_json_round_trip_unchanged():
    session = make_session()
    assert FundingSession.from_json(session.to_json()) == session


def test_a_rebroadcast_is_allowed_while_the_outcome_is_open_and_open_legs_count_as_signed():
    for state in (SessionState.BROADCASTING, SessionState.BROADCAST):
        make_session(state=state, leg_states=(LegState.SECURED, LegState.OPEN)).check_broadcastable(501, 144)


@pytest.mark.parametrize("leg", [LegState.PLANNED, LegState.CANCELLED, LegState.ABANDONED])
def test_legs_never_secured_or_undone_block_the_broadcast(leg):
    with pytest.raises(SessionError, match=f"\\({leg.value}\\)"):
        make_session(leg_states=(LegState.SECURED, leg)).check_broadcastable(501, 144)


def test_states_that_may_be_on_chain_are_never_undone():
    assert {s for s in SessionState if s.may_be_on_chain} == {
        SessionState.BROADCASTING,
        SessionState.BROADCAST,
        SessionState.CONFIRMED,
    }
    assert {s for s in SessionState if s.is_final} == {
        SessionState.CONFIRMED,
        SessionState.ABORTED,
        SessionState.FAILED,
    }


def test_views_are_json_ready_and_count_down():
    import json

    from l2custody.custody.funding.session import SessionView

    view = SessionView(make_session(), tip_height=600, margin=144, signatures=1, threshold=2)
    data = json.loads(json.dumps(view.to_dict()))
    assert data["state"] == "secured" and data["legs"][0]["state"] == "secured"
    assert data["blocks_left"] == PEER_FORGET_BLOCKS - 144 - 100 and "psbt" not in data
    assert data["deadline_height"] == 500 + PEER_FORGET_BLOCKS
