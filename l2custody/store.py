"""The SQLite store: one file per config (``data_dir/l2custody.sqlite``).

WAL mode, a busy timeout so several l2custody processes can share it, file
mode 0600, and versioned migrations: ``MIGRATIONS`` (in
:mod:`l2custody.migrations`) is an append-only list of SQL
scripts; entry *i* brings the schema to version *i + 1* (``PRAGMA
user_version``). Later layers add their tables by appending one entry —
never by editing an old one.

The audit log is append-only: SQLite triggers refuse UPDATE and DELETE on it.
Write methods that belong together run inside :meth:`Store.transaction`, so
what a later step depends on is on disk before that step runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from l2custody.errors import (
    SessionNotFound,
    SignerUnavailable,
    StoreConflict,
    StoreDamaged,
    StoreError,
    UsageError,
    WalletNotFound,
)
from l2custody.migrations import MIGRATIONS
from l2custody.private_files import private_dir
from l2custody.user_paths import why

# --- records -------------------------------------------------------------------


@dataclass(frozen=True)
class WalletRecord:
    """One generation of the store's wallet. ``name`` is the wallet's name (the same for
    every generation); ``wallet rotate`` adds generation 2, 3 ... (``details`` says why)."""

    id: int
    name: str
    descriptor: str
    network: str
    birthday: int
    created: float
    generation: int = 1
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressRecord:
    change: bool
    index: int
    script: bytes
    address: str
    used: bool = False
    issued: bool = False
    label: str | None = None


@dataclass(frozen=True)
class UtxoRecord:
    txid: str
    vout: int
    value: int
    script: bytes
    change: bool
    index: int
    height: int | None  # None: unconfirmed
    block_hash: str | None
    spent_by: str | None = None
    spent_height: int | None = None
    reserved_by: str | None = None

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True)
class PsbtRecord:
    id: str
    kind: str  # "send", "funding", "sweep", "imported" ...
    state: str  # "created", "verified", "signed", "finalized", "broadcast", "aborted" ...
    psbt: str  # base64
    fingerprint: str
    txid: str | None
    details: dict[str, Any]
    created: float
    updated: float


@dataclass(frozen=True)
class SignerRecord:
    name: str
    kind: str  # "software" | "file" | "hwi"
    path: str | None
    fingerprint: str  # 8 hex
    details: dict[str, Any]
    created: float


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: float
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


# --- SQLite errors, translated where they happen ----------------------------------------
def translate_sqlite_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """A ``sqlite3`` error of the store at ``path`` as a typed error saying what to do.

    Every statement goes through :class:`_Connection`, so a corrupt page met in the middle
    of a query, a read-only file, a full disk or a lock held too long ends here, never in
    a traceback."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError) or name.startswith("SQLITE_CONSTRAINT"):
        return StoreConflict(f"the store {path} refused the change: {text}")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return StoreDamaged(
            f"the store {path} is damaged ({text}). Stop every l2custody process, keep a copy of the file, "
            f"then restore it from a backup or recover it with `sqlite3 {path} .recover`; nothing more was written"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return StoreError(
            f"the store {path} is read-only for this user ({text}): check the permissions of the file and its "
            "folder, or run l2custody as the user who owns them; the change was not saved"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(f"the disk holding the store {path} is full: free space and retry; the change was not saved")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError(
            f"the store {path} is locked by another l2custody process (e.g. `watch` writing); retry in a moment"
        )
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
        return StoreError(
            f"the store {path} could not be read or written ({text}): check the disk and that the data "
            "directory still exists; the change was not saved"
        )
    return StoreError(f"the store {path}: {text}")


class _Cursor(sqlite3.Cursor):
    """Rows are read lazily: a damaged page may be met at any fetch, not only at execute."""

    path: Path

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from None

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from None


class _Connection(sqlite3.Connection):
    """The store's connection: every statement's ``sqlite3`` error becomes a StoreError."""

    path: Path = Path("?")

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self._run(lambda c: c.execute(sql, parameters), parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> _Cursor:
        rows = list(parameters)
        return self._run(lambda c: c.executemany(sql, rows), [v for row in rows for v in row])

    def _run(self, statement: Callable[[_Cursor], object], values: Any) -> _Cursor:
        cursor = self.cursor(_Cursor)
        cursor.path = self.path
        try:
            statement(cursor)
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from None
        except OverflowError:
            raise too_large(values) from None
        return cursor


def too_large(parameters: Any) -> UsageError:
    """A number beyond SQLite's 64 bits, looked up or stored: only a value typed by
    someone gets there (a generation, a height, an index), so it is refused as theirs."""
    values = parameters.values() if isinstance(parameters, dict) else parameters
    big = [v for v in values if isinstance(v, int) and not -(2**63) <= v < 2**63]
    shown = f" ({str(big[0])[:30]})" if big else ""
    return UsageError(
        f"a number given is too large{shown}: numbers l2custody keeps (generations, heights, indexes, "
        "amounts) are below 2^63; check the value"
    )


def json_column(text: Any, what: str, path: Path | None = None) -> Any:
    """A JSON column's value; StoreDamaged when it holds no JSON (l2custody writes it)."""
    with stored_data(what, path):
        return json.loads(text)


@contextmanager
def stored_data(what: str, path: Path | None = None) -> Iterator[None]:
    """Decode a stored row into its record: data not in the shape l2custody writes (a
    column edited by hand, a half-restored file) is StoreDamaged naming ``what``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
        where = f"the store {path}" if path else "the store"
        raise StoreDamaged(
            f"{where} holds malformed data in {what} ({type(exc).__name__}: {str(exc)[:80]}), not what l2custody "
            "writes; was it edited by hand? Restore the store from a backup"
        ) from None


# --- the store -----------------------------------------------------------------


class Store:
    """One open SQLite database. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._depth = 0
        self._identity = _identity(path)

    @classmethod
    def open(cls, path: Path | str, migrations: list[str] | None = None) -> "Store":
        """Open (creating, mode 0600) the database at ``path`` and migrate it.

        Raises StoreError if the file cannot be opened or was written by a
        newer l2custody (schema version above ours).
        """
        path = Path(path)
        migrations = MIGRATIONS if migrations is None else migrations
        try:
            private_dir(path.parent)
            if not os.path.lexists(path):
                _create(path, migrations)
            elif os.path.getsize(path) == 0:
                raise StoreDamaged(
                    f"the store {path} is an empty file: a store l2custody made always holds its schema, so it was "
                    "truncated or made by something else. Restore it from a backup; to start a new, empty store, "
                    "move the file away"
                )
            conn = _connect(path)
            _wal(conn)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=FULL")
        except OSError as exc:
            raise StoreError(f"cannot open the store {path}: {why(exc)}; check the data_dir in the config") from None
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, path) from None
        store = cls(conn, path)
        store.migrate(migrations)
        return store

    def close(self) -> None:
        self.conn.close()

    def check_present(self) -> None:
        """StoreError unless ``path`` is still the file this connection writes. With the file
        (or its directory) deleted or replaced, SQLite keeps writing to the unlinked file and
        every write would be lost when the process ends."""
        now = _identity(self.path)
        if now != self._identity:
            what = "was deleted" if now is None else "was replaced by another file"
            raise StoreError(
                f"the store {self.path} {what} while l2custody had it open; nothing more is written to "
                "it. Restore the store from its backup (or put the directory back) and restart"
            )

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's lock before StoreError ("locked by another l2custody process")."""
        self.conn.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- schema ----------------------------------------------------------------

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: list[str]) -> None:
        """Apply the migrations above the current version, each atomically.

        Several processes may open a new or older store at once (``watch`` and a cron
        ``report`` after an upgrade): each step reads the version under the write lock,
        so exactly one process applies it and the others find it done.
        """
        if self.version == len(migrations):
            return  # the usual case: nothing to do, no lock taken
        while True:
            self.conn.execute("BEGIN IMMEDIATE")
            current = self.version
            if current > len(migrations):
                self.conn.execute("ROLLBACK")
                raise StoreError(
                    f"the store {self.path} has schema version {current}, newer than this "
                    f"l2custody knows ({len(migrations)}); upgrade l2custody"
                )
            if current == len(migrations):
                self.conn.execute("COMMIT")
                return
            number = current + 1
            try:
                for statement in _statements(migrations[number - 1]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")
                self.conn.execute("COMMIT")
            except StoreError as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise StoreError(f"migration {number} of {self.path} failed: {exc.message}") from None

    # --- transactions ----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of writes (BEGIN IMMEDIATE ... COMMIT); nests by joining."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.check_present()
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            try:
                self.conn.execute("ROLLBACK")
            except StoreError:  # the first error says more; SQLite may have rolled back already
                pass
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (for later layers' own tables)."""
        return self.conn.execute(sql, tuple(params))

    # --- audit -------------------------------------------------------------------

    def audit(self, actor: str, action: str, subject: str, details: dict[str, Any] | None = None) -> int:
        """Append one entry to the audit log; returns its id."""
        if not self._depth:
            self.check_present()
        cur = self.conn.execute(
            "INSERT INTO audit (ts, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, subject, _dumps(details or {})),
        )
        return int(cur.lastrowid or 0)

    def last_audit_id(self) -> int:
        """The id of the newest audit entry (0 for an empty log)."""
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0])

    def audited_since(self, after_id: int, actor: str, actions: Iterable[str]) -> bool:
        """Whether ``actor`` wrote one of ``actions`` to the audit log after entry ``after_id``."""
        wanted = tuple(actions)
        marks = ", ".join("?" for _ in wanted)
        row = self.conn.execute(
            f"SELECT 1 FROM audit WHERE id > ? AND actor = ? AND action IN ({marks}) LIMIT 1",
            (after_id, actor, *wanted),
        ).fetchone()
        return row is not None

    def audit_log(self, subject: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first (optionally for one subject; ``limit`` newest)."""
        sql = "SELECT id, ts, actor, action, subject, details FROM audit"
        params: list[Any] = []
        if subject is not None:
            sql += " WHERE subject = ?"
            params.append(subject)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self.conn.execute(sql, params).fetchall()
        return [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], json_column(r[5], "the audit log", self.path))
            for r in reversed(rows)
        ]

    # --- wallets -----------------------------------------------------------------

    def add_wallet(
        self,
        name: str,
        descriptor: str,
        network: str,
        birthday: int,
        generation: int = 1,
        details: dict[str, Any] | None = None,
    ) -> WalletRecord:
        """Add a wallet (generation 1) or the next generation of one (``wallet rotate``)."""
        row_name = name if generation == 1 else f"{name}#{generation}"
        try:
            cur = self.conn.execute(
                "INSERT INTO wallets (name, lineage, generation, descriptor, network, birthday, created, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row_name, name, generation, descriptor, network, birthday, time.time(), _dumps(details or {})),
            )
        except StoreConflict:
            what = f"a wallet named {name!r}" if generation == 1 else f"generation {generation} of {name!r}"
            raise StoreConflict(f"{what} already exists in {self.path}") from None
        return self.wallet(wallet_id=int(cur.lastrowid or 0))

    def wallet(
        self, name: str | None = None, wallet_id: int | None = None, generation: int | None = None
    ) -> WalletRecord:
        """A wallet's newest generation (by name, or the only wallet), a given ``generation`` of
        it, or the generation with id ``wallet_id``. Raises WalletNotFound."""
        if wallet_id is not None:
            rows = self.conn.execute(_WALLET_SELECT + " WHERE id = ?", (wallet_id,)).fetchall()
        else:
            lineage = name
            if lineage is None:
                first = self.conn.execute("SELECT lineage FROM wallets ORDER BY id LIMIT 1").fetchone()
                lineage = first[0] if first else None
            sql = _WALLET_SELECT + " WHERE lineage = ?"
            params: list[Any] = [lineage]
            if generation is not None:
                sql += " AND generation = ?"
                params.append(generation)
            rows = self.conn.execute(sql + " ORDER BY generation DESC LIMIT 1", params).fetchall()
        if not rows:
            if generation is not None and wallet_id is None:
                known = ", ".join(str(g.generation) for g in self.generations(name))
                raise WalletNotFound(f"the wallet has no generation {generation} (it has {known or 'none'})")
            what = f"named {name!r} " if name else ""
            raise WalletNotFound(
                f"no wallet {what}in {self.path}; create one with `l2custody wallet create` "
                "or `l2custody wallet import`"
            )
        return self._wallet(rows[0])

    def wallets(self) -> list[WalletRecord]:
        """Every wallet row: each generation of each wallet, oldest first."""
        return [self._wallet(r) for r in self.conn.execute(_WALLET_SELECT + " ORDER BY id")]

    def generations(self, name: str | None = None) -> list[WalletRecord]:
        """Every generation of the wallet ``name`` (the only wallet by default), oldest first."""
        rows = self.conn.execute(
            _WALLET_SELECT + " WHERE lineage = COALESCE(?, (SELECT lineage FROM wallets ORDER BY id LIMIT 1))"
            " ORDER BY generation",
            (name,),
        )
        return [self._wallet(r) for r in rows]

    def _wallet(self, r: tuple[Any, ...]) -> WalletRecord:
        details = json_column(r[7], f"wallet {r[1]} generation {r[6]}", self.path)
        return WalletRecord(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), details)

    # --- addresses ---------------------------------------------------------------

    def add_addresses(self, wallet_id: int, records: Iterable[AddressRecord]) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO addresses (wallet_id, change, idx, script, address, used, issued, label)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (wallet_id, int(a.change), a.index, a.script, a.address, int(a.used), int(a.issued), a.label)
                for a in records
            ],
        )

    def addresses(self, wallet_id: int, change: bool | None = None, used: bool | None = None) -> list[AddressRecord]:
        sql = "SELECT change, idx, script, address, used, issued, label FROM addresses WHERE wallet_id = ?"
        params: list[Any] = [wallet_id]
        if change is not None:
            sql += " AND change = ?"
            params.append(int(change))
        if used is not None:
            sql += " AND used = ?"
            params.append(int(used))
        rows = self.conn.execute(sql + " ORDER BY change, idx", params)
        return [_address(r) for r in rows]

    def address_owner(self, script: bytes) -> int | None:
        """The id of the wallet generation that derived ``script``, or None if no generation did."""
        row = self.conn.execute("SELECT wallet_id FROM addresses WHERE script = ?", (script,)).fetchone()
        return int(row[0]) if row else None

    def all_addresses(self) -> list[tuple[int, AddressRecord]]:
        """Every derived address of every generation, with the generation's wallet id."""
        rows = self.conn.execute(
            "SELECT wallet_id, change, idx, script, address, used, issued, label FROM addresses"
            " ORDER BY wallet_id, change, idx"
        )
        return [(int(r[0]), _address(r[1:])) for r in rows]

    def address_by_script(self, script: bytes) -> AddressRecord | None:
        row = self.conn.execute(
            "SELECT change, idx, script, address, used, issued, label FROM addresses WHERE script = ?", (script,)
        ).fetchone()
        return _address(row) if row else None

    def mark_used(self, wallet_id: int, change: bool, index: int) -> None:
        self.conn.execute(
            "UPDATE addresses SET used = 1 WHERE wallet_id = ? AND change = ? AND idx = ?",
            (wallet_id, int(change), index),
        )

    def issue_address(self, wallet_id: int, change: bool, index: int, label: str | None) -> None:
        self.conn.execute(
            "UPDATE addresses SET issued = 1, label = COALESCE(?, label) WHERE wallet_id = ? AND change = ? AND idx = ?",
            (label, wallet_id, int(change), index),
        )

    def branch_state(self, wallet_id: int, change: bool) -> tuple[int, int]:
        """(highest derived index, highest used-or-issued index) of one branch; -1 if none."""
        row = self.conn.execute(
            "SELECT COALESCE(MAX(idx), -1), COALESCE(MAX(CASE WHEN used OR issued THEN idx END), -1)"
            " FROM addresses WHERE wallet_id = ? AND change = ?",
            (wallet_id, int(change)),
        ).fetchone()
        return int(row[0]), int(row[1])

    # --- transactions and UTXOs -------------------------------------------------------

    def add_transaction(self, txid: str, raw: bytes, height: int | None, block_hash: str | None) -> None:
        """Record a transaction that touches the wallet (keeps first_seen; updates its block)."""
        self.conn.execute(
            "INSERT INTO transactions (txid, raw, height, block_hash, first_seen) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(txid) DO UPDATE SET height = excluded.height, block_hash = excluded.block_hash",
            (txid, raw, height, block_hash, time.time()),
        )

    def transaction_raw(self, txid: str) -> bytes | None:
        row = self.conn.execute("SELECT raw FROM transactions WHERE txid = ?", (txid,)).fetchone()
        return bytes(row[0]) if row else None

    def transaction_height(self, txid: str) -> tuple[bool, int | None]:
        """(known, height) of a recorded transaction; height None = unconfirmed."""
        row = self.conn.execute("SELECT height FROM transactions WHERE txid = ?", (txid,)).fetchone()
        return (True, row[0]) if row else (False, None)

    def confirmations(self, txid: str | None) -> tuple[int, int | None]:
        """(confirmations, block height) of a recorded transaction on the scanned
        chain; (0, None) without a txid, for an unknown or unconfirmed one, or
        before the first scan."""
        if not txid:
            return 0, None
        known, height = self.transaction_height(txid)
        tip = self.scanned_tip()
        if not known or height is None or tip is None:
            return 0, None
        return max(tip[0] - height + 1, 0), height

    def unconfirmed_txids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT txid FROM transactions WHERE height IS NULL")]

    def add_utxo(self, wallet_id: int, u: UtxoRecord) -> None:
        """Record an output paying the wallet; a known one gets its (new) confirmation."""
        self.conn.execute(
            "INSERT INTO utxos (txid, vout, wallet_id, value, script, change, idx, height, block_hash,"
            " spent_by, spent_height, reserved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(txid, vout) DO UPDATE SET height = excluded.height, block_hash = excluded.block_hash",
            (
                u.txid,
                u.vout,
                wallet_id,
                u.value,
                u.script,
                int(u.change),
                u.index,
                u.height,
                u.block_hash,
                u.spent_by,
                u.spent_height,
                u.reserved_by,
            ),
        )

    def spend_utxo(self, txid: str, vout: int, spent_by: str, spent_height: int | None) -> None:
        self.conn.execute(
            "UPDATE utxos SET spent_by = ?, spent_height = ?, reserved_by = NULL WHERE txid = ? AND vout = ?",
            (spent_by, spent_height, txid, vout),
        )

    def utxos(self, wallet_id: int, unspent: bool = True, include_reserved: bool = True) -> list[UtxoRecord]:
        sql = (
            "SELECT txid, vout, value, script, change, idx, height, block_hash, spent_by, spent_height,"
            " reserved_by FROM utxos WHERE wallet_id = ?"
        )
        if unspent:
            sql += " AND spent_by IS NULL"
        if not include_reserved:
            sql += " AND reserved_by IS NULL"
        rows = self.conn.execute(sql + " ORDER BY height IS NULL, height, txid, vout", (wallet_id,))
        return [_utxo(r) for r in rows]

    def utxo(self, txid: str, vout: int) -> UtxoRecord | None:
        row = self.conn.execute(
            "SELECT txid, vout, value, script, change, idx, height, block_hash, spent_by, spent_height,"
            " reserved_by FROM utxos WHERE txid = ? AND vout = ?",
            (txid, vout),
        ).fetchone()
        return _utxo(row) if row else None

    def reserve_utxos(self, outpoints: Iterable[tuple[str, int]], session_id: str) -> None:
        """Reserve unspent, unreserved UTXOs for a session; all or nothing (StoreError)."""
        with self.transaction():
            for txid, vout in outpoints:
                cur = self.conn.execute(
                    "UPDATE utxos SET reserved_by = ? WHERE txid = ? AND vout = ? AND spent_by IS NULL"
                    " AND (reserved_by IS NULL OR reserved_by = ?)",
                    (session_id, txid, vout, session_id),
                )
                if cur.rowcount != 1:
                    raise StoreError(
                        f"UTXO {txid}:{vout} is spent, unknown or reserved by another session; "
                        "run `l2custody wallet utxos` to see what is free"
                    )

    def release_utxos(self, session_id: str) -> int:
        """Release every UTXO reserved by ``session_id``; returns how many."""
        cur = self.conn.execute("UPDATE utxos SET reserved_by = NULL WHERE reserved_by = ?", (session_id,))
        return cur.rowcount

    def rollback_above(self, height: int) -> tuple[int, int]:
        """Undo what blocks above ``height`` did (a reorg): returns (removed utxos, unspent).

        Outputs created above are deleted and spends above are undone; the
        transactions above become unconfirmed until a rescan finds them again.
        """
        with self.transaction():
            removed = self.conn.execute("DELETE FROM utxos WHERE height > ?", (height,)).rowcount
            unspent = self.conn.execute(
                "UPDATE utxos SET spent_by = NULL, spent_height = NULL WHERE spent_height > ?", (height,)
            ).rowcount
            self.conn.execute("UPDATE transactions SET height = NULL, block_hash = NULL WHERE height > ?", (height,))
            self.conn.execute("DELETE FROM blocks WHERE height > ?", (height,))
        return removed, unspent

    def drop_unconfirmed(self, txid: str) -> None:
        """Forget an unconfirmed transaction that left the mempool: its outputs, its spends."""
        with self.transaction():
            self.conn.execute("DELETE FROM utxos WHERE txid = ? AND height IS NULL", (txid,))
            self.conn.execute(
                "UPDATE utxos SET spent_by = NULL, spent_height = NULL WHERE spent_by = ? AND spent_height IS NULL",
                (txid,),
            )
            self.conn.execute("DELETE FROM transactions WHERE txid = ? AND height IS NULL", (txid,))

    # --- scan state --------------------------------------------------------------------

    def set_block(self, height: int, block_hash: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO blocks (height, hash) VALUES (?, ?)", (height, block_hash))

    def block_hash(self, height: int) -> str | None:
        row = self.conn.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
        return row[0] if row else None

    def scanned_tip(self) -> tuple[int, str] | None:
        """(height, hash) of the last scanned block, None before the first scan."""
        row = self.conn.execute("SELECT height, hash FROM blocks ORDER BY height DESC LIMIT 1").fetchone()
        return (int(row[0]), row[1]) if row else None

    def prune_blocks(self, below: int) -> None:
        """Forget block hashes below ``below`` (deeper than any reorg we handle)."""
        self.conn.execute("DELETE FROM blocks WHERE height < ?", (below,))

    # --- PSBT sessions -------------------------------------------------------------------

    def add_psbt(
        self,
        id: str,
        wallet_id: int,
        kind: str,
        state: str,
        psbt: str,
        fingerprint: str,
        details: dict[str, Any] | None = None,
    ) -> PsbtRecord:
        now = time.time()
        try:
            self.conn.execute(
                "INSERT INTO psbts (id, wallet_id, kind, state, psbt, fingerprint, details, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (id, wallet_id, kind, state, psbt, fingerprint, _dumps(details or {}), now, now),
            )
        except StoreConflict:
            raise StoreConflict(f"a PSBT session {id} already exists") from None
        return self.psbt(id)

    def update_psbt(
        self,
        id: str,
        state: str | None = None,
        psbt: str | None = None,
        txid: str | None = None,
        details: dict[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> PsbtRecord:
        """Change a session's state/PSBT/txid (and fingerprint, for a session created
        before its PSBT existed); ``details`` are merged into the stored ones."""
        current = self.psbt(id)
        merged = {**current.details, **(details or {})}
        self.conn.execute(
            "UPDATE psbts SET state = ?, psbt = ?, txid = ?, fingerprint = ?, details = ?, updated = ? WHERE id = ?",
            (
                state or current.state,
                psbt or current.psbt,
                txid or current.txid,
                fingerprint or current.fingerprint,
                _dumps(merged),
                time.time(),
                id,
            ),
        )
        return self.psbt(id)

    def psbt(self, id: str) -> PsbtRecord:
        row = self.conn.execute(_PSBT_SELECT + " WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise SessionNotFound(f"no PSBT session {id!r}; list them with `l2custody psbt list`")
        return _psbt(row, self.path)

    def psbt_wallet_id(self, id: str) -> int | None:
        """The wallet generation a session belongs to (None if there is no such session)."""
        row = self.conn.execute("SELECT wallet_id FROM psbts WHERE id = ?", (id,)).fetchone()
        return int(row[0]) if row else None

    def psbt_by_fingerprint(self, fingerprint: str) -> PsbtRecord | None:
        row = self.conn.execute(
            _PSBT_SELECT + " WHERE fingerprint = ? ORDER BY created DESC LIMIT 1", (fingerprint,)
        ).fetchone()
        return _psbt(row, self.path) if row else None

    def psbts(self, state: str | None = None, kind: str | None = None) -> list[PsbtRecord]:
        sql, params = _PSBT_SELECT + " WHERE 1=1", []
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [_psbt(r, self.path) for r in self.conn.execute(sql + " ORDER BY created", params)]

    # --- signers -----------------------------------------------------------------------------

    def add_signer(
        self, name: str, kind: str, path: str | None, fingerprint: str, details: dict[str, Any] | None = None
    ) -> SignerRecord:
        try:
            self.conn.execute(
                "INSERT INTO signers (name, kind, path, fingerprint, details, created) VALUES (?, ?, ?, ?, ?, ?)",
                (name, kind, path, fingerprint, _dumps(details or {}), time.time()),
            )
        except StoreConflict:
            raise StoreConflict(f"a signer named {name!r} already exists; pick another name") from None
        return self.signer(name)

    def signer(self, name: str) -> SignerRecord:
        row = self.conn.execute(
            "SELECT name, kind, path, fingerprint, details, created FROM signers WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise SignerUnavailable(f"no signer named {name!r}; see `l2custody signer list`")
        return SignerRecord(row[0], row[1], row[2], row[3], json_column(row[4], "a signer", self.path), row[5])

    def signers(self) -> list[SignerRecord]:
        rows = self.conn.execute("SELECT name, kind, path, fingerprint, details, created FROM signers ORDER BY name")
        return [SignerRecord(r[0], r[1], r[2], r[3], json_column(r[4], "a signer", self.path), r[5]) for r in rows]


_WALLET_SELECT = "SELECT id, lineage, descriptor, network, birthday, created, generation, details FROM wallets"
_PSBT_SELECT = "SELECT id, kind, state, psbt, fingerprint, txid, details, created, updated FROM psbts"


def _dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, default=str)


def _address(r: tuple[Any, ...]) -> AddressRecord:
    return AddressRecord(bool(r[0]), r[1], bytes(r[2]), r[3], bool(r[4]), bool(r[5]), r[6])


def _utxo(r: tuple[Any, ...]) -> UtxoRecord:
    return UtxoRecord(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5], r[6], r[7], r[8], r[9], r[10])


def _psbt(r: tuple[Any, ...], path: Path) -> PsbtRecord:
    return PsbtRecord(r[0], r[1], r[2], r[3], r[4], r[5], json_column(r[6], f"PSBT session {r[0]}", path), r[7], r[8])


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration script, each complete (triggers included), so
    they can run inside one transaction (``executescript`` would commit first)."""
    out, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _wal(conn: sqlite3.Connection, patience: float = 10.0) -> None:
    """Switch to WAL. The switch needs the database to itself and SQLite may answer
    "database is locked" at once (not after its busy timeout) while another process
    opens the same new store: try again for up to ``patience`` seconds."""
    import time

    deadline = time.monotonic() + patience
    while True:
        try:
            sqlite3.Connection.execute(conn, "PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _connect(path: Path) -> _Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False, factory=_Connection)
    conn.path = path
    return conn


def _create(path: Path, migrations: list[str]) -> None:
    """A new store at ``path``, made beside it and linked into place with its schema, so a
    store file always holds one: an empty file at ``path`` is damage, not a new store.
    Several processes may race here; the first link wins and the others open it."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    os.close(fd)
    try:
        conn = _connect(Path(tmp))
        try:
            sqlite3.Connection.execute(conn, "PRAGMA journal_mode=WAL")
            Store(conn, path).migrate(migrations)
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it meanwhile: use theirs
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
