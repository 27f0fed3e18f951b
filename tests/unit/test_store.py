"""store.py: migrations, file mode, append-only audit, UTXO bookkeeping, reorg rollback."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from l2custody.errors import (
    SessionNotFound,
    SignerUnavailable,
    StoreConflict,
    StoreError,
    WalletNotFound,
)
from l2custody.migrations import MIGRATIONS
from l2custody.store import AddressRecord, Store, UtxoRecord


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "data" / "l2custody.sqlite")
    yield s
    s.close()


def utxo(txid: str, vout: int = 0, value: int = 1000, height: int | None = 10) -> UtxoRecord:
    return UtxoRecord(txid, vout, value, b"\x00\x20" + b"\x11" * 32, False, 0, height, "h" if height else None)


def test_open_creates_0600_file_in_wal_mode_at_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "d" / "l2custody.sqlite"
    with Store.open(path) as s:
        assert s.version == len(MIGRATIONS)
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_appended_migration_is_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store.open(path).close()
    extended = MIGRATIONS + ["CREATE TABLE later_layer (x INTEGER);"]
    with Store.open(path, migrations=extended) as s:
        assert s.version == len(MIGRATIONS) + 1
        s.execute("INSERT INTO later_layer VALUES (1)")
    with Store.open(path, migrations=extended) as s:  # not re-applied
        assert s.execute("SELECT COUNT(*) FROM later_layer").fetchone()[0] == 1


def test_failing_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store.open(path).close()
    broken = MIGRATIONS + ["CREATE TABLE ok_part (x INTEGER); CREATE TABLE wallets (x INTEGER);"]
    with pytest.raises(StoreError, match=f"migration {len(MIGRATIONS) + 1}"):
        Store.open(path, migrations=broken)
    with Store.open(path) as s:
        assert s.version == len(MIGRATIONS)
        assert s.execute("SELECT name FROM sqlite_master WHERE name = 'ok_part'").fetchone() is None


def test_store_from_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store.open(path, migrations=MIGRATIONS + ["SELECT 1;"]).close()
    with pytest.raises(StoreError, match="upgrade l2custody"):
        Store.open(path)


def test_audit_log_is_append_only(store: Store) -> None:
    first = store.audit("cli", "psbt-created", "session-1", {"fee": 1000})
    store.audit("cli", "psbt-signed", "session-1", {"signer": "alice"})
    with pytest.raises(StoreConflict, match="append-only"):
        store.execute("UPDATE audit SET action = 'nothing' WHERE id = ?", (first,))
    with pytest.raises(StoreConflict, match="append-only"):
        store.execute("DELETE FROM audit")
    log = store.audit_log("session-1")
    assert [e.action for e in log] == ["psbt-created", "psbt-signed"]
    assert log[0].details == {"fee": 1000} and log[0].actor == "cli"


def test_transaction_rolls_back_everything_on_error(store: Store) -> None:
    w = store.add_wallet("w", "wsh(...)", "regtest", 0)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_utxo(w.id, utxo("aa" * 32))
            with store.transaction():  # nested joins the outer one
                store.audit("t", "a", "s")
            raise RuntimeError("crash between steps")
    assert store.utxos(w.id) == []
    assert store.audit_log() == []


def test_wallet_lookup(store: Store) -> None:
    with pytest.raises(WalletNotFound, match="wallet create"):
        store.wallet()
    w = store.add_wallet("treasury", "wsh(x)", "regtest", 100)
    assert store.wallet() == w and store.wallet("treasury") == w and w.birthday == 100
    with pytest.raises(StoreError, match="already exists"):
        store.add_wallet("treasury", "wsh(y)", "regtest", 0)
    with pytest.raises(WalletNotFound, match="'other'"):
        store.wallet("other")


def test_address_branch_state_and_issue(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    assert store.branch_state(w.id, False) == (-1, -1)
    store.add_addresses(w.id, [AddressRecord(False, i, bytes([i]) * 34, f"addr{i}") for i in range(5)])
    store.mark_used(w.id, False, 1)
    store.issue_address(w.id, False, 3, "for bob")
    assert store.branch_state(w.id, False) == (4, 3)
    assert store.branch_state(w.id, True) == (-1, -1)
    assert [a.index for a in store.addresses(w.id, used=True)] == [1]
    rec = store.address_by_script(bytes([3]) * 34)
    assert rec is not None and rec.issued and rec.label == "for bob"


def test_reserve_is_all_or_nothing(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    store.add_utxo(w.id, utxo("aa" * 32))
    store.add_utxo(w.id, utxo("bb" * 32))
    store.reserve_utxos([("aa" * 32, 0)], "s1")
    with pytest.raises(StoreError, match="bb" * 32 + ":0|" + "aa" * 32):
        store.reserve_utxos([("bb" * 32, 0), ("aa" * 32, 0)], "s2")
    assert store.utxo("bb" * 32, 0).reserved_by is None  # type: ignore[union-attr]
    assert [u.txid for u in store.utxos(w.id, include_reserved=False)] == ["bb" * 32]
    assert store.release_utxos("s1") == 1
    assert len(store.utxos(w.id, include_reserved=False)) == 2


def test_rollback_above_undoes_outputs_and_spends_of_orphaned_blocks(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    for h in range(8, 13):
        store.set_block(h, f"hash{h}")
    store.add_utxo(w.id, utxo("aa" * 32, height=9))
    store.add_utxo(w.id, utxo("bb" * 32, height=11))
    store.add_transaction("cc" * 32, b"raw", 12, "hash12")
    store.spend_utxo("aa" * 32, 0, "cc" * 32, 12)
    assert store.rollback_above(10) == (1, 1)
    left = store.utxos(w.id)
    assert [(u.txid, u.spent_by) for u in left] == [("aa" * 32, None)]
    assert store.scanned_tip() == (10, "hash10")
    assert store.transaction_height("cc" * 32) == (True, None)


def test_drop_unconfirmed_forgets_outputs_and_frees_inputs(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    store.add_utxo(w.id, utxo("aa" * 32, height=5))
    store.add_transaction("dd" * 32, b"raw", None, None)
    store.spend_utxo("aa" * 32, 0, "dd" * 32, None)
    store.add_utxo(w.id, utxo("dd" * 32, vout=1, height=None))
    store.drop_unconfirmed("dd" * 32)
    assert [(u.txid, u.spent_by) for u in store.utxos(w.id)] == [("aa" * 32, None)]
    assert store.unconfirmed_txids() == []


def test_confirmation_updates_a_known_utxo(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    store.add_utxo(w.id, utxo("aa" * 32, height=None))
    store.reserve_utxos([("aa" * 32, 0)], "s")
    store.add_utxo(w.id, utxo("aa" * 32, height=20))
    u = store.utxo("aa" * 32, 0)
    assert u is not None and u.height == 20 and u.reserved_by == "s"


def test_confirmations_count_from_the_scanned_tip(store: Store) -> None:
    assert store.confirmations(None) == (0, None)
    store.add_transaction("ee" * 32, b"raw", 12, "hash12")
    store.add_transaction("ff" * 32, b"raw", None, None)
    assert store.confirmations("ee" * 32) == (0, None)  # nothing scanned yet
    store.set_block(14, "hash14")
    assert store.confirmations("ee" * 32) == (3, 12)
    assert store.confirmations("ff" * 32) == (0, None)  # unconfirmed
    assert store.confirmations("00" * 32) == (0, None)  # unknown


def test_psbt_sessions(store: Store) -> None:
    w = store.add_wallet("w", "d", "regtest", 0)
    rec = store.add_psbt("s1", w.id, "send", "created", "cHNidP8=", "fp1", {"amount": 5})
    assert rec.state == "created" and rec.details == {"amount": 5}
    rec = store.update_psbt("s1", state="signed", details={"signers": ["a"]})
    assert rec.state == "signed" and rec.details == {"amount": 5, "signers": ["a"]} and rec.psbt == "cHNidP8="
    assert store.psbt_by_fingerprint("fp1") == rec
    assert store.psbt_by_fingerprint("fp2") is None
    assert [p.id for p in store.psbts(state="signed")] == ["s1"]
    with pytest.raises(SessionNotFound, match="'nope'"):
        store.psbt("nope")
    with pytest.raises(StoreError, match="already exists"):
        store.add_psbt("s1", w.id, "send", "created", "x", "fp", {})


def test_signers(store: Store) -> None:
    s = store.add_signer("alice", "software", "/keys/alice", "deadbeef", {})
    assert store.signer("alice") == s and store.signers() == [s]
    with pytest.raises(StoreError, match="already exists"):
        store.add_signer("alice", "file", "/x", "00000000")
    with pytest.raises(SignerUnavailable, match="signer list"):
        store.signer("bob")


def test_two_connections_share_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    a, b = Store.open(path), Store.open(path)
    try:
        with a.transaction():
            a.audit("a", "x", "y")
        assert [e.actor for e in b.audit_log()] == ["a"]
    finally:
        a.close()
        b.close()
