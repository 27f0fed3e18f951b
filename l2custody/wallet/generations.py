"""Wallet generations: change the treasury's keys while channels committed to old keys stay open.

A channel's cooperative-close address is committed at open and fixed for the channel's
life. When a signer changes, or a key is lost or exposed, the keys must change, yet every
channel opened before still pays the old key set when it closes. So the wallet keeps
generations (``wallet rotate``):

- generation N+1 is generation N with keys added, removed or replaced, or another
  threshold (:func:`plan_rotation`); the audit log and the row's details say why;
- every new address comes from the newest generation only (``Store.wallet`` returns it);
- the scanner keeps following every older generation, so a coin paid to one years later
  (a channel closing to the address it committed) is found;
- :func:`migrate` builds, per older generation holding coins, one PSBT moving them to the
  newest generation, signed by that generation's own quorum;
- a key removed as lost or exposed never comes back in a later generation.

When so many keys of a generation are lost that its quorum can no longer sign, nothing
here can move its coins: only a recovery path (a time-locked miniscript wallet, a
separate feature) could. :func:`generation_infos` says so per generation
(``can_sign``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2custody.errors import DescriptorError, UsageError
from l2custody.wallet.descriptor import KeyOrigin, MultisigDescriptor
from l2custody.wallet.descriptors import parse_wallet_descriptor
from l2custody.wallet.pipeline import STATE_ORDER

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store, WalletRecord
    from l2custody.wallet.pipeline import PsbtSession
    from l2custody.wallet.service import Wallet

#: Session states in which a PSBT of a generation is still open (its coins reserved,
#: its change and close addresses still to be paid): a rotation waits for them. The
#: pipeline's states before "broadcast", and a funding session's negotiating/secured.
OPEN_SESSION_STATES = STATE_ORDER[: STATE_ORDER.index("broadcast")] + ("negotiating", "secured")


@dataclass(frozen=True)
class RotationPlan:
    """What ``wallet rotate`` will create: the next generation's descriptor and why."""

    previous: MultisigDescriptor
    descriptor: MultisigDescriptor
    added: tuple[KeyOrigin, ...]
    removed: tuple[KeyOrigin, ...]
    reason: str

    def details(self, previous_generation: int) -> dict[str, Any]:
        """What the new generation's row and the audit entry record."""
        return {
            "previous_generation": previous_generation,
            "reason": self.reason,
            "added": [k.to_string() for k in self.added],
            "removed": [
                {"key": k.to_string(), "fingerprint": k.fingerprint, "reason": self.reason} for k in self.removed
            ],
            "threshold": [self.previous.threshold, self.descriptor.threshold],
        }


@dataclass(frozen=True)
class KeyInfo:
    """One key of a generation, as the exposure report shows it."""

    fingerprint: str
    signer: str | None  # the registered signer holding it, if any
    removed_in: int | None = None  # the generation whose rotation removed it
    removed_reason: str | None = None

    @property
    def usable(self) -> bool:
        """Whether it can still be counted on to sign (not removed as lost or exposed)."""
        return self.removed_in is None


@dataclass(frozen=True)
class GenerationInfo:
    """One generation: its keys, its coins, whether its quorum can still sign."""

    generation: int
    wallet_id: int
    current: bool
    threshold: int
    keys: tuple[KeyInfo, ...]
    balance_sat: int
    coins: int
    descriptor_id: str
    reason: str | None = None
    created: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def usable_keys(self) -> int:
        return sum(1 for k in self.keys if k.usable)

    @property
    def can_sign(self) -> bool:
        """Whether enough of its keys remain (not removed) to reach its threshold."""
        return self.usable_keys >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "current": self.current,
            "threshold": self.threshold,
            "keys": [k.__dict__ | {"usable": k.usable} for k in self.keys],
            "usable_keys": self.usable_keys,
            "can_sign": self.can_sign,
            "balance_sat": self.balance_sat,
            "coins": self.coins,
            "descriptor_id": self.descriptor_id,
            "reason": self.reason,
        }


# --- planning a rotation (pure) ------------------------------------------------------------
def _removed_keys(records: Sequence[WalletRecord]) -> dict[str, tuple[int, str]]:
    """fingerprint -> (generation that removed it, why), over every rotation so far."""
    out: dict[str, tuple[int, str]] = {}
    for record in records:
        for entry in record.details.get("removed", []):
            out.setdefault(str(entry.get("fingerprint", "")), (record.generation, str(entry.get("reason", ""))))
    return out


