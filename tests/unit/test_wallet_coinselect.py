"""Coin selection: changeless when a set fits, otherwise with change, always what build_psbt will do."""

from __future__ import annotations

import random

import pytest

from l2custody.errors import InsufficientFunds, UsageError
from l2custody.wallet import size
from l2custody.wallet.coinselect import select
from l2custody.wallet.psbt import build_psbt
from l2custody.wallet.review import summarize
from tests.support.wallet import coins, descriptor, pay, rng

DESC = descriptor()
IN_W = size.multisig_input_weight(2, 3)


def fee(n_inputs: int, lens: list[int], rate: float) -> int:
    return size.fee_for_weight(size.tx_weight([IN_W] * n_inputs, lens), rate)


def test_finds_an_exact_changeless_set_by_branch_and_bound() -> None:
    rate = 2.0
    exact = 60_000 + 45_000 - fee(2, [34], rate)  # coins 2 and 4 pay exactly this without change
    utxos = coins(DESC, [100_000, 60_000, 30_000, 45_000, 7_000])
    sel = select(utxos, exact, rate, desc=DESC)
    assert sel.algorithm == "bnb" and sel.change == 0
    assert sorted(u.value for u in sel.utxos) == [45_000, 60_000]
    assert sel.fee == fee(2, [34], rate)


def test_accepts_a_small_overshoot_instead_of_creating_change() -> None:
    rate = 2.0
    target = 100_000 - fee(1, [34], rate) - 200  # 200 sat over: cheaper than a change output
    sel = select(coins(DESC, [100_000, 300_000]), target, rate, desc=DESC)
    assert sel.algorithm == "bnb" and sel.change == 0 and [u.value for u in sel.utxos] == [100_000]
    assert sel.fee == fee(1, [34], rate) + 200


def test_prefers_one_larger_coin_with_change_over_many_small_ones() -> None:
    sel = select(coins(DESC, [20_000, 20_000, 20_000, 500_000]), 50_000, 3.0, desc=DESC)
    assert sel.algorithm == "lowest-larger" and [u.value for u in sel.utxos] == [500_000]
    assert sel.change == 500_000 - 50_000 - fee(1, [34, 34], 3.0)


def test_falls_back_to_largest_first_when_no_single_coin_covers() -> None:
    sel = select(coins(DESC, [40_000, 30_000, 20_000, 10_000]), 65_000, 2.0, desc=DESC)
    assert sel.algorithm in ("largest-first", "bnb")
    assert sum(u.value for u in sel.utxos) - 65_000 - sel.fee == sel.change
    if sel.change:
        assert sel.change >= 330


def test_skips_coins_that_cost_more_to_spend_than_they_hold() -> None:
    rate = 50.0
    tiny = int(rate * IN_W / 4)  # worth exactly what spending it costs
    sel = select(coins(DESC, [tiny, tiny, 200_000]), 100_000, rate, desc=DESC)
    assert [u.value for u in sel.utxos] == [200_000]


def test_insufficient_funds_says_what_is_spendable() -> None:
    rate = 50.0
    tiny = int(rate * IN_W / 4)  # worth exactly what spending it costs
    with pytest.raises(InsufficientFunds, match=r"can spend 50,000 sat in 1 coin\(s\); 1 coin\(s\) worth") as exc:
        select(coins(DESC, [50_000, tiny]), 60_000, rate, desc=DESC)
    assert "lower the fee rate" in exc.value.message


def test_refuses_nonsense_requests() -> None:
    with pytest.raises(UsageError, match="positive"):
        select(coins(DESC, [50_000]), 0, 1.0, desc=DESC)
    with pytest.raises(UsageError, match="fee rate"):
        select(coins(DESC, [50_000]), 1000, 0.0, desc=DESC)


def test_subtract_fee_selects_on_full_values() -> None:
    sel = select(coins(DESC, [70_000, 50_000]), 120_000, 5.0, desc=DESC, subtract_fee=True)
    assert len(sel.utxos) == 2 and sel.change == 0


@pytest.mark.parametrize("seed", range(25))
def test_selection_fee_and_change_are_exactly_what_build_psbt_does(seed: int) -> None:
    r = random.Random(seed)
    values = [r.randrange(5_000, 400_000) for _ in range(r.randrange(1, 9))]
    utxos = coins(DESC, values)
    rate = r.choice([1.0, 2.0, 7.5, 25.0])
    target = r.randrange(1_000, max(2_000, sum(values) // 2))
    sel = select(utxos, target, rate, desc=DESC)
    psbt = build_psbt(DESC, sel.utxos, [pay(target)], 0 if sel.change else None, rate, 1000, rng=rng(seed))
    s = summarize(psbt, DESC)
    assert s.fee == sel.fee
    assert sum(o.value for o in s.outputs if o.change) == sel.change
    assert s.fee_rate >= rate


def test_subtract_fee_refuses_an_amount_the_fee_would_eat() -> None:
    with pytest.raises(InsufficientFunds, match="leaves .* for the recipient"):
        select(coins(DESC, [57_890]), 5_000, 80.0, desc=DESC, subtract_fee=True)


@pytest.mark.parametrize("seed", range(10))
def test_subtract_fee_selection_matches_build_psbt(seed: int) -> None:
    r = random.Random(1000 + seed)
    values = [r.randrange(20_000, 300_000) for _ in range(r.randrange(1, 6))]
    target = r.randrange(30_000, sum(values))
    sel = select(coins(DESC, values), target, 4.0, desc=DESC, subtract_fee=True)
    psbt = build_psbt(DESC, sel.utxos, [pay(target)], 0 if sel.change else None, 4.0, 1000, 0, rng=rng(seed))
    s = summarize(psbt, DESC)
    assert s.fee == sel.fee and sum(o.value for o in s.outputs if o.change) == sel.change
