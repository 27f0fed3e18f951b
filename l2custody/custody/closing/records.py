"""The ``closes`` table: one row per channel close we requested or observed.

Written before the node is asked (state ``requested``), then moved along by
``closing.py`` as the close proceeds; see its docstring for the states.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from l2custody.store import json_column

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store


class CloseKind(StrEnum):
    COOPERATIVE = "cooperative"
    FORCE = "force"


class CloseState(StrEnum):
    """Where a close is; see ``close.py`` for the transitions."""

    REQUESTED = "requested"
    PENDING = "pending"
    VERIFIED = "verified"
    VIOLATION = "violation"
    FAILED = "failed"
    UNKNOWN = "unknown"
    IN_NODE_WALLET = "in-node-wallet"

    @property
    def settled(self) -> bool:
        """Nothing more happens to the close (a wait can stop)."""
        return self in (CloseState.VERIFIED, CloseState.VIOLATION, CloseState.IN_NODE_WALLET, CloseState.FAILED)


class AddressSource(StrEnum):
    """Where a close pays."""

    UPFRONT = "upfront"
    DELIVERY = "delivery"
    FOREIGN_UPFRONT = "foreign-upfront"
    NODE_WALLET = "node-wallet"


# --- records ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CloseRecord:
    """One row of the ``closes`` table."""

    channel_point: str
    node: str
    kind: CloseKind
    state: CloseState
    expected_address: str | None
    address_source: AddressSource | None
    closing_txid: str | None = None
    vout: int | None = None
    value: int | None = None
    height: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel_point": self.channel_point,
            "node": self.node,
            "kind": self.kind,
            "state": self.state,
            "expected_address": self.expected_address,
            "address_source": self.address_source,
            "closing_txid": self.closing_txid,
            "vout": self.vout,
            "value": self.value,
            "height": self.height,
            "details": self.details,
        }


_COLUMNS = (
    "channel_point, node, kind, state, expected_address, address_source, closing_txid, vout, value, "
    "height, details, created, updated"
)


def _record(row: tuple[Any, ...]) -> CloseRecord:
    (point, node, kind, state, expected, source, txid, vout, value, height, details, created, updated) = row
    return CloseRecord(
        point,
        node,
        CloseKind(kind),
        CloseState(state),
        expected,
        AddressSource(source) if source is not None else None,
        txid,
        vout,
        value,
        height,
        json_column(details, "a close record"),
        created,
        updated,
    )


def close_records(store: Store) -> list[CloseRecord]:
    """Every close we requested or observed, oldest first."""
    return [_record(r) for r in store.execute(f"SELECT {_COLUMNS} FROM closes ORDER BY created")]


def close_record(store: Store, channel_point: str) -> CloseRecord | None:
    row = store.execute(f"SELECT {_COLUMNS} FROM closes WHERE channel_point = ?", (channel_point,)).fetchone()
    return _record(row) if row else None


def save_record(store: Store, rec: CloseRecord) -> CloseRecord:
    """Insert or replace ``rec`` (call inside a store transaction)."""
    now = time.time()
    rec = replace(rec, created=rec.created or now, updated=now)
    store.execute(
        f"INSERT OR REPLACE INTO closes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.channel_point,
            rec.node,
            rec.kind,
            rec.state,
            rec.expected_address,
            rec.address_source,
            rec.closing_txid,
            rec.vout,
            rec.value,
            rec.height,
            json.dumps(rec.details, sort_keys=True),
            rec.created,
            rec.updated,
        ),
    )
    return rec
