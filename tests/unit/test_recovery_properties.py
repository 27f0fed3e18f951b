"""`wallet recover` and `wallet refresh` against whatever an operator (or someone holding
only the recovery key) asks: any coins at any age, any `--utxo` list (unknown, repeated,
still locked, another wallet's), any fee rate, any key.

Whatever is asked, either the answer is one typed error and nothing is reserved or saved,
or the spend is exactly what the timelocks allow:

* recover spends only coins its path may spend in the next block, with that path's
  nSequence on every input, all of them (or exactly those named), to the address given;
* refresh spends on the primary path (no relative lock) back to the wallet itself.

A recovery wallet (2-of-3, heir alone after 10 blocks, dave and erin together after 20)
on a MemoryChain: real blocks and transactions, no node. What btcd says of such spends is
in tests/integration/test_wallet_recovery.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.errors import L2CustodyError
from l2custody.wallet import recovery
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import copy_home, create_wallet, init_regtest, set_config, software_signers
from tests.support.recovery import receive

HEIR, PAIR = 10, 20
FOREIGN = p2wpkh(ec.PrivateKey(b"\x07" * 32).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configured recovery wallet with no coins; each example works on a copy."""
    base = tmp_path_factory.mktemp("pristine")
    config = init_regtest(base)
    keys = software_signers(config, base, ("alice", "bob", "carol", "heir", "dave", "erin"))
    create_wallet(config, keys[:3], recovery=(f"{keys[3]}@{HEIR}", f"2:{keys[4]},{keys[5]}@{PAIR}"))
    set_config(config, "policy", "allowed_destinations", f'["{FOREIGN}"]')
    return base


# Blocks mined after each coin, around the paths' edges (heir: open 9 blocks after its block).
ages = st.lists(st.sampled_from([0, 1, 2, 7, 8, 9, 10, 17, 18, 19, 20, 30]), min_size=0, max_size=4)
# Mostly what works, sometimes what does not: both sides of every check are reached.


def mostly(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from(good * 4 + bad) if len(good) * 4 >= len(bad) else st.sampled_from(good + bad)


GOOD_FEES, GOOD_KEYS, GOOD_DESTINATIONS = (1.0, 2.5, 7.0), {"heir": HEIR, "dave": PAIR, "erin": PAIR}, (FOREIGN, "own")
fee_rates = mostly([*GOOD_FEES], [None, 0.0, -1.0, 0.5, 1e9, math.nan, math.inf])
keys = mostly([*GOOD_KEYS], ["alice", "nobody", "", "[deadbeef]", "HEIR"])
destinations = mostly(
    [*GOOD_DESTINATIONS], ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "garbage", "", FOREIGN.upper()]
)


@st.composite
def picks(draw: st.DrawFn) -> list[str | int] | None:
    """None (every coin the command may take) or a --utxo list: coin indexes and outsiders."""
    if draw(st.integers(0, 3)) > 0:
        return None
    return draw(
        st.lists(
            mostly([0, 1, 2, 3], ["ab" * 32 + ":0", "ab" * 32 + ":x", "nonsense", "ab:0"]),
            min_size=1,
            max_size=4,
        )
    )


def fund(wallet: Wallet, chain: MemoryChain, gaps: list[int]) -> list[str]:
    points = []
    for i, gap in enumerate(gaps):
        points.append(receive(wallet, chain, 50_000 * (i + 1)))
        for _ in range(gap):
            chain.add_block([])
    wallet.sync()
    return points


def named(points: list[str], pick: list[str | int] | None) -> list[str] | None:
    if pick is None:
        return None
    return [points[p] if isinstance(p, int) and p < len(points) else str(p) for p in pick]


def nothing_changed(wallet: Wallet, sessions_before: int) -> None:
    assert all(u.reserved_by is None for u in wallet.store.utxos(wallet.record.id))
    assert len(wallet.store.psbts()) == sessions_before