def _find_key(desc: MultisigDescriptor, ref: str, signers: Mapping[str, str]) -> KeyOrigin:
    """The key of ``desc`` that ``ref`` names: a signer name, a master fingerprint or the key itself."""
    text = ref.strip()
    fingerprint = signers.get(text)
    looks_like_fingerprint = re.fullmatch(r"[0-9a-fA-F]{8}", text) is not None
    if fingerprint is not None and looks_like_fingerprint and fingerprint != text.lower() and desc.contains_key(text):
        raise UsageError(
            f"{text!r} is both the name of signer {text} (key {fingerprint}) and the fingerprint of another key; "
            "give the key itself ([fp/path]xpub) to say which one leaves"
        )
    if fingerprint is None and looks_like_fingerprint:
        fingerprint = text.lower()
    if fingerprint is None and text.startswith("["):
        try:
            fingerprint = KeyOrigin.parse(text).fingerprint
        except DescriptorError as exc:
            raise UsageError(f"--remove {text[:24]}...: {exc.message}") from None
    key = desc.key_for_fingerprint(fingerprint) if fingerprint else None
    if key is None:
        have = ", ".join(
            f"{k.fingerprint} ({name})" if (name := _name_of(k, signers)) else k.fingerprint for k in desc.keys
        )
        raise UsageError(
            f"{text!r} names no key of the current generation; give a signer name, a master fingerprint or the "
            f"key [fp/path]xpub. Its keys: {have}"
        )
    return key


def _name_of(key: KeyOrigin, signers: Mapping[str, str]) -> str | None:
    return next((name for name, fp in signers.items() if fp == key.fingerprint), None)


def plan_rotation(
    current: MultisigDescriptor,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    threshold: int | None = None,
    reason: str,
    signers: Mapping[str, str] | None = None,
    history: Sequence[WalletRecord] = (),
) -> RotationPlan:
    """The next generation: ``current`` minus ``remove`` plus ``add``, at ``threshold``
    (default: the current one). ``signers`` maps registered signer names to fingerprints
    (so ``--remove alice`` works); ``history`` is every generation so far (a key removed
    by an earlier rotation may not come back). Raises UsageError / DescriptorError."""
    if not reason or not reason.strip():
        raise UsageError(
            "say why the keys change (--reason, e.g. 'key of bob exposed' or 'carol left'): the audit log keeps it"
        )
    names = dict(signers or {})
    removed = []
    for ref in remove:
        key = _find_key(current, ref, names)
        if key in removed:
            raise UsageError(f"key {key.fingerprint} is named twice in --remove")
        removed.append(key)
    added = []
    for i, text in enumerate(add, start=1):
        try:
            added.append(KeyOrigin.parse(text))
        except DescriptorError as exc:
            raise DescriptorError(f"--add key {i}: {exc.message}") from None
    gone = _removed_keys(history)
    for key in added:
        if key.fingerprint in gone or key in removed:
            generation, why = gone.get(key.fingerprint, (None, reason))
            when = f" by the rotation to generation {generation}" if generation else ""
            raise UsageError(
                f"key {key.fingerprint} was removed{when} ({why}); a removed key never comes back. "
                "Add a new key from a fresh seed"
            )
    keys = [k for k in current.keys if k not in removed] + added
    k = current.threshold if threshold is None else int(threshold)
    if not keys:
        raise UsageError("the new generation would have no keys; add at least one with --add")
    if threshold is None and k > len(keys):
        raise UsageError(
            f"removing {len(removed)} key(s) leaves {len(keys)}, fewer than the threshold {k}: add keys (--add) "
            "or lower the threshold (--threshold)"
        )
    new = MultisigDescriptor(k, keys, current.network, branches=current.branches)
    if new == current:
        raise UsageError("nothing changes: give --add, --remove or --threshold")
    return RotationPlan(current, new, tuple(added), tuple(removed), reason.strip())


