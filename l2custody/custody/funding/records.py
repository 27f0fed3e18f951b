"""Persisting funding sessions in the store's ``psbts`` table (kind ``"funding"``).

One row per session, so the wallet's PSBT pipeline (verify, sign, combine)
works on a funding PSBT like on any other, and file signers name their files
after the session id. Each fact has one home:

- ``details["session"]``: the session itself (state, legs, intents, heights,
  errors). The ``state`` column mirrors the session state for the wallet's
  views (`psbt list`); the pipeline writes its own words there when it adds
  signatures, so it is never read back.
- ``psbt`` column: the PSBT with every signature collected so far (written
  by the pipeline when signing; here only when the PSBT is built or
  finalized).
- ``fingerprint`` / ``txid`` columns: of the unsigned transaction the peers
  counter-signed.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from l2custody.errors import SessionNotFound
from l2custody.store import stored_data

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.custody.funding.session import FundingSession
    from l2custody.store import PsbtRecord, Store

KIND = "funding"
_COLUMNS = ("psbt", "psbt_fingerprint", "txid")


def new_session_id() -> str:
    """A short random id (``fs-`` + 8 hex), unlike the txid-based ids of plain spends."""
    return "fs-" + secrets.token_hex(4)


def _body(session: FundingSession) -> dict[str, Any]:
    body = session.to_dict()
    for key in _COLUMNS:
        body.pop(key, None)
    return body


def create_session(store: Store, wallet_id: int, session: FundingSession) -> None:
    """Insert a new session (before anything is asked of a node)."""
    store.add_psbt(
        session.id,
        wallet_id,
        KIND,
        session.state.value,
        session.psbt,
        session.psbt_fingerprint,
        {"session": _body(session)},
    )


def save_session(store: Store, session: FundingSession, *, psbt: bool = False, **details: Any) -> None:
    """Write the session's state and body. The PSBT column only with ``psbt=True``
    (signatures are added by the wallet pipeline; never overwrite them with an older copy).
    ``details`` are extra top-level keys for the pipeline (expected outputs...)."""
    store.update_psbt(
        session.id,
        state=session.state.value,
        psbt=session.psbt if psbt else None,
        txid=session.txid or None,
        fingerprint=session.psbt_fingerprint or None,
        details={"session": _body(session), **details},
    )


def _from_record(rec: PsbtRecord) -> FundingSession:
    from l2custody.custody.funding.session import FundingSession

    with stored_data(f"funding session {rec.id}"):
        body = dict(rec.details["session"])
        body.update(psbt=rec.psbt, psbt_fingerprint=rec.fingerprint, txid=rec.txid or "")
        return FundingSession.from_dict(body)


def load_session(store: Store, session_id: str) -> FundingSession:
    """The session with this id; SessionNotFound (naming `session list`) otherwise."""
    try:
        rec = store.psbt(session_id)
    except SessionNotFound:
        rec = None
    if rec is None or rec.kind != KIND or "session" not in rec.details:
        raise SessionNotFound(
            f"no funding session {session_id!r}; see `l2custody session list` (plain spends are "
            "under `l2custody psbt list`)"
        )
    return _from_record(rec)


def list_sessions(store: Store, *, include_final: bool = True) -> list[FundingSession]:
    """Every funding session, oldest first."""
    out = [_from_record(r) for r in store.psbts(kind=KIND) if "session" in r.details]
    return [s for s in out if include_final or not s.state.is_final]


def session_for_txid(store: Store, txid: str) -> FundingSession | None:
    """The funding session whose transaction is ``txid`` (a channel's funding txid), if any."""
    for session in list_sessions(store):
        if session.txid == txid:
            return session
    return None


def funding_commitments(store: Store) -> dict[str, tuple[str, dict[str, str]]]:
    """Funding txid -> (session id, {channel point: reserved close address}) of every session
    with a transaction, read from the stored bodies without building the sessions: channel
    views need only this, and a read command should not pay for the session machinery."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for rec in store.psbts(kind=KIND):
        body = rec.details.get("session")
        if not body or not rec.txid:
            continue
        legs = body.get("legs") or []
        out[rec.txid] = (
            rec.id,
            {leg["channel_point"]: leg["close_address"] for leg in legs if leg.get("channel_point")},
        )
    return out