def try_recover(
    config: Path, gaps: list[int], pick: list[str | int] | None, fee_rate: float | None, key: str, to: str
) -> bool:
    """Ask for a recovery; check what was answered; whether a spend was made."""
    chain = MemoryChain()
    with Wallet.open(load_config(config), chain=chain) as wallet:
        points = fund(wallet, chain, gaps)
        heights = {u.outpoint: u.height for u in wallet.spendable_coins()}
        address = wallet.next_address().address if to == "own" else to
        utxos = named(points, pick)
        before = len(wallet.store.psbts())
        tip = chain.tip_height()

        def may_spend(delay: int) -> set[str]:
            # The next block may hold it: every input's coin is at least `delay` blocks deep by then.
            return {p for p, h in heights.items() if h is not None and h + delay <= tip + 1}

        try:
            plan = recovery.recover(wallet, key=key, to=address, fee_rate=fee_rate, utxos=utxos)
        except L2CustodyError:
            nothing_changed(wallet, before)
            if utxos is None and key in GOOD_KEYS and to in GOOD_DESTINATIONS and fee_rate in GOOD_FEES:
                assert not may_spend(GOOD_KEYS[key]), "refused although coins were open to the path"
            return False
        tx = plan.session.psbt.tx
        spent = {f"{i.txid.hex()}:{i.vout}" for i in tx.vin}
        may = may_spend(plan.delay)
        assert spent <= may
        assert spent == (may if utxos is None else set(utxos))
        assert all(i.sequence == plan.delay for i in tx.vin)
        assert plan.delay == GOOD_KEYS[key]
        assert len(tx.vout) == 1 and plan.amount_sat == sum(c.value for c in plan.coins)
        fee = plan.session.summary.fee
        assert fee is not None and tx.vout[0].value == plan.amount_sat - fee > 0
        return True


def try_refresh(
    config: Path, gaps: list[int], pick: list[str | int] | None, fee_rate: float | None, margin: int | None
) -> bool:
    """Ask for a refresh; check what was answered; whether a spend was made."""
    chain = MemoryChain()
    with Wallet.open(load_config(config), chain=chain) as wallet:
        points = fund(wallet, chain, gaps)
        heights = {u.outpoint: u.height for u in wallet.spendable_coins()}
        utxos = named(points, pick)
        before = len(wallet.store.psbts())
        tip = chain.tip_height()
        window = wallet.config.recovery.refresh_margin_blocks if margin is None else margin
        # Every coin whose first recovery path (heir's) opens within the margin, and no other.
        due = {p for p, h in heights.items() if h is not None and (h + HEIR) - (tip + 1) <= window}
        try:
            plan = recovery.refresh(wallet, margin=margin, fee_rate=fee_rate, utxos=utxos)
        except L2CustodyError:
            nothing_changed(wallet, before)
            if utxos is None and window >= 0 and fee_rate in GOOD_FEES:
                assert not due, "refused although coins were due"
            return False
        tx = plan.session.psbt.tx
        spent = {f"{i.txid.hex()}:{i.vout}" for i in tx.vin}
        assert spent == {c.outpoint for c in plan.coins} and spent <= set(points)
        assert spent == (due if utxos is None else set(utxos))
        assert all(i.sequence >= 0xFFFFFFFD for i in tx.vin)  # no relative lock: the primary path
        assert [o.ours for o in plan.session.summary.outputs] == [True]
        return True


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(gaps=ages, pick=picks(), fee_rate=fee_rates, key=keys, to=destinations)
def test_recover_spends_exactly_the_coins_its_path_may_spend_now(
    pristine: Path,
    tmp_path_factory: pytest.TempPathFactory,
    gaps: list[int],
    pick: list[str | int] | None,
    fee_rate: float | None,
    key: str,
    to: str,
) -> None:
    try_recover(copy_home(pristine, tmp_path_factory.mktemp("example")), gaps, pick, fee_rate, key, to)


@SETTINGS
@given(gaps=ages, pick=picks(), fee_rate=fee_rates, margin=st.sampled_from([None, 0, 5, 15, 1000, -1]))
def test_refresh_spends_on_the_primary_path_back_to_the_wallet(
    pristine: Path,
    tmp_path_factory: pytest.TempPathFactory,
    gaps: list[int],
    pick: list[str | int] | None,
    fee_rate: float | None,
    margin: int | None,
) -> None:
    try_refresh(copy_home(pristine, tmp_path_factory.mktemp("example")), gaps, pick, fee_rate, margin)


def test_the_checks_above_are_reached_by_spends_that_are_allowed(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # One coin 12 blocks deep, one 2 deep: heir may take the first, carol and dave neither.
    assert try_recover(copy_home(pristine, tmp_path_factory.mktemp("example")), [10, 2], None, 2.0, "heir", FOREIGN)
    assert try_recover(copy_home(pristine, tmp_path_factory.mktemp("example")), [25], [0], 2.0, "dave", "own")
    assert not try_recover(
        copy_home(pristine, tmp_path_factory.mktemp("example")), [10, 2], [1], 2.0, "heir", FOREIGN
    )  # locked
    assert try_refresh(copy_home(pristine, tmp_path_factory.mktemp("example")), [8, 1], None, 2.0, 5)
    assert try_refresh(copy_home(pristine, tmp_path_factory.mktemp("example")), [0], [0], 2.0, None)