# --- what each generation holds -----------------------------------------------------------
def generation_infos(store: Store, signers: Mapping[str, str] | None = None) -> list[GenerationInfo]:
    """Every generation of the store's wallet, oldest first, with its balance and whether
    its quorum can still sign (keys removed by a later rotation do not count)."""
    records = store.generations()
    gone = _removed_keys(records)
    names = {fp: name for name, fp in (signers or {}).items()}
    newest = records[-1].generation if records else 0
    out = []
    for record in records:
        desc = parse_wallet_descriptor(record.descriptor, network=record.network)
        coins = store.utxos(record.id)
        keys = []
        for key in desc.primary_keys:  # the quorum that spends at any time (recovery keys wait)
            removed_in, why = gone.get(key.fingerprint, (None, None))
            if removed_in is not None and removed_in <= record.generation:
                removed_in, why = None, None  # removed before this generation existed: not one of its keys
            keys.append(KeyInfo(key.fingerprint, names.get(key.fingerprint), removed_in, why))
        out.append(
            GenerationInfo(
                record.generation,
                record.id,
                record.generation == newest,
                desc.threshold,
                tuple(keys),
                sum(u.value for u in coins),
                len(coins),
                desc.descriptor_id,
                record.details.get("reason"),
                record.created,
                record.details,
            )
        )
    return out


def registered_fingerprints(store: Store) -> dict[str, str]:
    """signer name -> master fingerprint, for every registered signer with one."""
    return {s.name: s.fingerprint for s in store.signers() if s.fingerprint}


# --- rotating and migrating ----------------------------------------------------------------
def open_sessions(store: Store, wallet_id: int) -> list[str]:
    """Ids of the generation's PSBT sessions still in flight."""
    placeholders = ",".join("?" for _ in OPEN_SESSION_STATES)
    rows = store.execute(
        f"SELECT id FROM psbts WHERE wallet_id = ? AND state IN ({placeholders}) ORDER BY created",
        (wallet_id, *OPEN_SESSION_STATES),
    ).fetchall()
    return [str(r[0]) for r in rows]


def rotate(wallet: Wallet, plan: RotationPlan) -> WalletRecord:
    """Save ``plan`` as the next generation (audited). Refused while a session of the
    current generation is in flight: its change and close addresses belong to it, and the
    next step (signing, broadcast) must see the generation that built it."""
    store, current = wallet.store, wallet.record
    if plan.previous != wallet.descriptor:
        raise UsageError("the wallet changed since this rotation was planned; plan it again")
    with store.transaction():
        pending = open_sessions(store, current.id)
        if pending:
            raise UsageError(
                f"generation {current.generation} has sessions in flight ({', '.join(pending)}): broadcast or abort "
                "them first (`l2custody psbt list`, `l2custody session list`), then rotate"
            )
        scanned = store.scanned_tip()
        birthday = max(current.birthday, scanned[0] if scanned else 0)
        record = store.add_wallet(
            current.name,
            plan.descriptor.to_string(),
            current.network,
            birthday,
            generation=current.generation + 1,
            details=plan.details(current.generation),
        )
        store.audit(
            wallet.actor,
            "wallet-rotated",
            f"wallet {current.name}",
            {
                "generation": record.generation,
                "descriptor": record.descriptor,
                "id": plan.descriptor.descriptor_id,
                **plan.details(current.generation),
            },
        )
    return record


@dataclass(frozen=True)
class Migration:
    """One migration PSBT: the coins of ``from_generation`` moving to ``to_generation``."""

    from_generation: int
    to_generation: int
    session: PsbtSession
    address: str
    amount_sat: int
    coins: int
    signers: tuple[str, ...]  # registered signers holding keys of the old generation
    target_rehearsed: bool = True  # whether the newest generation has a confirmed rehearsal


def is_rehearsed(store: Store, wallet_id: int) -> bool:
    """Whether the generation has a confirmed rehearsal (``wallet rehearse``)."""
    from l2custody.wallet.rehearsal_records import RehearsalState, rehearsals

    return any(r.state is RehearsalState.CONFIRMED for r in rehearsals(store, wallet_id))


