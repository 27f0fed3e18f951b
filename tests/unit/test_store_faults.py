"""SQLite faults after the store is open (issue 11, class 9): a corrupt page, a file that
is no database, an empty file, a read-only database, a full disk, a lock held too long,
a JSON column nobody wrote. Each is real SQLite behaviour, caused for real (a read-only
open, ``max_page_count`` for a full disk, a second connection holding the lock), and each
comes out as a typed error that says what to do — never a ``sqlite3`` traceback, and
nothing already stored is touched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2custody.errors import L2CustodyError, StoreConflict, StoreDamaged, StoreError, UsageError
from l2custody.store import Store, _connect, json_column, stored_data
from tests.support.cli_runner import fails, init_regtest, ok
from tests.support.wallet import WALLET

PAGE = 4096


def filled_store(path: Path, entries: int = 400) -> None:
    with Store.open(path) as store:
        with store.transaction():
            for n in range(entries):
                store.audit("test", "entry", f"subject-{n}", {"n": n, "pad": "x" * 200})
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_a_corrupt_page_met_in_a_query_is_store_damaged(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path)
    data = bytearray(path.read_bytes())
    last = len(data) // PAGE - 1
    data[last * PAGE : (last + 1) * PAGE] = b"\xa5" * PAGE  # a page of the audit table's b-tree
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match="damaged.*recover"):
        with Store.open(path) as store:
            store.audit_log()


def test_a_file_that_is_no_database_is_store_damaged_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    garbage = b"not a database, just some text an editor saved here\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(StoreDamaged):
        Store.open(path)
    assert path.read_bytes() == garbage


def test_an_empty_store_file_is_damage_not_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.touch()
    with pytest.raises(StoreDamaged, match="empty file"):
        Store.open(path)
    assert path.stat().st_size == 0


def test_a_new_store_is_never_an_empty_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    Store.open(tmp_path / "s.sqlite").close()
    assert (tmp_path / "s.sqlite").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_read_only_database_refuses_writes_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled_store(path, entries=1)
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, factory=type(_connect(tmp_path / "x.sqlite"))
    )
    conn.path = path  # type: ignore[attr-defined]
    store = Store(conn, path)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="read-only.*permissions"):
        store.audit("test", "entry", "x")
    assert len(store.audit_log()) == 1


def test_a_full_disk_is_a_store_error_and_the_transaction_is_undone(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        before = len(store.audit_log())
        pages = store.execute("PRAGMA page_count").fetchone()[0]
        store.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(StoreError, match="full"):
            with store.transaction():
                for n in range(200):
                    store.audit("test", "entry", "x", {"pad": "y" * 2000})
        assert len(store.audit_log()) == before


def test_a_lock_held_too_long_says_another_process_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store, Store.open(path) as other:
        store.execute("PRAGMA busy_timeout = 50")
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreError, match="locked by another l2custody process"):
                with store.transaction():
                    store.audit("test", "entry", "x")
        finally:
            other.execute("ROLLBACK")


def test_a_duplicate_is_a_store_conflict(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_signer("alice", "hwi", None, "deadbeef")
        with pytest.raises(StoreConflict, match="already exists"):
            store.add_signer("alice", "hwi", None, "deadbeef")


@given(st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1))
def test_a_number_beyond_64_bits_is_refused_as_the_users_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, number: int
) -> None:
    # Typed values reach the store (`--generation`, `--birthday`, an index); SQLite keeps 64 bits.
    with Store.open(tmp_path_factory.mktemp("big") / "s.sqlite") as store:
        with pytest.raises(UsageError, match="too large") as lookup:
            store.conn.execute("SELECT 1 WHERE ? = 1", (number,))
        assert str(number)[:30] in str(lookup.value)
        store.conn.execute("CREATE TEMP TABLE numbers (n INTEGER)")
        with pytest.raises(UsageError, match="too large"):
            store.conn.executemany("INSERT INTO numbers VALUES (?)", [(1,), (number,)])


def test_the_cli_refuses_a_generation_beyond_64_bits_with_a_json_error(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    ok(config, "wallet", "import", WALLET["descriptor"])
    err = fails(config, "wallet", "utxos", "--generation", "9" * 23, code=10)
    assert "too large" in err["error"]


def test_a_json_column_that_holds_no_json_is_store_damaged(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store:
        store.add_signer("alice", "hwi", None, "deadbeef")
        store.execute("UPDATE signers SET details = '{not json' WHERE name = 'alice'")
        with pytest.raises(StoreDamaged, match="a signer"):
            store.signer("alice")


@pytest.mark.parametrize("text", ["", "{", "[1,", "nan]", None, b"\xff", "[" * 100_000])
def test_json_column_reads_json_or_says_the_store_is_damaged(text: object) -> None:
    with pytest.raises(StoreDamaged):
        json_column(text, "a record")


def test_a_stored_row_of_the_wrong_shape_is_store_damaged() -> None:
    with pytest.raises(StoreDamaged, match="funding session x"):
        with stored_data("funding session x"):
            {"legs": []}["session"]


def test_the_cli_reports_a_damaged_store_as_a_json_error(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    store = tmp_path / "data" / "l2custody.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"\x00" * 10_000)
    err = fails(config, "wallet", "balance", code=16)
    assert err["kind"] == "store-damaged" and "backup" in err["error"]


def test_every_store_fault_is_one_of_ours() -> None:
    for cls in (StoreConflict, StoreDamaged):
        assert issubclass(cls, StoreError) and issubclass(cls, L2CustodyError)
