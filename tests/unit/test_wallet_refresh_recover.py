"""`wallet refresh` and `wallet recover` on a recovery wallet (2-of-3, heir alone after 10 blocks).

Run as an operator runs them (the CLI) where no chain is needed, and through the library
on a MemoryChain (real blocks and transactions, no node) where it is; the same spends
judged by btcd are in tests/integration/test_wallet_recovery.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh

from l2custody.chain.memory import MemoryChain
from l2custody.config import load_config
from l2custody.errors import PolicyViolation, UsageError
from l2custody.wallet import recovery
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import fails, init_regtest, ok, software_signers
from tests.support.recovery import receive

DELAY = 10


def foreign_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = init_regtest(tmp_path)
    keys = software_signers(path, tmp_path, ("alice", "bob", "carol", "heir"))
    ok(
        path,
        "wallet",
        "create",
        "-k",
        "2",
        *sum((["--key", k] for k in keys[:3]), []),
        "--recovery",
        f"{keys[3]}@{DELAY}",
    )
    return path


@pytest.fixture
def chain() -> MemoryChain:
    chain = MemoryChain()
    for _ in range(5):
        chain.add_block([])
    return chain


def sign_and_broadcast(config: Path, wallet: Wallet, session_psbt, signers: tuple[str, ...], tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    file = tmp_path / "spend.psbt"
    file.write_bytes(session_psbt.serialize())
    for name in signers:
        ok(config, "psbt", "sign", str(file), "--signer", name)
    return wallet.broadcast(load_psbt(file.read_bytes())).txid


def test_refresh_restarts_the_clock_of_coins_near_their_recovery_path(
    config: Path, chain: MemoryChain, tmp_path: Path
) -> None:
    with Wallet.open(load_config(config), chain=chain) as wallet:
        old = receive(wallet, chain, 300_000)  # confirmed at height 6: heir may spend it in block 16
        for _ in range(6):
            chain.add_block([])
        young = receive(wallet, chain, 100_000)  # height 13: opens at 23
        wallet.sync()
        # tip 13: the old coin opens in 2 blocks, the young one in 9; a margin of 5 picks the old one only
        plan = recovery.refresh(wallet, margin=5, fee_rate=2)
        assert [c.outpoint for c in plan.coins] == [old] and plan.coins[0].blocks_left == 2
        assert wallet.store.psbt(plan.session.id).kind == "refresh"
        assert plan.session.summary.outputs[0].ours  # back to the wallet itself
        txid = sign_and_broadcast(config, wallet, plan.session.psbt, ("alice", "bob"), tmp_path)
        chain.add_block()
        wallet.sync()
        coins = {u.outpoint: u for u in wallet.utxos()}
        assert old not in coins and young in coins and f"{txid}:0" in coins
    # `wallet utxos --json` names each coin as --utxo takes it
    assert {u["outpoint"] for u in ok(config, "wallet", "utxos")} == set(coins)
    with Wallet.open(load_config(config), chain=chain) as wallet:
        # the refreshed coin's clock starts at its own block
        fresh = recovery.coin_locks(wallet, chain.tip_height())
        assert {c.outpoint: c.opens_at for c in fresh}[f"{txid}:0"] == chain.tip_height() + DELAY
        with pytest.raises(UsageError, match="nothing to refresh yet"):
            recovery.refresh(wallet, margin=5, fee_rate=2)


def test_recover_spends_open_coins_with_the_heir_alone_and_names_the_locked_ones(
    config: Path, chain: MemoryChain, tmp_path: Path
) -> None:
    dest = foreign_address()
    config.write_text(config.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]'))
    with Wallet.open(load_config(config), chain=chain) as wallet:
        old = receive(wallet, chain, 300_000)  # height 6
        with pytest.raises(UsageError, match=r"opens at block 16 \(9 blocks from now\)"):
            recovery.recover(wallet, key="heir", to=dest, fee_rate=2)
        for _ in range(8):
            chain.add_block([])
        young = receive(wallet, chain, 100_000)  # height 15: opens at 25
        plan = recovery.recover(wallet, key="heir", to=dest, fee_rate=2)
        assert [c.outpoint for c in plan.coins] == [old] and [c.outpoint for c in plan.locked] == [young]
        assert plan.delay == DELAY and plan.threshold == 1
        assert all(i.sequence == DELAY for i in plan.session.psbt.tx.vin)  # BIP-68: the path's delay
        with pytest.raises(UsageError, match="cannot spend these yet"):
            recovery.recover(wallet, key="heir", to=dest, fee_rate=2, utxos=[young])
        # the heir alone completes it: the inputs' nSequence opens the recovery path
        sign_and_broadcast(config, wallet, plan.session.psbt, ("heir",), tmp_path)
        chain.add_block()
        wallet.sync()
        assert {u.outpoint for u in wallet.utxos()} == {young}
        assert wallet.store.psbt(plan.session.id).state == "confirmed"


def test_recover_refuses_what_it_cannot_do_and_says_why(config: Path, chain: MemoryChain) -> None:
    with Wallet.open(load_config(config), chain=chain) as wallet:
        receive(wallet, chain, 300_000)
        for _ in range(12):
            chain.add_block([])
        with pytest.raises(PolicyViolation, match="allowed_destinations"):
            recovery.recover(wallet, key="heir", to=foreign_address(), fee_rate=2)
        with pytest.raises(UsageError, match="primary path"):
            recovery.recover(wallet, key="alice", to=foreign_address(), fee_rate=2)
        with pytest.raises(UsageError, match="no key of a recovery path"):
            recovery.recover(wallet, key="deadbeef", to=foreign_address(), fee_rate=2)
        # a mainnet address never reaches the signers
        err = fails(config, "wallet", "recover", "--key", "heir", "--to", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
        assert "mainnet" in err["error"]


def test_a_wallet_without_recovery_paths_has_nothing_to_refresh_or_recover(tmp_path: Path) -> None:
    path = init_regtest(tmp_path)
    keys = software_signers(path, tmp_path, ("alice", "bob", "carol"))
    ok(path, "wallet", "create", "-k", "2", *sum((["--key", k] for k in keys), []))
    assert "has no recovery path" in fails(path, "wallet", "refresh")["error"]
    assert (
        "has no recovery path" in fails(path, "wallet", "recover", "--key", "alice", "--to", foreign_address())["error"]
    )