def migrate(
    wallet: Wallet,
    *,
    generation: int | None = None,
    fee_rate: float | None = None,
    utxos: Sequence[str] | None = None,
) -> list[Migration]:
    """Per older generation holding spendable coins (or only ``generation``), one saved
    PSBT session paying all of them (or exactly ``utxos``) to a fresh address of the
    newest generation, fee taken from the amount. Signed by the old generation's quorum
    with the usual ``psbt sign`` / ``psbt broadcast`` (they find the generation)."""
    from l2custody.wallet.psbt import TxOut

    newest = wallet.record
    olds = [r for r in wallet.store.generations() if r.generation < newest.generation]
    if generation is not None:
        olds = [r for r in olds if r.generation == generation]
        if not olds:
            raise UsageError(
                f"generation {generation} is not an older generation of the wallet "
                f"(the newest is {newest.generation}); see `l2custody wallet generations`"
            )
    if utxos is not None and generation is None:
        raise UsageError("--utxo picks coins of one generation: give --generation too")
    if not olds:
        raise UsageError("the wallet has one generation only: nothing to migrate (`l2custody wallet rotate` first)")
    names = registered_fingerprints(wallet.store)
    rehearsed = is_rehearsed(wallet.store, newest.id)
    out = []
    rate = wallet.fee_rate(fee_rate)  # the chain's estimate is read before the store is locked
    # One transaction: a generation refused half-way (its coins too small for the fee) leaves
    # no PSBT of the others behind, their coins reserved, for an error the operator was shown.
    with wallet.store.transaction():
        for record in olds:
            old = wallet.sibling(record)
            coins = old.spendable_coins(utxos)
            foreign = [c.outpoint for c in coins if wallet.store.address_owner(c.script) != record.id]
            if foreign:
                raise UsageError(f"{', '.join(foreign)} is not a coin of generation {record.generation}")
            if not coins:
                continue
            total = sum(c.value for c in coins)
            destination = wallet.next_address(label=f"migration from generation {record.generation}")
            target = TxOut.to_address(destination.address, total, newest.network)
            psbt = old.build_spend([target], rate, [c.outpoint for c in coins], subtract_fee_from=0)
            # the fee came out of the amount: the session insists on what the PSBT pays the new generation
            paid = next(o.value for o in psbt.tx.vout if o.script_pubkey.data == target.script_pubkey)
            session = old.save_session(
                psbt,
                "migrate",
                expected_outputs=[TxOut(target.script_pubkey, paid, target.address)],
                details={"from_generation": record.generation, "to_generation": newest.generation},
            )
            holders = tuple(sorted(n for n, fp in names.items() if old.descriptor.contains_key(fp)))
            out.append(
                Migration(
                    record.generation,
                    newest.generation,
                    session,
                    destination.address,
                    total,
                    len(coins),
                    holders,
                    rehearsed,
                )
            )
    if not out:
        which = f"generation {generation}" if generation is not None else "the older generations"
        raise UsageError(
            f"{which} hold(s) no spendable coins (unconfirmed or reserved coins wait; `l2custody wallet sync` first)"
        )
    return out


@dataclass(frozen=True)
class MigrationRecord:
    """A migration session as the store keeps it (``psbts`` row of kind ``migrate``)."""

    id: str
    state: str
    from_generation: int
    to_generation: int
    amount_sat: int  # what it pays the newer generation (the fee already taken)
    outpoints: tuple[str, ...]  # the coins it spends ("txid:n")

    @property
    def open(self) -> bool:
        """Still in flight: its coins reserved, its signatures or broadcast to come."""
        return self.state in OPEN_SESSION_STATES


def migration_records(store: Store) -> list[MigrationRecord]:
    """Every migration session so far (aborted and confirmed ones too), oldest first."""
    from l2custody.store import json_column, stored_data
    from l2custody.wallet.psbt import load_psbt

    out = []
    rows = store.execute("SELECT id, state, psbt, details FROM psbts WHERE kind = 'migrate' ORDER BY created, id")
    for session_id, state, text, details in rows.fetchall():
        info = json_column(details, f"migration session {session_id}")
        psbt = load_psbt(text)
        with stored_data(f"migration session {session_id}"):
            out.append(
                MigrationRecord(
                    str(session_id),
                    str(state),
                    int(info["from_generation"]),
                    int(info["to_generation"]),
                    sum(int(o["value"]) for o in info.get("expected_outputs", [])),
                    tuple(f"{i.txid.hex()}:{i.vout}" for i in psbt.inputs),
                )
            )
    return out
