"""The store's schema: ``MIGRATIONS``, an append-only list of SQL scripts.

Entry *i* brings the schema to version *i + 1* (``PRAGMA user_version``);
``Store.open`` applies the ones a database has not seen yet. Later layers add
their tables by appending one entry — never by editing an old one.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the multisig wallet (issue 3)
    """
    CREATE TABLE wallets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        descriptor TEXT NOT NULL,
        network TEXT NOT NULL,
        birthday INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE addresses (
        wallet_id INTEGER NOT NULL REFERENCES wallets(id),
        change INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        script BLOB NOT NULL,
        address TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        issued INTEGER NOT NULL DEFAULT 0,
        label TEXT,
        PRIMARY KEY (wallet_id, change, idx)
    );
    CREATE UNIQUE INDEX addresses_script ON addresses(script);
    CREATE TABLE transactions (
        txid TEXT PRIMARY KEY,
        raw BLOB NOT NULL,
        height INTEGER,
        block_hash TEXT,
        first_seen REAL NOT NULL
    );
    CREATE TABLE utxos (
        txid TEXT NOT NULL,
        vout INTEGER NOT NULL,
        wallet_id INTEGER NOT NULL REFERENCES wallets(id),
        value INTEGER NOT NULL,
        script BLOB NOT NULL,
        change INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        height INTEGER,
        block_hash TEXT,
        spent_by TEXT,
        spent_height INTEGER,
        reserved_by TEXT,
        PRIMARY KEY (txid, vout)
    );
    CREATE INDEX utxos_unspent ON utxos(wallet_id, spent_by);
    CREATE TABLE blocks (
        height INTEGER PRIMARY KEY,
        hash TEXT NOT NULL
    );
    CREATE TABLE psbts (
        id TEXT PRIMARY KEY,
        wallet_id INTEGER NOT NULL REFERENCES wallets(id),
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        psbt TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        txid TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX psbts_fingerprint ON psbts(fingerprint);
    CREATE TABLE signers (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        path TEXT,
        fingerprint TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 2: Lightning nodes (issue 4; l2custody/backends/node_registry.py). Paths only:
    # secrets stay in files (lndconnect ones are written 0600 under data_dir/nodes).
    """
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('lnd', 'cln')),
        host TEXT,
        tls_cert TEXT,
        macaroon TEXT,
        rpc_file TEXT,
        timeout REAL NOT NULL DEFAULT 30.0,
        created REAL NOT NULL
    );
    """,
    # 3: closes and sweeps (issue 4; l2custody/custody/closing/close.py, sweeping.py). A row is
    # written before the node is asked, then follows the transaction to its verification.
    """
    CREATE TABLE closes (
        channel_point TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        expected_address TEXT,
        address_source TEXT,
        closing_txid TEXT,
        vout INTEGER,
        value INTEGER,
        height INTEGER,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        node TEXT NOT NULL,
        state TEXT NOT NULL,
        address TEXT NOT NULL,
        amount INTEGER,
        fee INTEGER,
        kept INTEGER,
        txid TEXT,
        vout INTEGER,
        height INTEGER,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # 4: watch (issue 6; l2custody/custody/watch/state.py). The last channel list seen per
    # node (written in the same transaction as the audit entries of its transitions, so a
    # restarted watch diffs from exactly there), an alert outbox (each alert once, delivered
    # until it goes out) and the conditions currently alerted on.
    """
    CREATE TABLE watch_nodes (
        node TEXT PRIMARY KEY,
        taken_at REAL NOT NULL,
        channels TEXT NOT NULL,
        last_event REAL,
        backup_sha256 TEXT,
        backup_at REAL
    );
    CREATE TABLE watch_alerts (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        node TEXT,
        subject TEXT NOT NULL,
        message TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        delivered REAL,
        sent_to TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX watch_alerts_undelivered ON watch_alerts(delivered);
    CREATE TABLE watch_conditions (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        since REAL NOT NULL,
        alerted INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 5: key lifecycle (issue 12). Wallet generations: ``wallet rotate`` adds a row per
    # generation; every row of a store is one generation of its one wallet (``lineage`` is the
    # wallet's name, ``name`` stays unique per row). Rehearsals: one row per test spend
    # (l2custody/wallet/rehearsal.py), kept beside the PSBT session it ran.
    """
    ALTER TABLE wallets ADD COLUMN lineage TEXT;
    ALTER TABLE wallets ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE wallets ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
    UPDATE wallets SET lineage = name;
    CREATE UNIQUE INDEX wallets_generation ON wallets(lineage, generation);
    CREATE TABLE rehearsals (
        id TEXT PRIMARY KEY,
        wallet_id INTEGER NOT NULL REFERENCES wallets(id),
        state TEXT NOT NULL,
        amount INTEGER NOT NULL,
        signers TEXT NOT NULL DEFAULT '[]',
        txid TEXT,
        height INTEGER,
        error TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE INDEX rehearsals_wallet ON rehearsals(wallet_id, created);
    """,
]
