"""Coin selection: which of the wallet's coins pay for a spend.

The algorithm, in order:

1. **Effective values.** A coin's effective value is its value minus the fee
   to spend it at the requested fee rate (the worst-case weight of one
   P2WSH k-of-n input, see ``size.py``; a recovery wallet's primary path, or
   the recovery path asked for). Coins whose effective value is not
   positive cost more than they bring and are left out.
2. **Target.** The outputs' total plus the fee for the transaction's fixed
   part (version, locktime, counts, the outputs themselves).
3. **Branch and bound, changeless** (Bitcoin Core's ``SelectCoinsBnB``, after
   Murch's thesis): a depth-first search over the coins sorted by effective
   value, largest first, for a set whose effective value lands in
   ``[target, target + cost_of_change]``. Such a set needs no change output;
   the small overshoot goes to the fee, which is cheaper than creating a
   change output now and spending it later. Among all sets found within
   100,000 steps the one with the least *waste* wins.
4. **With change** (when no changeless set exists): two candidates, each
   required to leave a change output worth at least its dust threshold:
   the single smallest coin that covers everything ("lowest larger"), and
   largest-first accumulation. The one with fewer inputs wins; on a tie,
   the smaller total, keeping big coins whole. If largest-first covers the
   target but leaves less than a change output is worth, the remainder goes
   to the fee (changeless).
5. Otherwise InsufficientFunds says how much is spendable.

Waste (Core's metric) = for each input, its fee at the current rate minus
its fee at the long-term rate, plus either the overshoot given to fees
(changeless) or the cost of change. With ``subtract_fee`` the outputs pay
the fee, so coins count at their full value and the fee is not part of the
target.

The Selection's fee and change are computed from the exact transaction
weight, exactly as ``psbt.build_psbt`` computes them: pass
``change_index`` to build_psbt only when ``selection.change > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l2custody.amounts import format_sats
from l2custody.errors import InsufficientFunds, UsageError
from l2custody.numbers import is_positive
from l2custody.wallet import size
from l2custody.wallet.descriptors import WalletDescriptor
from l2custody.wallet.psbt import Utxo

BNB_MAX_TRIES = 100_000
CHANGE_SCRIPT_LEN = 34  # P2WSH change
_CHANGE_DUST = size.dust_threshold(b"\x00\x20" + bytes(32))


@dataclass(frozen=True)
class Selection:
    """The chosen coins, the fee the transaction will pay, and the change (0 = no change output)."""

    utxos: tuple[Utxo, ...]
    fee: int
    change: int
    algorithm: str  # "bnb" | "lowest-larger" | "largest-first"
    waste: float

    @property
    def total_in(self) -> int:
        return sum(u.value for u in self.utxos)


@dataclass(frozen=True)
class _Coin:
    utxo: Utxo
    effective: float
    waste: float


class _Exact:
    """Exact fee/change for a set of coins, the same arithmetic as build_psbt."""

    def __init__(self, target: int, fee_rate: float, input_weight: int, lens: list[int], subtract_fee: bool) -> None:
        self.target, self.fee_rate, self.input_weight = target, fee_rate, input_weight
        self.lens, self.subtract_fee = lens, subtract_fee

    def fees(self, count: int) -> tuple[int, int]:
        ins = [self.input_weight] * count
        without = size.fee_for_weight(size.tx_weight(ins, self.lens), self.fee_rate)
        with_change = size.fee_for_weight(size.tx_weight(ins, self.lens + [CHANGE_SCRIPT_LEN]), self.fee_rate)
        return without, with_change

    def settle(self, coins: Sequence[Utxo], allow_change: bool = True) -> tuple[int, int] | None:
        """(fee, change) for these coins, or None if they do not cover the target."""
        total = sum(u.value for u in coins)
        without, with_change = self.fees(len(coins))
        if self.subtract_fee:
            remainder = total - self.target
            if remainder < 0:
                return None
            if allow_change and remainder >= _CHANGE_DUST:
                return with_change, remainder
            return without, 0
        if total - self.target - without < 0:
            return None
        leftover = total - self.target - with_change
        if allow_change and leftover >= _CHANGE_DUST:
            return with_change, leftover
        return total - self.target, 0


def _bnb(pool: list[_Coin], target: float, cost_of_change: float, max_tries: int) -> list[_Coin] | None:
    """Depth-first search for a set with effective value in [target, target + cost_of_change]."""
    available = sum(c.effective for c in pool)
    if available < target:
        return None
    selection: list[int] = []
    value = waste = 0.0
    best: list[int] | None = None
    best_waste = float("inf")
    depth = 0
    for _ in range(max_tries):
        backtrack = False
        if value + available < target or value > target + cost_of_change or (waste > best_waste and pool[0].waste > 0):
            backtrack = True
        elif value >= target:
            total_waste = waste + (value - target)
            if total_waste <= best_waste:
                best, best_waste = list(selection), total_waste
            backtrack = True
        elif depth >= len(pool):
            backtrack = True
        if backtrack:
            if not selection:
                break
            while depth - 1 > selection[-1]:  # give back the coins skipped after the last one taken
                depth -= 1
                available += pool[depth].effective
            last = selection.pop()
            value -= pool[last].effective
            waste -= pool[last].waste
            depth = last + 1  # continue with ``last`` left out
            continue
        coin = pool[depth]
        available -= coin.effective
        prev = pool[depth - 1] if depth else None
        same_as_skipped = (
            selection
            and selection[-1] != depth - 1
            and prev is not None
            and prev.effective == coin.effective
            and prev.waste == coin.waste
        )
        if not same_as_skipped:  # an equal coin was just left out: taking this one is the same branch
            selection.append(depth)
            value += coin.effective
            waste += coin.waste
        depth += 1
    return [pool[i] for i in best] if best is not None else None


def _check_payer_keeps_enough(sel: Selection, target: int) -> None:
    """With subtract_fee the output pays the fee; it must keep at least a dust threshold."""
    kept = target - sel.fee if sel.change else sel.total_in - sel.fee
    if kept < _CHANGE_DUST:
        raise InsufficientFunds(
            f"sending {format_sats(target)} with the fee subtracted leaves {format_sats(kept)} for the "
            f"recipient after a {format_sats(sel.fee)} fee; send more or lower the fee rate"
        )


def select(
    utxos: Sequence[Utxo],
    target: int,
    fee_rate: float,
    *,
    desc: WalletDescriptor,
    output_script_lens: Sequence[int] = (CHANGE_SCRIPT_LEN,),
    long_term_fee_rate: float | None = None,
    subtract_fee: bool = False,
    max_tries: int = BNB_MAX_TRIES,
    recovery: int | None = None,
) -> Selection:
    """Choose coins paying ``target`` sats (the outputs' total) at ``fee_rate`` sat/vB.

    ``output_script_lens`` are the script lengths of the outputs to create
    (default: one P2WSH output). ``long_term_fee_rate`` (default: the same
    rate) is the rate at which change would be spent later. ``recovery``
    (a recovery wallet's recovery path delay) sizes the inputs for that
    path's witness instead of the primary path's. Raises
    InsufficientFunds when the coins cannot pay.
    """
    if target <= 0:
        raise UsageError(f"amount to send must be positive, got {target}")
    if not is_positive(fee_rate):
        raise UsageError(f"fee rate must be positive, got {fee_rate}")
    lt_rate = fee_rate if long_term_fee_rate is None else long_term_fee_rate
    in_weight = desc.input_weight(recovery)
    # Unrounded fees while searching (rounding each piece up would miss exact
    # fits by a few sats); the exact, rounded fee is settled per candidate.
    in_fee = 0.0 if subtract_fee else fee_rate * in_weight / 4
    per_input_waste = (fee_rate - lt_rate) * in_weight / 4
    lens = list(output_script_lens)
    exact = _Exact(target, fee_rate, in_weight, lens, subtract_fee)
    skeleton_fee = 0.0 if subtract_fee else fee_rate * size.tx_weight([], lens) / 4
    goal = target + skeleton_fee

    pool = sorted(
        (_Coin(u, u.value - in_fee, per_input_waste) for u in utxos if u.value - in_fee > 0),
        key=lambda c: (-c.effective, c.utxo.txid, c.utxo.vout),
    )
    change_cost = (
        _CHANGE_DUST
        if subtract_fee
        else size.cost_of_change(fee_rate, size.output_weight(CHANGE_SCRIPT_LEN), in_weight, lt_rate)
    )

    found = _bnb(pool, goal, change_cost, max_tries) if pool else None
    if found is not None:
        coins = tuple(c.utxo for c in found)
        settled = exact.settle(coins, allow_change=False)
        if settled is not None:
            fee, change = settled
            excess = (sum(u.value for u in coins) - target - fee) if subtract_fee else fee - exact.fees(len(coins))[0]
            chosen = Selection(coins, fee, change, "bnb", per_input_waste * len(coins) + max(0, excess))
            if subtract_fee:
                _check_payer_keeps_enough(chosen, target)
            return chosen

    candidates: list[Selection] = []
    change_output_fee = 0 if subtract_fee else fee_rate * size.output_weight(CHANGE_SCRIPT_LEN) / 4
    need_with_change = goal + change_output_fee + _CHANGE_DUST
    larger = [c for c in pool if c.effective >= need_with_change]
    if larger:
        coin = min(larger, key=lambda c: c.effective)
        settled = exact.settle((coin.utxo,))
        if settled is not None:
            candidates.append(
                Selection((coin.utxo,), settled[0], settled[1], "lowest-larger", per_input_waste + change_cost)
            )
    taken: list[Utxo] = []
    for coin in pool:
        taken.append(coin.utxo)
        settled = exact.settle(taken)
        if settled is not None:
            overshoot = change_cost if settled[1] else settled[0] - exact.fees(len(taken))[0]
            waste = per_input_waste * len(taken) + overshoot
            candidates.append(Selection(tuple(taken), settled[0], settled[1], "largest-first", waste))
            break
    if candidates:
        best = min(candidates, key=lambda s: (len(s.utxos), s.total_in))
        if subtract_fee:
            _check_payer_keeps_enough(best, target)
        return best

    spendable = sum(c.utxo.value for c in pool)
    too_small = [u for u in utxos if u.value - in_fee <= 0]
    extra = (
        f"; {len(too_small)} coin(s) worth {format_sats(sum(u.value for u in too_small))} cost more to "
        f"spend than they hold at {fee_rate:g} sat/vB"
        if too_small
        else ""
    )
    raise InsufficientFunds(
        f"cannot pay {format_sats(target)}{'' if subtract_fee else ' plus fee'} at {fee_rate:g} sat/vB: "
        f"the wallet can spend {format_sats(spendable)} in {len(pool)} coin(s){extra}. "
        "Receive more funds, lower the fee rate, or send less"
    )
