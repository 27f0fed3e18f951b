"""chain/scanner.py on a MemoryChain (real serialized blocks, no node).

The same flows run against a real btcd in tests/integration/test_wallet*.py;
here the chain is driven block by block to pin down gap windows, spends,
reorgs, resumption, the birthday and the mempool.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.chain.scanner import Scanner
from l2custody.errors import ChainError
from l2custody.store import Store


def derive(change: bool, index: int) -> tuple[bytes, str]:
    script = b"\x00\x20" + hashlib.sha256(f"{int(change)}/{index}".encode()).digest()
    return script, f"addr-{int(change)}-{index}"


def pay(*outputs: tuple[bytes, int], spend: list[tuple[str, int]] | None = None) -> Transaction:
    """A transaction paying ``outputs``; spends ``spend`` outpoints or a random foreign one."""
    prevouts = spend or [(os.urandom(32).hex(), 0)]
    vin = [TransactionInput(bytes.fromhex(txid), vout, sequence=0xFFFFFFFD) for txid, vout in prevouts]
    vout = [TransactionOutput(value, Script(script)) for script, value in outputs]
    return Transaction(vin=vin, vout=vout)


def ours(index: int, change: bool = False) -> bytes:
    return derive(change, index)[0]


FOREIGN = b"\x00\x14" + b"\x42" * 20


@pytest.fixture
def setup(tmp_path: Path):
    store = Store.open(tmp_path / "s.sqlite")
    wallet = store.add_wallet("w", "test", "regtest", 0)
    chain = MemoryChain()

    def scanner(gap: int = 20, birthday: int = 0) -> Scanner:
        return Scanner(store, wallet.id, chain, derive, gap_limit=gap, birthday=birthday)

    yield store, wallet.id, chain, scanner
    store.close()


def balance(store: Store, wallet_id: int) -> tuple[int, int]:
    utxos = store.utxos(wallet_id)
    return (
        sum(u.value for u in utxos if u.height is not None),
        sum(u.value for u in utxos if u.height is None),
    )


def test_payment_is_found_and_recorded_with_its_raw_tx(setup) -> None:
    store, wid, chain, scanner = setup
    tx = pay((ours(0), 50_000), (FOREIGN, 1000))
    chain.add_block([tx])
    result = scanner().sync()
    assert (result.blocks, result.received, result.tip_height) == (2, 1, 1)
    [u] = store.utxos(wid)
    assert (u.txid, u.vout, u.value, u.height, u.change, u.index) == (tx.txid().hex(), 0, 50_000, 1, False, 0)
    assert store.transaction_raw(u.txid) == tx.serialize()
    assert store.addresses(wid, used=True)[0].index == 0


def test_gap_window_extends_as_addresses_get_used(setup) -> None:
    store, wid, chain, scanner = setup
    chain.add_block([pay((ours(4), 1))])  # inside the first window (0..4 with gap 5)
    chain.add_block([pay((ours(9), 2))])  # inside once 4 is used (window 0..9)
    chain.add_block([pay((ours(20), 4))])  # beyond 9 + 5: missed, like any gap-limit wallet
    chain.add_block([pay((ours(3, change=True), 8))])  # change branch is watched too
    scanner(gap=5).sync()
    assert sorted(u.value for u in store.utxos(wid)) == [1, 2, 8]
    assert store.branch_state(wid, False) == (14, 9)
    assert store.branch_state(wid, True) == (8, 3)


def test_spends_of_our_outputs_are_detected(setup) -> None:
    store, wid, chain, scanner = setup
    fund = pay((ours(0), 70_000))
    chain.add_block([fund])
    # spent in the same block as its change is created, and change spent in the next
    spend = pay((FOREIGN, 40_000), (ours(0, change=True), 29_000), spend=[(fund.txid().hex(), 0)])
    chain.add_block([spend])
    result = scanner().sync()
    assert result.spent == 1 and result.received == 2
    unspent = store.utxos(wid)
    assert [(u.txid, u.change) for u in unspent] == [(spend.txid().hex(), True)]
    spent = store.utxo(fund.txid().hex(), 0)
    assert spent is not None and spent.spent_by == spend.txid().hex() and spent.spent_height == 2


def test_chain_of_spends_within_one_block(setup) -> None:
    store, wid, chain, scanner = setup
    a = pay((ours(0), 10_000))
    b = pay((ours(1), 9_000), spend=[(a.txid().hex(), 0)])
    chain.add_block([a, b])
    scanner().sync()
    assert [u.value for u in store.utxos(wid)] == [9_000]


def test_sync_resumes_where_it_stopped(setup) -> None:
    store, wid, chain, scanner = setup
    for _ in range(5):
        chain.add_block([])
    assert scanner().sync().blocks == 6  # genesis + 5
    chain.add_block([pay((ours(2), 5))])
    result = scanner().sync()
    assert (result.start_height, result.blocks, result.received) == (6, 1, 1)
    assert scanner().sync().blocks == 0


def test_birthday_skips_older_blocks(setup) -> None:
    store, wid, chain, scanner = setup
    chain.add_block([pay((ours(0), 1))])  # height 1, before the birthday
    chain.add_block([])
    chain.add_block([pay((ours(1), 2))])  # height 3
    result = scanner(birthday=2).sync()
    assert result.start_height == 2 and result.blocks == 2
    assert [u.value for u in store.utxos(wid)] == [2]


def test_reorg_removes_funding_and_rescan_finds_it_again(setup) -> None:
    store, wid, chain, scanner = setup
    fund = pay((ours(0), 100_000))
    chain.add_block([])
    chain.add_block([fund])  # height 2
    chain.add_block([])
    scanner().sync()
    assert balance(store, wid) == (100_000, 0)

    chain.reorg(1)  # blocks 2 and 3 orphaned; the longer branch does not have the tx
    chain.add_block([])
    chain.add_block([])
    chain.add_block([])
    result = scanner().sync()
    assert result.reorg_fork == 1
    assert balance(store, wid) == (0, 0)
    assert [e.action for e in store.audit_log()][0] == "reorg"

    chain.add_block([fund])  # confirmed again, higher up
    scanner().sync()
    [u] = store.utxos(wid)
    assert u.height == 5 and u.block_hash == chain.hashes[5]


def test_reorg_undoes_a_spend(setup) -> None:
    store, wid, chain, scanner = setup
    fund = pay((ours(0), 100_000))
    chain.add_block([fund])
    chain.add_block([pay((FOREIGN, 99_000), spend=[(fund.txid().hex(), 0)])])
    scanner().sync()
    assert store.utxos(wid) == []
    chain.reorg(1)
    chain.add_block([])
    chain.add_block([])
    scanner().sync()
    assert [u.value for u in store.utxos(wid)] == [100_000]


def test_whole_history_replaced_rescans_from_birthday(setup) -> None:
    store, wid, chain, scanner = setup
    chain.add_block([pay((ours(0), 1))])
    scanner().sync()
    fresh = MemoryChain()  # a different chain from genesis on (a fresh regtest)
    chain.blocks[:], chain.hashes[:] = fresh.blocks, fresh.hashes
    chain.add_block([pay((ours(1), 2))])
    result = scanner().sync()
    assert result.reorg_fork == -1
    assert [u.value for u in store.utxos(wid)] == [2]


def test_reorg_below_kept_history_is_an_error(setup) -> None:
    store, wid, chain, scanner = setup
    for _ in range(5):
        chain.add_block([])
    scanner().sync()
    with store.transaction():
        store.prune_blocks(4)  # as if blocks 0..3 were older than REORG_DEPTH
    chain.reorg(2)
    for _ in range(4):
        chain.add_block([])
    with pytest.raises(ChainError, match="deeper than"):
        scanner().sync()


def test_mempool_payment_is_unconfirmed_then_confirmed(setup) -> None:
    store, wid, chain, scanner = setup
    tx = pay((ours(0), 30_000))
    chain.broadcast(tx.serialize())
    result = scanner().sync()
    assert result.received == 1
    assert balance(store, wid) == (0, 30_000)
    chain.add_block()  # mines the mempool
    scanner().sync()
    assert balance(store, wid) == (30_000, 0)


def test_unconfirmed_tx_that_left_the_mempool_is_forgotten(setup) -> None:
    store, wid, chain, scanner = setup
    fund = pay((ours(0), 50_000))
    chain.add_block([fund])
    spend = pay((FOREIGN, 49_000), spend=[(fund.txid().hex(), 0)])
    chain.broadcast(spend.serialize())
    scanner().sync()
    assert balance(store, wid) == (0, 0)
    assert store.utxo(fund.txid().hex(), 0).spent_by == spend.txid().hex()  # type: ignore[union-attr]
    chain.mempool.clear()  # evicted
    scanner().sync()
    assert balance(store, wid) == (50_000, 0)
    assert "dropped-unconfirmed" in [e.action for e in store.audit_log()]


def test_progress_is_reported_per_batch(setup) -> None:
    store, wid, chain, scanner = setup
    for _ in range(45):
        chain.add_block([])
    seen: list[tuple[int, int]] = []
    scanner().sync(progress=lambda h, tip: seen.append((h, tip)))
    assert seen == [(19, 45), (39, 45), (45, 45)]


def test_corrupt_block_is_refused(setup) -> None:
    store, wid, chain, scanner = setup
    chain.add_block([pay((ours(0), 1))])
    raw = bytearray(chain.blocks[1])
    raw[79] ^= 1  # the header (nonce) no longer hashes to the id the chain announced
    chain.blocks[1] = bytes(raw)
    with pytest.raises(ChainError, match="does not hash"):
        scanner().sync()
