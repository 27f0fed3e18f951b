"""When a coin's recovery path opens: BIP-68 relative block locks, as the node counts them.

A coin confirmed at height h with a path older(N) may be spent on that path in a block
at height h + N or later, so the mempool accepts the spend once tip + 1 >= h + N (the
integration test on btcd checks the node agrees, one block before and at the height).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.wallet.recovery_timing import describe_locked, due_for_refresh, first_opening, lock_of, split_open


def test_a_coin_opens_n_blocks_after_it_confirmed() -> None:
    # confirmed in block 100, older(10): block 110 may hold the spend; the mempool takes it at tip 109
    assert lock_of("a:0", 1, 100, 10, tip=108).blocks_left == 1
    at = lock_of("a:0", 1, 100, 10, tip=109)
    assert (at.opens_at, at.blocks_left, at.is_open) == (110, 0, True)


def test_an_unconfirmed_coin_has_not_started_its_clock() -> None:
    lock = lock_of("a:0", 1, None, 10, tip=500)
    assert (lock.opens_at, lock.blocks_left, lock.is_open) == (None, None, False)
    assert "unconfirmed" in describe_locked([lock])


def test_the_first_opening_is_the_shortest_path() -> None:
    lock = first_opening("a:0", 5, 100, [52_560, 4_320, 26_280], tip=100)
    assert lock is not None and lock.delay == 4_320
    assert first_opening("a:0", 5, 100, [], tip=100) is None  # no recovery paths: nothing opens


def test_refresh_picks_coins_within_the_margin_soonest_first() -> None:
    locks = [lock_of(f"c{i}:0", 1, h, 100, tip=1_000) for i, h in enumerate((950, 901, 990, None))]
    due = due_for_refresh(locks, margin=50)
    assert [c.outpoint for c in due] == ["c1:0", "c0:0"]  # open now (0 left), then 49 left; c2: 89; c3 unconfirmed


def test_recover_spends_open_coins_and_names_when_the_others_open() -> None:
    opened, locked = split_open([lock_of("o:0", 1, 10, 5, tip=20), lock_of("l:1", 1, 18, 5, tip=20)])
    assert [c.outpoint for c in opened] == ["o:0"] and [c.outpoint for c in locked] == ["l:1"]
    assert describe_locked(locked) == "l:1 opens at block 23 (2 blocks from now)"


def test_a_delay_below_one_block_is_refused() -> None:
    with pytest.raises(ValueError):
        lock_of("a:0", 1, 1, 0, tip=1)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(height=st.integers(0, 900_000), delay=st.integers(1, 65_535), tip=st.integers(0, 1_000_000))
def test_open_exactly_when_the_next_block_may_hold_the_spend(height: int, delay: int, tip: int) -> None:
    lock = lock_of("x:0", 1, height, delay, tip)
    assert lock.is_open == (tip + 1 >= height + delay)
    assert lock.blocks_left is not None and lock.blocks_left >= 0
    assert lock.is_open or lock_of("x:0", 1, height, delay, tip + lock.blocks_left).is_open
