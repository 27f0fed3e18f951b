"""``wallet rehearse``: the test transaction multisig guides ask for, made rigorous.

A rehearsal spends a small amount (10,000 sat by default) from the wallet to a
fresh receive address of the same wallet, through the whole pipeline, with
K chosen signers:

1. the PSBT is built, reviewed (no output may leave the wallet: the receive
   output and our change are the only outputs) and saved with its coins
   reserved, together with the rehearsal row (one store transaction);
2. each chosen signer signs: software keys at once, hardware wallets after
   showing the rehearsal's receive address on their screen for the operator
   to confirm, air-gapped (file) signers through their folder. A file
   signer is asynchronous: the PSBT is exported, and a later run (or
   ``--wait-signers``) picks the signed file up;
3. the signed PSBT is finalized and broadcast;
4. the wallet follows the chain until the transaction confirms;
5. the rehearsal output and the change must be coins of the wallet at the
   values that were built; the fee actually paid is recorded.

Every move is saved with an audit entry (``rehearsal-*``) before the step that
depends on it, so running ``wallet rehearse`` again continues an unfinished
rehearsal (never a second PSBT); ``abort`` gives it up and releases its coins.
A signer that refuses, or returns its PSBT without its signature, fails the
rehearsal: the session is aborted and its coins released. A signer that is
merely not there (a device unplugged) leaves the rehearsal waiting.

Signers are chosen by the operator (exactly K registered signers with
different keys of this wallet generation) or by rotation: those that signed a
confirmed rehearsal of this generation least recently, never-rehearsed ones
first, so that over successive rehearsals every signer proves it can sign.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from l2custody.amounts import DUST_SAT, format_sats
from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    InsufficientFunds,
    L2CustodyError,
    PsbtError,
    PsbtTampered,
    SignerError,
    SignerUnavailable,
    UsageError,
)
from l2custody.wallet.rehearsal_records import (
    RehearsalRecord,
    RehearsalState,
    SignerRef,
    last_signed,
    new_rehearsal_id,
    rehearsals,
    save_rehearsal,
    unfinished,
)

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import SignerRecord
    from l2custody.wallet.descriptors import WalletDescriptor
    from l2custody.wallet.review import PsbtSummary
    from l2custody.wallet.service import PsbtSession, Wallet

DEFAULT_AMOUNT_SAT = 10_000
#: The PSBT session kind of a rehearsal's spend (a plain spend to ourselves for the pipeline).
KIND = "rehearsal"
STEPS = 5
#: Signing order: signers that answer at once first, so an air-gapped signer gets their signatures too.
_KIND_ORDER = {"software": 0, "hwi": 1, "file": 2}
#: How often a waiting rehearsal says it is still waiting.
_PROGRESS_EVERY = 15.0

Progress = Callable[[str], None]
#: (signer name, address) -> whether the operator sees that address on the device's screen.
ConfirmAddress = Callable[[str, str], bool]


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class RehearsalOptions:
    """What ``wallet rehearse`` was asked. ``amount_sat`` None: the default (or, when
    continuing, the unfinished rehearsal's own)."""

    signers: tuple[str, ...] = ()
    amount_sat: int | None = None
    fee_rate: float | None = None
    wait_signers: float = 0.0  # seconds to poll file signers' folders for their signed PSBTs
    timeout: float = 3600.0  # seconds to wait for the confirmation
    poll_seconds: float = 2.0


@dataclass(frozen=True)
class RehearsalResult:
    """Where a run left the rehearsal. ``waiting_for``: file signers whose signed PSBT is not
    back yet; ``next_step``: what to do when it is not finished."""

    record: RehearsalRecord
    resumed: bool
    waiting_for: tuple[str, ...] = ()
    next_step: str | None = None
    released: int = 0  # coins released (an abort)

    @property
    def done(self) -> bool:
        return self.record.state is RehearsalState.CONFIRMED

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.record.to_dict(),
            "resumed": self.resumed,
            "done": self.done,
            "waiting_for": list(self.waiting_for),
            "next": self.next_step,
            "released": self.released,
        }


