"""The ``rehearsals`` table: one row per rehearsal, the test spend of ``wallet rehearse``.

A row is written in the same store transaction as the PSBT session it runs
(its coins reserved), then moved along by ``wallet/rehearsal.py``:

```
 SIGNING ──► BROADCASTING ──► BROADCAST ──► CONFIRMED   (the coins checked back in the wallet)
    │              │               └──► FAILED          (the coins did not come back as built)
    │              └──► FAILED     (the chain refused it: coins released)
    ├──► FAILED    (a signer refused or returned its PSBT unsigned: coins released)
    └──► ABORTED   (``wallet rehearse --abort``: coins released)
```

``BROADCASTING`` may already be on the chain (the outcome of the broadcast was
unknown): it is never aborted, only resumed. A rehearsal belongs to one
wallet generation (``wallet_id``); whether a generation "has been rehearsed"
(for ``channel open`` and ``report``) is whether it has a CONFIRMED one.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from l2custody.errors import PolicyViolation, PsbtError
from l2custody.store import json_column, stored_data

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store, WalletRecord


class RehearsalState(StrEnum):
    """Where a rehearsal is; see the module docstring for the moves."""

    SIGNING = "signing"
    BROADCASTING = "broadcasting"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def settled(self) -> bool:
        """Nothing more happens to the rehearsal."""
        return self in (RehearsalState.CONFIRMED, RehearsalState.FAILED, RehearsalState.ABORTED)

    @property
    def may_be_on_chain(self) -> bool:
        """Its transaction may have been sent: it cannot be aborted any more."""
        return self in (RehearsalState.BROADCASTING, RehearsalState.BROADCAST, RehearsalState.CONFIRMED)


#: The moves a rehearsal may make (anything else is a bug or a second process racing).
MOVES: dict[RehearsalState, frozenset[RehearsalState]] = {
    RehearsalState.SIGNING: frozenset({RehearsalState.BROADCASTING, RehearsalState.FAILED, RehearsalState.ABORTED}),
    RehearsalState.BROADCASTING: frozenset({RehearsalState.BROADCAST, RehearsalState.FAILED}),
    RehearsalState.BROADCAST: frozenset({RehearsalState.CONFIRMED, RehearsalState.FAILED}),
    RehearsalState.CONFIRMED: frozenset(),
    RehearsalState.FAILED: frozenset(),
    RehearsalState.ABORTED: frozenset(),
}


@dataclass(frozen=True)
class SignerRef:
    """A signer chosen for a rehearsal, as it was registered then."""

    name: str
    fingerprint: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "fingerprint": self.fingerprint, "kind": self.kind}


@dataclass(frozen=True)
class RehearsalRecord:
    """One row of the ``rehearsals`` table. ``details`` holds the PSBT session id, the
    addresses and outputs, who signed when, exported files and address checks."""

    id: str
    wallet_id: int
    state: RehearsalState
    amount: int
    signers: tuple[SignerRef, ...]
    txid: str | None = None
    height: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    @property
    def session_id(self) -> str:
        return str(self.details.get("session", ""))

    @property
    def signed(self) -> dict[str, Any]:
        """Signer name -> what its signing step recorded (``at``, ``added``)."""
        return dict(self.details.get("signed", {}))

    @property
    def signer_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.signers)

    def moved(self, state: RehearsalState, **changes: Any) -> RehearsalRecord:
        """This record in ``state`` (PsbtError for a move the state machine does not have);
        ``details`` given in ``changes`` are merged into the current ones."""
        if state != self.state and state not in MOVES[self.state]:
            raise PsbtError(
                f"rehearsal {self.id} is {self.state}; it cannot become {state} (another l2custody process "
                "may be running it: look at `l2custody wallet rehearse` again in a moment)"
            )
        details = {**self.details, **changes.pop("details", {})}
        return replace(self, state=state, details=details, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "wallet_id": self.wallet_id,
            "state": self.state.value,
            "amount_sat": self.amount,
            "signers": [s.to_dict() for s in self.signers],
            "txid": self.txid,
            "height": self.height,
            "error": self.error,
            "details": self.details,
            "created": self.created,
            "updated": self.updated,
        }


def new_rehearsal_id() -> str:
    """A short random id: ``rh-`` + 8 hex."""
    return "rh-" + secrets.token_hex(4)


_COLUMNS = "id, wallet_id, state, amount, signers, txid, height, error, details, created, updated"


def _record(row: tuple[Any, ...]) -> RehearsalRecord:
    (id_, wallet_id, state, amount, signers, txid, height, error, details, created, updated) = row
    what = f"rehearsal {id_}"
    with stored_data(what):
        refs = tuple(SignerRef(s["name"], s["fingerprint"], s["kind"]) for s in json_column(signers, what))
        return RehearsalRecord(
            id_,
            int(wallet_id),
            RehearsalState(state),
            int(amount),
            refs,
            txid,
            height,
            error,
            json_column(details, what),
            created,
            updated,
        )


def rehearsals(store: Store, wallet_id: int | None = None) -> list[RehearsalRecord]:
    """Every rehearsal (of one wallet generation), oldest first."""
    sql, params = f"SELECT {_COLUMNS} FROM rehearsals", []
    if wallet_id is not None:
        sql += " WHERE wallet_id = ?"
        params.append(wallet_id)
    return [_record(r) for r in store.execute(sql + " ORDER BY created, rowid", params)]


def rehearsal(store: Store, rehearsal_id: str) -> RehearsalRecord | None:
    row = store.execute(f"SELECT {_COLUMNS} FROM rehearsals WHERE id = ?", (rehearsal_id,)).fetchone()
    return _record(row) if row else None


def unfinished(store: Store, wallet_id: int) -> RehearsalRecord | None:
    """The rehearsal of this generation that is not settled yet (there is at most one)."""
    return next((r for r in reversed(rehearsals(store, wallet_id)) if not r.state.settled), None)


def save_rehearsal(store: Store, rec: RehearsalRecord) -> RehearsalRecord:
    """Insert or replace ``rec`` (call inside a store transaction, with its audit entry)."""
    now = time.time()
    rec = replace(rec, created=rec.created or now, updated=now)
    store.execute(
        f"INSERT OR REPLACE INTO rehearsals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.id,
            rec.wallet_id,
            rec.state.value,
            rec.amount,
            json.dumps([s.to_dict() for s in rec.signers]),
            rec.txid,
            rec.height,
            rec.error,
            json.dumps(rec.details, sort_keys=True, default=str),
            rec.created,
            rec.updated,
        ),
    )
    return rec


# --- what the records say about a generation ----------------------------------------------------
def confirmed_at(rec: RehearsalRecord) -> float:
    """When a confirmed rehearsal was found complete."""
    return float(rec.details.get("confirmed_at") or rec.updated)


def last_signed(records: list[RehearsalRecord]) -> dict[str, float]:
    """Signer name -> when it last signed a confirmed rehearsal among ``records``."""
    out: dict[str, float] = {}
    for rec in records:
        if rec.state is not RehearsalState.CONFIRMED:
            continue
        for name in rec.signed:
            out[name] = max(out.get(name, 0.0), confirmed_at(rec))
    return out


def latest_failure(records: list[RehearsalRecord]) -> RehearsalRecord | None:
    """The newest settled rehearsal when it failed (a later confirmed or aborted one clears it)."""
    settled = [r for r in records if r.state.settled]
    return settled[-1] if settled and settled[-1].state is RehearsalState.FAILED else None


def require_rehearsed(store: Store, wallet: WalletRecord, *, required: bool) -> None:
    """PolicyViolation unless the wallet generation has a confirmed rehearsal (or
    ``[rehearsal] required = false``): funding channels from an untested setup is refused."""
    if not required:
        return
    records = rehearsals(store, wallet.id)
    if any(r.state is RehearsalState.CONFIRMED for r in records):
        return
    what = f"the wallet {wallet.name} (generation {wallet.generation}) has never been rehearsed"
    pending = next((r for r in reversed(records) if not r.state.settled), None)
    failed = latest_failure(records)
    if pending is not None:
        what += f" (rehearsal {pending.id} is {pending.state}: `l2custody wallet rehearse` continues it)"
    elif failed is not None:
        what += f" (rehearsal {failed.id} failed: {failed.error})"
    raise PolicyViolation(
        f"{what}: run `l2custody wallet rehearse` to prove its signers can sign a spend before funding "
        "channels from it, or set [rehearsal] required = false in the config"
    )
