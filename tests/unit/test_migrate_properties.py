"""`wallet migrate` against whatever is asked: coins of any size on any older generation,
any `--generation`, any `--utxo` list, any fee rate.

Either one typed error and nothing reserved or saved (not even the PSBTs of the other
generations), or one PSBT per older generation spending exactly its coins (all of them,
or exactly those named) into one fresh address of the newest generation.

A wallet rotated twice (alice, bob, carol; carol out, dave in; bob out, erin in) on a
MemoryChain: real blocks and transactions, no node.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from embit import bip32
from embit.networks import NETWORKS
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.errors import InsufficientFunds, L2CustodyError
from l2custody.wallet.generations import migrate
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import copy_home, create_wallet, init_regtest, ok, software_signers


def new_key(seed: bytes) -> str:
    root = bip32.HDKey.from_seed(seed, version=NETWORKS["regtest"]["xprv"])
    account = root.derive("m/48h/1h/0h/2h").to_public()
    return f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pristine")
    config = init_regtest(base)
    create_wallet(config, software_signers(config, base, ("alice", "bob", "carol")))
    for out, new in (("carol", b"\x0d" * 32), ("bob", b"\x0e" * 32)):
        ok(config, "wallet", "rotate", "--remove", out, "--add", new_key(new), "--reason", "left", "--yes")
    return base


# (generation, value): coins paid to generation 1 or 2 (3 is the newest), some barely above dust.
coins = st.lists(st.tuples(st.sampled_from([1, 2]), st.sampled_from([700, 700, 5_000, 250_000])), max_size=4)
generations = st.sampled_from([None, None, 1, 2, 3, 0, -1])
fee_rates = st.sampled_from([1.0, 2.0, 10.0, 60.0, 60.0, None, 0.0, math.nan])


@st.composite
def picks(draw: st.DrawFn) -> list[int | str] | None:
    if draw(st.integers(0, 2)) > 0:
        return None
    return draw(st.lists(st.integers(0, 3) | st.sampled_from(["ab" * 32 + ":0", "x"]), min_size=1, max_size=3))


def pay(wallet: Wallet, chain: MemoryChain, paid: list[tuple[int, int]]) -> list[tuple[str, int]]:
    """Pay each (generation, value) to a fresh address of that generation; (outpoint, generation)."""
    records = {r.generation: r for r in wallet.store.generations()}
    index = {1: 0, 2: 0}
    out = []
    for generation, value in paid:
        desc = wallet.sibling(records[generation]).descriptor
        script = desc.derive(False, index[generation]).script_pubkey
        index[generation] += 1
        tx = Transaction(vin=[TransactionInput(os.urandom(32), 0)], vout=[TransactionOutput(value, Script(script))])
        chain.add_block([tx])
        out.append((f"{tx.txid().hex()}:0", generation))
    wallet.sync()
    return out


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(paid=coins, generation=generations, fee_rate=fee_rates, pick=picks())
def test_migrate_moves_exactly_old_coins_into_the_newest_generation_or_nothing(
    pristine: Path,
    tmp_path_factory: pytest.TempPathFactory,
    paid: list[tuple[int, int]],
    generation: int | None,
    fee_rate: float | None,
    pick: list[int | str] | None,
) -> None:
    chain = MemoryChain()
    with Wallet.open(load_config(copy_home(pristine, tmp_path_factory.mktemp("example"))), chain=chain) as wallet:
        points = pay(wallet, chain, paid)
        utxos = (
            None if pick is None else [points[p][0] if isinstance(p, int) and p < len(points) else str(p) for p in pick]
        )
        records: dict[int | None, int] = {r.id: r.generation for r in wallet.store.generations()}
        before = len(wallet.store.psbts())
        try:
            moves = migrate(wallet, generation=generation, fee_rate=fee_rate, utxos=utxos)
        except L2CustodyError:
            reserved = [u for r in wallet.store.generations() for u in wallet.store.utxos(r.id) if u.reserved_by]
            assert reserved == [] and len(wallet.store.psbts()) == before, "a refused migrate left sessions behind"
            return
        assert wallet.record.generation == 3
        moved: set[str] = set()
        for move in moves:
            assert move.to_generation == 3 and move.from_generation in (1, 2)
            assert generation is None or move.from_generation == generation
            tx = move.session.psbt.tx
            spent = {f"{i.txid.hex()}:{i.vout}" for i in tx.vin}
            of_generation = {p for p, g in points if g == move.from_generation}
            assert spent == (of_generation if utxos is None else set(utxos))
            assert len(tx.vout) == 1 and records[wallet.store.address_owner(tx.vout[0].script_pubkey.data)] == 3
            moved |= spent
        if generation is None and utxos is None:
            assert moved == {p for p, _ in points}  # every older coin, none left behind


def test_the_check_above_is_reached_by_a_migrate_that_is_allowed(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chain = MemoryChain()
    with Wallet.open(load_config(copy_home(pristine, tmp_path_factory.mktemp("example"))), chain=chain) as wallet:
        pay(wallet, chain, [(1, 250_000), (2, 5_000)])
        moves: list[Any] = migrate(wallet, fee_rate=2.0)
        assert sorted((m.from_generation, m.coins) for m in moves) == [(1, 1), (2, 1)]


def test_a_generation_refused_half_way_leaves_no_psbt_of_the_others(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Generation 1's coin pays the fee; generation 2's 700 sat cannot at 60 sat/vB.
    chain = MemoryChain()
    with Wallet.open(load_config(copy_home(pristine, tmp_path_factory.mktemp("example"))), chain=chain) as wallet:
        pay(wallet, chain, [(1, 250_000), (2, 700)])
        with pytest.raises(InsufficientFunds, match="lower the fee rate"):
            migrate(wallet, fee_rate=60.0)
        assert wallet.store.psbts() == []
        assert all(u.reserved_by is None for r in wallet.store.generations() for u in wallet.store.utxos(r.id))
        assert [m.from_generation for m in migrate(wallet, generation=1, fee_rate=60.0)] == [1]