# --- choosing the signers ------------------------------------------------------------------------
def choose_signers(
    registered: Sequence[SignerRecord],
    desc: WalletDescriptor,
    last: Mapping[str, float],
    requested: Sequence[str] = (),
) -> list[SignerRecord]:
    """The K signers of a rehearsal: exactly the ``requested`` ones (checked), or those of
    ``registered`` whose keys are in ``desc`` that signed a confirmed rehearsal least recently
    (``last``: name -> when; never-rehearsed first, then by name), one per key.
    UsageError says what is wrong, naming the signers and keys."""
    if requested:
        return _requested(registered, desc, requested)
    primary = {k.fingerprint for k in desc.primary_keys}  # a rehearsal proves the path that spends at any time
    usable = [s for s in registered if s.fingerprint and s.fingerprint in primary]
    ordered = sorted(usable, key=lambda s: (s.name in last, last.get(s.name, 0.0), s.name))
    chosen: list[SignerRecord] = []
    for s in ordered:
        if s.fingerprint not in {c.fingerprint for c in chosen}:
            chosen.append(s)
        if len(chosen) == desc.threshold:
            return chosen
    covered = {s.fingerprint for s in usable}
    missing = [k.fingerprint for k in desc.primary_keys if k.fingerprint not in covered]
    have = ", ".join(f"{s.name} ({s.fingerprint})" for s in usable) or "none"
    raise UsageError(
        f"a rehearsal needs {desc.threshold} signers holding different keys of the wallet, but only "
        f"{len(covered)} of its {desc.n} keys have a registered signer ({have}); register a signer for "
        f"{', '.join(missing)} with `l2custody signer add`"
    )


def _requested(registered: Sequence[SignerRecord], desc: WalletDescriptor, names: Sequence[str]) -> list[SignerRecord]:
    by_name = {s.name: s for s in registered}
    seen: set[str] = set()
    chosen: list[SignerRecord] = []
    for name in names:
        if name in seen:
            raise UsageError(f"signer {name} is named twice in --signers; name {desc.threshold} different signers")
        seen.add(name)
        s = by_name.get(name)
        if s is None:
            raise UsageError(f"no signer named {name!r}; see `l2custody signer list`")
        if not s.fingerprint:
            raise UsageError(
                f"signer {name} has no key fingerprint registered, so its signature cannot be told apart; "
                f"register it again with --fingerprint"
            )
        if s.fingerprint not in {k.fingerprint for k in desc.primary_keys}:
            keys = ", ".join(k.fingerprint for k in desc.primary_keys)
            what = "a time-locked recovery key" if desc.contains_key(s.fingerprint) else "not one of this wallet's keys"
            raise UsageError(
                f"signer {name}'s key {s.fingerprint} is {what}; a rehearsal signs with the primary keys ({keys})"
            )
        twin = next((c for c in chosen if c.fingerprint == s.fingerprint), None)
        if twin is not None:
            raise UsageError(
                f"signers {twin.name} and {name} hold the same key {s.fingerprint}; a rehearsal needs "
                f"{desc.threshold} different keys"
            )
        chosen.append(s)
    if len(chosen) != desc.threshold:
        raise UsageError(
            f"the wallet needs {desc.threshold} signatures: name exactly {desc.threshold} signers with "
            f"--signers (got {len(chosen)}: {', '.join(names)})"
        )
    return chosen


