"""The verified PSBT pipeline of a Wallet: verify, sign, combine, finalize, broadcast.

A mixin of :class:`l2custody.wallet.service.Wallet` (kept apart so each module
holds one concern). Every step starts with :meth:`PsbtPipeline.verify`: the
PSBT must belong to a saved session (by the id it carries, its txid or its
fingerprint), contain exactly the session's verified foreign outputs plus our
change, still pass the policy (for spends the policy decided), and be the
very transaction that was verified. Signatures collected so far are kept in
the session, so a step may be given any copy of the PSBT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    PsbtError,
    PsbtTampered,
    SessionNotFound,
    SignerError,
)
from l2custody.store import PsbtRecord, Store, WalletRecord

if TYPE_CHECKING:  # pragma: no cover
    from embit.psbt import PSBT

    from l2custody.chain.base import ChainSource
    from l2custody.chain.scanner import Scanner
    from l2custody.wallet.descriptors import WalletDescriptor
    from l2custody.wallet.policy import Policy
    from l2custody.wallet.review import PsbtSummary


#: Proprietary PSBT global key (BIP-174 0xFC, identifier "l2custody", subtype 0) holding the session id.
SESSION_KEY = b"\xfc\x09l2custody\x00"
#: Session states after which no signature or broadcast step applies.
CLOSED_STATES = ("aborted", "failed")
#: Session kinds driven by the custody layer: finalized, broadcast and aborted only
#: through `l2custody session ...` (which checks that every channel is counter-signed).
CUSTODY_KINDS = ("funding",)
#: The order states advance in; a step never moves a session backwards.
STATE_ORDER = (
    "created",
    "verified",
    "partially-signed",
    "signed",
    "finalized",
    "broadcasting",
    "broadcast-unknown",
    "broadcast",
    "confirmed",
)


def advance(current: str, new: str) -> str:
    """The later of two states (unknown states count as the newest)."""
    rank = {s: i for i, s in enumerate(STATE_ORDER)}
    return new if rank.get(new, len(rank)) >= rank.get(current, -1) else current


@dataclass(frozen=True)
class PsbtSession:
    """A saved PSBT session with its current PSBT (all signatures so far) and its summary."""

    id: str
    kind: str
    state: str
    psbt: PSBT
    summary: PsbtSummary
    txid: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def base64(self) -> str:
        return self.psbt.to_base64()


@dataclass(frozen=True)
class SignResult:
    """What a signing step did. ``exported`` lists files written for an air-gapped signer."""

    session: PsbtSession
    signer: str
    added: int  # new valid signatures
    complete: bool  # every input has K valid signatures
    exported: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BroadcastResult:
    session: PsbtSession
    txid: str
    raw: bytes


def is_pipeline_session(rec: PsbtRecord) -> bool:
    """Sessions saved by ``Wallet.save_session`` (other layers may keep their own rows in ``psbts``)."""
    return "expected_outputs" in rec.details


def session_id_of(psbt: PSBT) -> str | None:
    """The session id a PSBT carries in our proprietary field, if any."""
    raw = psbt.unknown.get(SESSION_KEY)
    return raw.decode("ascii", errors="replace") if raw else None


class PsbtPipeline:
    """Mixin of the Wallet: the PSBT steps. What it uses of the wallet is declared here."""

    store: Store
    record: WalletRecord
    #: who the audit log names for the steps
    actor: str

    if TYPE_CHECKING:  # provided by the Wallet (cached or computed on first use)

        @property
        def descriptor(self) -> WalletDescriptor: ...

        @property
        def policy(self) -> Policy: ...

        @property
        def chain(self) -> ChainSource: ...

        def _known_scripts(self) -> dict[bytes, tuple[bool, int]]: ...

        def _scanner(self) -> Scanner: ...

    # --- finding and checking -----------------------------------------------------------

    def session_record(self, psbt: PSBT) -> PsbtRecord | None:
        """The saved session a PSBT belongs to (by carried id, txid, or fingerprint)."""
        from l2custody.wallet.psbt import psbt_fingerprint, psbt_txid

        for sid in (session_id_of(psbt), psbt_txid(psbt)[:16]):
            if sid:
                try:
                    rec = self.store.psbt(sid)
                except SessionNotFound:
                    continue
                if is_pipeline_session(rec):
                    return rec
        by_fingerprint = self.store.psbt_by_fingerprint(psbt_fingerprint(psbt))
        return by_fingerprint if by_fingerprint is not None and is_pipeline_session(by_fingerprint) else None

    def session(self, session_id: str) -> PsbtSession:
        """A saved session with its current PSBT (every signature collected so far); SessionNotFound."""
        from l2custody.wallet.review import summarize

        rec = self.store.psbt(session_id)
        psbt = self._stored_psbt(rec)
        summary = summarize(psbt, self.descriptor, known_scripts=self._known_scripts())
        return PsbtSession(rec.id, rec.kind, rec.state, psbt, summary, rec.txid or summary.txid, rec.details)

    def summarize(self, psbt: PSBT) -> tuple[PsbtSummary, PsbtRecord | None]:
        """What the PSBT does (never raises for a readable PSBT) and its session, for display."""
        from l2custody.wallet.review import summarize

        return summarize(psbt, self.descriptor, known_scripts=self._known_scripts()), self.session_record(psbt)

    def verify(self, psbt: PSBT, audit: bool = True) -> PsbtSession:
        """Refuse anything a signer must not sign or the node must not get; see the module doc.

        Raises PsbtTampered (foreign inputs or change, changed outputs, bad
        signatures, changed since verified, no session), PolicyViolation,
        NetworkMismatch. Returns the session with the signatures merged.
        """
        from l2custody.wallet.psbt import TxOut, combine, psbt_txid
        from l2custody.wallet.review import verify

        rec = self.session_record(psbt)
        known = self._known_scripts()
        if rec is None:
            # Still explain what is wrong with it if the policy refuses it, naming the output.
            verify(psbt, self.descriptor, self.policy, known_scripts=known)
            raise PsbtTampered(
                f"PSBT {psbt_txid(psbt)} matches no session of this wallet: it was not created here, or its "
                "transaction changed since it was verified; refusing. Create spends with `l2custody wallet send`"
            )
        if rec.state in CLOSED_STATES:
            raise PsbtError(f"session {rec.id} was {rec.state}; create a new spend")
        expected = [
            TxOut(bytes.fromhex(o["script"]), int(o["value"]), o.get("address"))
            for o in rec.details.get("expected_outputs", [])
        ]
        where = f"session {rec.id}"
        try:
            summary = verify(psbt, self.descriptor, self.policy, expected, known_scripts=known)
            if rec.details.get("policy_checked"):
                verify(psbt, self.descriptor, self.policy, known_scripts=known)
        except PsbtTampered as exc:
            raise PsbtTampered(f"{where}: {exc.message}") from None
        if summary.fingerprint != rec.fingerprint:
            raise PsbtTampered(
                f"{where}: the PSBT changed since it was verified ({self._what_changed(rec, psbt)}); refusing. "
                f"Use the session's own PSBT (`l2custody psbt export {rec.id}`) or create a new spend"
            )
        merged = combine([self._stored_psbt(rec), psbt])
        summary = verify(merged, self.descriptor, self.policy, expected, known_scripts=known)
        if audit:
            self.store.audit(self.actor, "psbt-verified", rec.id, {"fingerprint": summary.fingerprint})
        return PsbtSession(rec.id, rec.kind, rec.state, merged, summary, summary.txid, rec.details)

    def _stored_psbt(self, rec: PsbtRecord) -> PSBT:
        from l2custody.wallet.psbt import load_psbt

        return load_psbt(rec.psbt)

    def _what_changed(self, rec: PsbtRecord, psbt: PSBT) -> str:
        old = self._stored_psbt(rec).tx
        new = psbt.tx
        ins_old = {(i.txid, i.vout) for i in old.vin}
        ins_new = {(i.txid, i.vout) for i in new.vin}
        if ins_old != ins_new:
            extra = sorted(f"{t.hex()}:{v}" for t, v in ins_new - ins_old)
            return "inputs differ" + (f": {', '.join(extra)} added" if extra else "")
        for j, out in enumerate(new.vout):
            if all((o.script_pubkey.data, o.value) != (out.script_pubkey.data, out.value) for o in old.vout):
                return f"output {j} ({out.value} sat to {out.script_pubkey.data.hex()}) was not verified"
        if old.locktime != new.locktime:
            return f"locktime {new.locktime}, was {old.locktime}"
        return "sequence numbers, version or spent amounts differ"

    def _persist(
        self, session: PsbtSession, psbt: PSBT, state: str, action: str, details: dict[str, Any]
    ) -> PsbtSession:
        from l2custody.wallet.review import summarize

        summary = summarize(psbt, self.descriptor, known_scripts=self._known_scripts())
        with self.store.transaction():
            state = advance(self.store.psbt(session.id).state, state)
            self.store.update_psbt(session.id, state=state, psbt=psbt.to_base64())
            self.store.audit(self.actor, action, session.id, details)
        return PsbtSession(session.id, session.kind, state, psbt, summary, session.txid, session.details)

    # --- the steps ---------------------------------------------------------------------

    def sign(self, psbt: PSBT, signer_name: str) -> SignResult:
        """Verify, then sign with a registered signer; the signatures are saved in the session.

        A file signer exports the PSBT on the first call (``exported``) and
        merges the signed files dropped back on a later call.
        """
        from l2custody.wallet.signer_registry import load_signer
        from l2custody.wallet.signers import FileSigner

        session = self.verify(psbt)
        rec = self.store.signer(signer_name)
        before = _valid_signatures(session.summary)
        signer = load_signer(rec, self.record.network)
        if isinstance(signer, FileSigner):
            from l2custody.wallet.psbt import combine

            collected = signer.collect(session.id, unsigned=session.psbt)
            if not collected:
                paths = signer.export(session.psbt, session.id)
                with self.store.transaction():
                    self.store.audit(
                        self.actor, "psbt-exported", session.id, {"signer": rec.name, "files": [str(p) for p in paths]}
                    )
                return SignResult(session, rec.name, 0, session.summary.complete, tuple(paths))
            signed = combine([session.psbt, *collected])
        else:
            signed = signer.sign(session.psbt)
        checked = self._check_signed(session, signed, rec.name)
        added = _valid_signatures(checked.summary) - before
        if added == 0 and not _signed_by(checked.summary, rec.fingerprint):
            raise SignerError(
                f"signer {rec.name} (fingerprint {rec.fingerprint}) added no signature to session {session.id}; "
                "is its key one of this wallet's keys?"
            )
        state = "signed" if checked.summary.complete else "partially-signed"
        result = self._persist(
            checked,
            checked.psbt,
            state,
            "psbt-signed",
            {
                "signer": rec.name,
                "fingerprint": rec.fingerprint,
                "added": added,
                "fingerprint_psbt": checked.summary.fingerprint,
            },
        )
        return SignResult(result, rec.name, added, result.summary.complete)

    def _check_signed(self, session: PsbtSession, signed: PSBT, who: str) -> PsbtSession:
        """Run the full verification on what a signer returned (foreign or bad signatures are refused)."""
        from l2custody.wallet.psbt import psbt_fingerprint

        if psbt_fingerprint(signed) != session.summary.fingerprint:
            raise PsbtTampered(f"signer {who} returned a different transaction than session {session.id}; refusing it")
        signed.unknown[SESSION_KEY] = session.id.encode()
        return self.verify(signed, audit=False)

    def combine(self, psbts: Sequence[PSBT]) -> PsbtSession:
        """Merge copies of one session's PSBT (each verified); the union of signatures is saved."""
        from l2custody.wallet.psbt import combine

        if not psbts:
            raise PsbtError("nothing to combine: give at least one PSBT file")
        sessions = [self.verify(p, audit=False) for p in psbts]
        ids = {s.id for s in sessions}
        if len(ids) != 1:
            raise PsbtError(f"the PSBTs belong to different sessions ({', '.join(sorted(ids))}); combine copies of one")
        first = sessions[0]
        merged = self._check_signed(first, combine([s.psbt for s in sessions]), "combine")
        state = "signed" if merged.summary.complete else "partially-signed"
        return self._persist(merged, merged.psbt, state, "psbt-combined", {"copies": len(psbts)})

    def finalize(self, psbt: PSBT) -> tuple[PsbtSession, bytes]:
        """Verify and finalize (K valid signatures per input); returns the session and the raw tx."""
        from l2custody.wallet.psbt import extract, finalize_psbt

        session = self.verify(psbt)
        if session.kind in CUSTODY_KINDS:
            raise PsbtError(
                f"session {session.id} funds Lightning channels: finalize and broadcast it with "
                f"`l2custody session broadcast {session.id}` (it checks every channel is counter-signed "
                "and the deadline first)"
            )
        final = finalize_psbt(session.psbt, self.descriptor)
        final.unknown[SESSION_KEY] = session.id.encode()
        raw = extract(final)
        done = self._persist(session, final, "finalized", "psbt-finalized", {"txid": session.txid})
        return done, raw

    def broadcast(self, psbt: PSBT) -> BroadcastResult:
        """Verify, finalize if needed, and broadcast; the wallet records the spend right away.

        BroadcastRejected: nothing went out (session back to ``finalized``).
        BroadcastUnknown: we cannot tell; the session is marked
        ``broadcast-unknown`` — check the chain (``wallet sync``) before anything else.
        """
        session, raw = self.finalize(psbt)
        previous = session.state
        with self.store.transaction():
            self.store.update_psbt(session.id, state=advance(previous, "broadcasting"), txid=session.txid)
            self.store.audit(self.actor, "broadcast-started", session.id, {"txid": session.txid})
        try:
            txid = self.chain.broadcast(raw)
        except BroadcastRejected as exc:
            with self.store.transaction():
                self.store.update_psbt(session.id, state=previous)
                self.store.audit(self.actor, "broadcast-rejected", session.id, {"reason": exc.message})
            raise
        except BroadcastUnknown as exc:
            with self.store.transaction():
                self.store.update_psbt(session.id, state=advance(previous, "broadcast-unknown"))
                self.store.audit(self.actor, "broadcast-unknown", session.id, {"reason": exc.message})
            raise
        self._scanner().record_unconfirmed(raw)
        with self.store.transaction():
            self.store.update_psbt(session.id, state=advance(previous, "broadcast"), txid=txid)
            self.store.audit(self.actor, "broadcast", session.id, {"txid": txid})
        done = PsbtSession(session.id, session.kind, "broadcast", session.psbt, session.summary, txid, session.details)
        return BroadcastResult(done, txid, raw)


def _valid_signatures(summary: PsbtSummary) -> int:
    return sum(i.signatures for i in summary.inputs if not i.finalized)


def _signed_by(summary: PsbtSummary, fingerprint: str) -> bool:
    return any(fingerprint in i.signed_by for i in summary.inputs)
