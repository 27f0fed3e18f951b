"""The ``sweeps`` table: one row per sweep of a node's wallet into the multisig.

Written (with its address, recorded as issued) before the node is asked, then
moved along by ``sweep.py`` as the transaction goes out and is verified.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from l2custody.errors import UsageError
from l2custody.store import json_column

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store


class SweepState(StrEnum):
    """Where a sweep is: ``started -> broadcast -> verified``, or ``failed`` (the node
    refused: nothing sent) or ``unknown`` (no answer: check the chain)."""

    STARTED = "started"
    BROADCAST = "broadcast"
    VERIFIED = "verified"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def settled(self) -> bool:
        """Nothing more will happen to the sweep."""
        return self in (SweepState.VERIFIED, SweepState.FAILED)


@dataclass(frozen=True)
class SweepRecord:
    """One row of the ``sweeps`` table."""

    id: int
    node: str
    state: SweepState
    address: str
    amount: int | None = None
    fee: int | None = None
    kept: int | None = None
    txid: str | None = None
    vout: int | None = None
    height: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "state": self.state,
            "address": self.address,
            "amount_sat": self.amount,
            "fee_sat": self.fee,
            "kept_sat": self.kept,
            "txid": self.txid,
            "vout": self.vout,
            "height": self.height,
            "details": self.details,
        }


_COLUMNS = "id, node, state, address, amount, fee, kept, txid, vout, height, details, created, updated"


def _record(row: tuple[Any, ...]) -> SweepRecord:
    (id_, node, state, address, amount, fee, kept, txid, vout, height, details, created, updated) = row
    return SweepRecord(
        id_,
        node,
        SweepState(state),
        address,
        amount,
        fee,
        kept,
        txid,
        vout,
        height,
        json_column(details, "a sweep record"),
        created,
        updated,
    )


def sweep_records(store: Store, node: str | None = None) -> list[SweepRecord]:
    """Sweeps (of one node, or all), oldest first."""
    sql, params = f"SELECT {_COLUMNS} FROM sweeps", ()  # type: tuple[str, tuple[str, ...]]
    if node is not None:
        sql, params = sql + " WHERE node = ?", (node,)
    return [_record(r) for r in store.execute(sql + " ORDER BY id", params)]


def sweep_record(store: Store, sweep_id: int) -> SweepRecord:
    row = store.execute(f"SELECT {_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
    if row is None:
        raise UsageError(f"no sweep #{sweep_id}; list them with `l2custody sweep-status`")
    return _record(row)


def insert_sweep(store: Store, node: str, address: str, details: dict[str, Any]) -> SweepRecord:
    """A new ``started`` sweep of ``node`` to ``address`` (call inside a store transaction)."""
    now = time.time()
    cur = store.execute(
        "INSERT INTO sweeps (node, state, address, details, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        (node, SweepState.STARTED, address, json.dumps(details, sort_keys=True), now, now),
    )
    return sweep_record(store, int(cur.lastrowid or 0))


def update_sweep(store: Store, actor: str, rec: SweepRecord, action: str, **changes: Any) -> SweepRecord:
    """Move ``rec`` along (its state, figures, details) and audit ``action``, in one transaction."""
    details = {**rec.details, **changes.pop("details", {})}
    rec = replace(rec, details=details, updated=time.time(), **changes)
    with store.transaction():
        store.execute(
            "UPDATE sweeps SET state = ?, amount = ?, fee = ?, kept = ?, txid = ?, vout = ?, height = ?,"
            " details = ?, updated = ? WHERE id = ?",
            (
                rec.state,
                rec.amount,
                rec.fee,
                rec.kept,
                rec.txid,
                rec.vout,
                rec.height,
                json.dumps(rec.details, sort_keys=True),
                rec.updated,
                rec.id,
            ),
        )
        store.audit(actor, action, f"sweep {rec.id}", {"node": rec.node, **rec.to_dict()})
    return rec