# --- the runner ----------------------------------------------------------------------------------
class Rehearsal:
    """Runs (or continues, or aborts) the rehearsal of ``wallet``'s current generation.

    ``progress`` hears each step as it happens; ``confirm_address`` asks the operator
    whether a hardware signer's screen shows the rehearsal's receive address (None:
    nobody can be asked, and a hardware signer cannot be rehearsed)."""

    def __init__(
        self, wallet: Wallet, progress: Progress = _quiet, confirm_address: ConfirmAddress | None = None
    ) -> None:
        self.wallet = wallet
        self.store = wallet.store
        self.progress = progress
        self.confirm_address = confirm_address

    def run(self, options: RehearsalOptions) -> RehearsalResult:
        """Start a rehearsal, or continue the unfinished one, as far as it goes now."""
        rec = unfinished(self.store, self.wallet.record.id)
        resumed = rec is not None
        if rec is None:
            rec = self._start(options)
        else:
            self._check_same(rec, options)
            self.progress(f"continuing rehearsal {rec.id} ({rec.state}; signers {', '.join(rec.signer_names)})")
        if rec.state is RehearsalState.SIGNING:
            rec, waiting = self._collect(rec, options)
            if waiting:
                return RehearsalResult(rec, resumed, tuple(waiting), self._waiting_text(rec, waiting))
            rec = self._broadcast(rec)
        elif rec.state is RehearsalState.BROADCASTING:
            rec = self._rebroadcast(rec)
        if rec.state is RehearsalState.BROADCAST:
            rec = self._confirm(rec, options)
        if rec.state is RehearsalState.BROADCAST:
            return RehearsalResult(rec, resumed, (), self._unconfirmed_text(rec))
        return RehearsalResult(rec, resumed)

    def abort(self, reason: str = "") -> RehearsalResult:
        """Give up the unfinished rehearsal: its PSBT session is aborted (coins released)."""
        rec = unfinished(self.store, self.wallet.record.id)
        if rec is None:
            raise UsageError("there is no unfinished rehearsal to abort; start one with `l2custody wallet rehearse`")
        if rec.state.may_be_on_chain:
            raise PsbtError(
                f"rehearsal {rec.id} is {rec.state}: its transaction may be on the chain, so it cannot be "
                "aborted; run `l2custody wallet rehearse` to finish it"
            )
        why = reason or "aborted by the operator"
        with self.store.transaction():
            released = self.wallet.abort(rec.session_id, f"rehearsal {rec.id}: {why}")
            rec = self._save(rec.moved(RehearsalState.ABORTED, error=why), "rehearsal-aborted", released=released)
        self.progress(f"rehearsal {rec.id} aborted; {released} coin(s) released")
        return RehearsalResult(rec, True, released=released)

    # --- 1. the PSBT -------------------------------------------------------------------------
    def _start(self, options: RehearsalOptions) -> RehearsalRecord:
        from l2custody.wallet.psbt import TxOut

        wallet = self.wallet
        amount = DEFAULT_AMOUNT_SAT if options.amount_sat is None else options.amount_sat
        if amount < DUST_SAT:
            raise UsageError(f"a rehearsal must pay at least {format_sats(DUST_SAT)} (dust), not {format_sats(amount)}")
        records = rehearsals(self.store, wallet.record.id)
        chosen = choose_signers(self.store.signers(), wallet.descriptor, last_signed(records), options.signers)
        self.progress("syncing the wallet")
        wallet.sync()
        spendable = sum(u.value for u in wallet.spendable_coins())
        if spendable <= amount:
            record = wallet.record
            fund = (
                f"move one coin of generation {record.generation - 1} into it (`l2custody wallet migrate --generation "
                f"{record.generation - 1} --utxo TXID:N`, TXID:N from `l2custody wallet utxos --generation "
                f"{record.generation - 1}`)"
                if record.generation > 1
                else "fund it (`l2custody wallet address`)"
            )
            raise InsufficientFunds(
                f"a rehearsal pays {format_sats(amount)} to the wallet itself plus the fee, and the wallet "
                f"(generation {record.generation}) can spend {format_sats(spendable)}: {fund}, wait for a "
                "confirmation, then rehearse"
            )
        rid = new_rehearsal_id()
        receive = wallet.next_address(label=f"rehearsal {rid}")
        out = TxOut.to_address(receive.address, amount, wallet.record.network)
        try:
            psbt = wallet.build_spend([out], options.fee_rate)
        except InsufficientFunds as exc:
            raise InsufficientFunds(
                f"{exc.message}. A rehearsal pays {format_sats(amount)} to the wallet itself plus the fee: fund "
                "the wallet (`l2custody wallet address`), wait for a confirmation, then rehearse"
            ) from None
        with self.store.transaction():  # the session (coins reserved) and its rehearsal, or neither
            session = wallet.save_session(psbt, KIND, expected_outputs=[out], details={"rehearsal": rid})
            details = _built(session, receive.address, receive.index, wallet.record.generation)
            refs = tuple(SignerRef(s.name, s.fingerprint, s.kind) for s in chosen)
            rec = RehearsalRecord(rid, wallet.record.id, RehearsalState.SIGNING, amount, refs, details=details)
            rec = self._save(rec, "rehearsal-started", session=session.id, signers=list(rec.signer_names))
        change = details["change"]
        change_text = f", change {format_sats(change['value'])} to change #{change['index']}" if change else ""
        self.progress(
            f"[1/{STEPS}] rehearsal {rid}: PSBT {session.id} reviewed: pays {format_sats(amount)} to the wallet's "
            f"own receive address {receive.address} (#{receive.index}){change_text}, fee "
            f"{format_sats(details['fee'])}; no output leaves the wallet. Signers: {', '.join(rec.signer_names)}"
        )
        return rec

    def _check_same(self, rec: RehearsalRecord, options: RehearsalOptions) -> None:
        asked = bool(options.signers) and set(options.signers) != set(rec.signer_names)
        if asked or options.amount_sat not in (None, rec.amount):
            raise UsageError(
                f"rehearsal {rec.id} ({format_sats(rec.amount)}, signers {', '.join(rec.signer_names)}) is not "
                "finished: run `l2custody wallet rehearse` without --signers/--amount to continue it, or "
                "`l2custody wallet rehearse --abort` to give it up first"
            )

    # --- 2. the signatures -------------------------------------------------------------------
    def _collect(self, rec: RehearsalRecord, options: RehearsalOptions) -> tuple[RehearsalRecord, list[str]]:
        """Every chosen signer signs; file signers are waited for up to ``wait_signers`` seconds."""
        deadline = time.monotonic() + options.wait_signers
        said = 0.0
        rec, waiting = self._sign_all(rec)
        while waiting and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            if time.monotonic() - said >= _PROGRESS_EVERY:
                said = time.monotonic()
                self.progress(f"[2/{STEPS}] waiting for {', '.join(waiting)}'s signed PSBT ({left:.0f} s left)")
            time.sleep(max(0.0, min(options.poll_seconds, left)))
            rec, waiting = self._sign_all(rec)
        return rec, waiting

    def _sign_all(self, rec: RehearsalRecord) -> tuple[RehearsalRecord, list[str]]:
        session = self.wallet.session(rec.session_id)
        if session.state in ("aborted", "failed"):
            self._fail(rec, f"its PSBT session {session.id} was {session.state} outside the rehearsal", PsbtError)
        waiting = []
        for ref in sorted(rec.signers, key=lambda r: (_KIND_ORDER.get(r.kind, 3), r.name)):
            if ref.name in rec.signed:
                continue
            try:
                rec, signed = self._sign_one(rec, ref)
            except SignerUnavailable as exc:
                raise SignerUnavailable(
                    f"{exc.message}. Rehearsal {rec.id} waits for {ref.name}: run `l2custody wallet rehearse` "
                    "again when it is ready, or `l2custody wallet rehearse --abort`"
                ) from None
            except (SignerError, PsbtTampered) as exc:
                self._fail(rec, f"signer {ref.name}: {exc.message}", type(exc))
            if not signed:
                waiting.append(ref.name)
        if not waiting and not self.wallet.session(rec.session_id).summary.complete:
            self._fail(rec, f"the signatures of {', '.join(rec.signer_names)} do not complete the PSBT", SignerError)
        return rec, waiting

    def _sign_one(self, rec: RehearsalRecord, ref: SignerRef) -> tuple[RehearsalRecord, bool]:
        """One signer's turn: True when it signed, False when its PSBT is out (a file signer)."""
        from l2custody.wallet.signer_registry import load_signer

        signer_rec = self.store.signer(ref.name)
        if signer_rec.kind == "hwi" and ref.name not in rec.details.get("address_checks", {}):
            rec = self._check_address(rec, signer_rec)
        session = self.wallet.session(rec.session_id)
        if signer_rec.kind == "file" and ref.name in rec.details.get("exported", {}):
            signer = load_signer(signer_rec, self.wallet.record.network)
            returned = signer.returned(session.id, unsigned=session.psbt)
            for path, psbt in returned:
                if not _signed_everywhere(self.wallet.summarize(psbt)[0], ref.fingerprint):
                    raise SignerError(
                        f"{path.name} came back without its signature (key {ref.fingerprint}): the signer refused "
                        "to sign, or signed with another key"
                    )
            # the export itself carries the other signers' signatures: back means this key's signature
            # (in a returned file, or in the export overwritten with the signed PSBT)
            overwritten = any(
                _signed_everywhere(self.wallet.summarize(p)[0], ref.fingerprint)
                for p in signer.collect(session.id, unsigned=session.psbt)
            )
            if not returned and not overwritten:
                return rec, False
        result = self.wallet.sign(session.psbt, ref.name)
        if result.exported:
            files = [str(p) for p in result.exported]
            exported = {**rec.details.get("exported", {}), ref.name: files}
            rec = self._save(
                rec.moved(rec.state, details={"exported": exported}), "rehearsal-exported", signer=ref.name, files=files
            )
            self.progress(
                f"[2/{STEPS}] {ref.name} (air-gapped): PSBT written to {files[0]} (base64 in {result.exported[1].name}); "
                f"sign it on the device and put the signed file back as {session.id}-signed.psbt"
            )
            return rec, False
        signed = {**rec.signed, ref.name: {"at": time.time(), "added": result.added, "fingerprint": ref.fingerprint}}
        rec = self._save(
            rec.moved(rec.state, details={"signed": signed}), "rehearsal-signed", signer=ref.name, added=result.added
        )
        self.progress(
            f"[2/{STEPS}] {ref.name} ({ref.kind}) signed: {result.added} signature(s); "
            f"{len(signed)} of {len(rec.signers)} signers"
        )
        return rec, True

    def _check_address(self, rec: RehearsalRecord, signer_rec: SignerRecord) -> RehearsalRecord:
        """A hardware signer shows the rehearsal's receive address, derived from the multisig on
        the device; it must be ours, and the operator confirms seeing it."""
        from l2custody.wallet.signer_registry import load_signer

        address, index = rec.details["receive"]["address"], rec.details["receive"]["index"]
        if self.confirm_address is None:
            raise SignerUnavailable(
                f"signer {signer_rec.name} is a hardware wallet: rehearsing it shows the receive address on its "
                "screen for the operator to confirm, and nobody can be asked here; run `l2custody wallet "
                "rehearse` in a terminal"
            )
        self.progress(f"[2/{STEPS}] {signer_rec.name}: showing the rehearsal's receive address on the device")
        signer = load_signer(signer_rec, self.wallet.record.network)
        shown = signer.display_address(self.wallet.descriptor.address_descriptor(False, index))
        if shown != address:
            raise SignerError(
                f"the device derives {shown} for the rehearsal's receive address, the wallet {address}: it does "
                "not hold this multisig (register the wallet on the device, check its keys); do not use this setup"
            )
        if not self.confirm_address(signer_rec.name, address):
            raise SignerError(
                f"the operator did not confirm that {signer_rec.name} shows {address}; a device that shows "
                "another address must not be trusted with this wallet"
            )
        checks = {**rec.details.get("address_checks", {}), signer_rec.name: {"address": address, "at": time.time()}}
        return self._save(
            rec.moved(rec.state, details={"address_checks": checks}),
            "rehearsal-address-confirmed",
            signer=signer_rec.name,
            address=address,
        )

    # --- 3. broadcast --------------------------------------------------------------------------
    def _broadcast(self, rec: RehearsalRecord) -> RehearsalRecord:
        session = self.wallet.session(rec.session_id)
        rec = self._save(rec.moved(RehearsalState.BROADCASTING, txid=session.txid), "rehearsal-broadcasting")
        return self._send(rec, session)

    def _rebroadcast(self, rec: RehearsalRecord) -> RehearsalRecord:
        """An earlier broadcast whose outcome was unknown: the chain decides (resending is safe)."""
        self.wallet.sync()
        known, _height = self.store.transaction_height(rec.txid or "")
        if known:
            return self._save(rec.moved(RehearsalState.BROADCAST), "rehearsal-broadcast", found="on the chain")
        return self._send(rec, self.wallet.session(rec.session_id))

    def _send(self, rec: RehearsalRecord, session: PsbtSession) -> RehearsalRecord:
        try:
            sent = self.wallet.broadcast(session.psbt)
        except BroadcastRejected as exc:
            self._fail(rec, f"the chain refused the transaction: {exc.message}", BroadcastRejected)
        except BroadcastUnknown as exc:
            raise BroadcastUnknown(
                f"{exc.message}. Rehearsal {rec.id} stays {rec.state}: run `l2custody wallet rehearse` again, "
                "it checks the chain first"
            ) from None
        rec = self._save(rec.moved(RehearsalState.BROADCAST, txid=sent.txid), "rehearsal-broadcast")
        self.progress(f"[3/{STEPS}] finalized and broadcast: {sent.txid}")
        return rec

    # --- 4. confirmation, 5. the coins back ----------------------------------------------------
    def _confirm(self, rec: RehearsalRecord, options: RehearsalOptions) -> RehearsalRecord:
        from l2custody.custody.polling import poll_until

        started = time.monotonic()
        said = [-_PROGRESS_EVERY]

        def read() -> tuple[int, int | None]:
            self.wallet.sync()
            return self.store.confirmations(rec.txid)

        def show(reading: tuple[int, int | None]) -> None:
            now = time.monotonic() - started
            if reading[0] < 1 and now - said[0] >= _PROGRESS_EVERY:
                said[0] = now
                tip = self.store.scanned_tip()
                self.progress(
                    f"[4/{STEPS}] waiting for a confirmation of {rec.txid} (block {tip[0] if tip else '?'}, "
                    f"{now:.0f} of {options.timeout:.0f} s)"
                )

        confirmations, height = poll_until(
            read, lambda r: r[0] >= 1, timeout=options.timeout, interval=options.poll_seconds, progress=show
        )
        if confirmations < 1:
            return rec
        self.progress(f"[4/{STEPS}] confirmed in block {height}")
        return self._check_coins(rec, height)

    def _check_coins(self, rec: RehearsalRecord, height: int | None) -> RehearsalRecord:
        """The rehearsal output and the change are coins of this wallet at the values built."""
        from embit.transaction import Transaction

        txid = rec.txid or ""
        problems = []
        outs = [("the rehearsal output", rec.details["receive"] | {"value": rec.amount})]
        if rec.details.get("change"):
            outs.append(("the change", rec.details["change"]))
        for what, built in outs:
            coin = self.store.utxo(txid, built["vout"])
            owner = self.store.address_owner(coin.script) if coin is not None else None
            if coin is None or coin.value != built["value"] or owner != rec.wallet_id or coin.index != built["index"]:
                found = "no wallet coin" if coin is None else f"{format_sats(coin.value)} at index {coin.index}"
                problems.append(
                    f"{what} {txid}:{built['vout']} should be {format_sats(built['value'])} at index "
                    f"{built['index']} of this wallet; found {found}"
                )
        if problems:
            self._fail(rec, "; ".join(problems), PsbtTampered)
        raw = self.store.transaction_raw(txid)
        paid = sum(o.value for o in Transaction.parse(raw).vout) if raw else 0
        fee = rec.details["inputs_value"] - paid
        rec = self._save(
            rec.moved(RehearsalState.CONFIRMED, height=height, details={"confirmed_at": time.time(), "fee_paid": fee}),
            "rehearsal-confirmed",
            height=height,
            fee=fee,
        )
        back = ", ".join(f"{txid[:16]}…:{b['vout']} ({format_sats(b['value'])})" for _w, b in outs)
        self.progress(f"[5/{STEPS}] the coins are back in the wallet: {back}; fee {format_sats(fee)}")
        return rec

    # --- saving and failing ---------------------------------------------------------------------
    def _save(self, rec: RehearsalRecord, action: str, **audit: Any) -> RehearsalRecord:
        with self.store.transaction():
            rec = save_rehearsal(self.store, rec)
            self.store.audit(self.wallet.actor, action, rec.id, {"state": rec.state.value, "txid": rec.txid, **audit})
        return rec

    def _fail(self, rec: RehearsalRecord, why: str, error: type[L2CustodyError]) -> NoReturn:
        """Record the rehearsal FAILED (its PSBT session aborted and coins released, unless
        the transaction is on the chain) and raise ``error`` saying so."""
        released = 0
        sent = rec.state is RehearsalState.BROADCAST
        with self.store.transaction():
            if not sent:
                released = self.wallet.abort(rec.session_id, f"rehearsal {rec.id} failed")
            failed = rec.moved(RehearsalState.FAILED, error=why)
            rec = self._save(failed, "rehearsal-failed", error=why, released=released)
        undone = (
            "Its transaction is on the chain."
            if sent
            else f"Its PSBT session was aborted and {released} coin(s) released; nothing was broadcast."
        )
        raise error(
            f"rehearsal {rec.id} failed: {why}. {undone} Fix it and run `l2custody wallet rehearse` again "
            "(`l2custody report` shows the failure until a rehearsal succeeds)"
        )

    # --- telling what is next ---------------------------------------------------------------
    def _waiting_text(self, rec: RehearsalRecord, waiting: list[str]) -> str:
        exported = rec.details.get("exported", {})
        where = "; ".join(f"{n}: {exported[n][0]}" for n in waiting if n in exported)
        return (
            f"sign the exported PSBT on the air-gapped device ({where}) and put the signed file back in the same "
            f"folder as {rec.session_id}-signed.psbt, then run `l2custody wallet rehearse` again (or let it wait: "
            "--wait-signers SECONDS)"
        )

    def _unconfirmed_text(self, rec: RehearsalRecord) -> str:
        return (
            f"transaction {rec.txid} is broadcast and not confirmed yet: run `l2custody wallet rehearse` again "
            "once it has a confirmation (`l2custody report` shows the rehearsal pending)"
        )


def _built(session: PsbtSession, address: str, index: int, generation: int) -> dict[str, Any]:
    """What the rehearsal's PSBT does, as its record keeps it (every output must be ours)."""
    summary = session.summary
    foreign = [o for o in summary.outputs if not o.ours]
    if foreign:  # review already insisted on exactly our receive output plus change; say so if not
        raise PsbtTampered(f"the rehearsal PSBT pays output {foreign[0].index} outside the wallet; refusing")
    receive = next(o for o in summary.outputs if not o.change and o.address == address)
    change = next((o for o in summary.outputs if o.change), None)
    return {
        "session": session.id,
        "generation": generation,
        "receive": {"address": address, "index": index, "vout": receive.index},
        "change": (
            {"address": change.address, "index": change.derivation_index, "vout": change.index, "value": change.value}
            if change is not None
            else None
        ),
        "inputs": [f"{i.txid}:{i.vout}" for i in summary.inputs],
        "inputs_value": summary.total_in,
        "fee": summary.fee,
        "fee_rate": summary.fee_rate,
    }


def _signed_everywhere(summary: PsbtSummary, fingerprint: str) -> bool:
    """Every input carries a valid signature of the key ``fingerprint``."""
    return all(fingerprint in i.signed_by for i in summary.inputs)
