"""What ``watch`` does when a coin lands in an older wallet generation (issue 12).

A channel opened before ``wallet rotate`` keeps the close address it committed, so its
cooperative close pays the generation that was current then; the scanner records that
coin under the old generation's wallet id. On each new block, :func:`follow_old_generations`
looks at every older generation's coins that a spend may use (confirmed as ``[wallet]
min_confirmations`` asks, reserved by no session) and that no migration session has
spent before:

- with ``[watch] auto_migrate_psbt`` (the default) and a quorum that can still sign, it
  prepares their migration PSBT (``wallet/generations.migrate``: to a fresh address of the
  newest generation, the fee taken from the amount, at ``[watch] sweep_fee_rate`` or the
  chain's estimate) and writes it to ``<data_dir>/migrations/SESSION.psbt`` (0600). The
  session, its file, an ``old-generation-coin`` audit entry per coin, a
  ``migration-prepared`` entry and the alert naming the session, the file, the amount and
  the signers are one transaction. Nothing moves until that generation's signers sign;
- otherwise (the switch off, or a quorum that can no longer sign) it audits and alerts
  once per coin, saying what to do.

What it knows comes from the store (coins, migration sessions, the alert outbox), never
from memory: a coin reserved by a session, or spent by a migration session before (one
the operator aborted is left to the operator), is not prepared again, and a restart
repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.custody.watch.alerts import Alert
from l2custody.custody.watch.state import enqueue
from l2custody.custody.watch.upkeep import ACTOR, write_prepared_psbt
from l2custody.errors import L2CustodyError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import UtxoRecord, WalletRecord
    from l2custody.wallet.generations import GenerationInfo, Migration
    from l2custody.wallet.service import Wallet


def follow_old_generations(
    wallet: Wallet,
    *,
    prepare: bool,
    fee_rate: float | None,
    out_dir: Path,
    log: logging.Logger,
    problem: Callable[[str, str], None],
    now: float,
) -> list[Migration]:
    """Recognise the coins that landed in older generations and prepare their migration
    PSBTs (see the module docstring). Returns the migrations prepared now. Never raises
    for a chain or store problem of one generation: ``problem(subject, message)`` hears it
    and the next block tries again."""
    from l2custody.wallet.generations import generation_infos, migration_records, registered_fingerprints

    store = wallet.store
    records = store.generations(wallet.record.name)
    if len(records) < 2:
        return []
    newest = wallet if wallet.record.id == records[-1].id else wallet.sibling(records[-1])  # rotated meanwhile
    infos = {i.generation: i for i in generation_infos(store, registered_fingerprints(store))}
    spent_by_migrations = {o for m in migration_records(store) for o in m.outpoints}
    prepared = []
    for record in records[:-1]:
        coins = [c for c in newest.sibling(record).spendable_coins() if c.outpoint not in spent_by_migrations]
        if not coins:
            continue
        info = infos[record.generation]
        try:
            if prepare and info.can_sign:
                move = _prepare(newest, record, info, coins, fee_rate, out_dir, now)
                prepared.append(move)
                log.warning("%s", _prepared_message(move, out_dir / f"{move.session.id}.psbt", info))
            else:
                _recognise(newest, info, coins, prepare, now, log)
        except L2CustodyError as exc:
            problem(f"generation {record.generation}", exc.message)
    return prepared


def _prepare(
    newest: Wallet,
    record: WalletRecord,
    info: GenerationInfo,
    coins: list[UtxoRecord],
    fee_rate: float | None,
    out_dir: Path,
    now: float,
) -> Migration:
    """One migration session for ``coins``, its file, audit entries and alert: all or nothing."""
    from l2custody.wallet.generations import migrate

    store = newest.store
    rate = newest.fee_rate(fee_rate)  # the chain's estimate is read before the store is locked
    with store.transaction():
        [move] = migrate(newest, generation=record.generation, fee_rate=rate, utxos=[c.outpoint for c in coins])
        path = out_dir / f"{move.session.id}.psbt"
        write_prepared_psbt(path, move.session.psbt, "migration")
        details = _details(move, path, info)
        for c in coins:
            store.audit(
                ACTOR,
                "old-generation-coin",
                c.outpoint,
                {"generation": record.generation, "value": c.value, "height": c.height, "session": move.session.id},
            )
        store.audit(ACTOR, "migration-prepared", move.session.id, details)
        enqueue(
            store,
            Alert(
                f"migration-psbt:{move.session.id}",
                "migration-psbt",
                "warning",
                move.session.id,
                _prepared_message(move, path, info),
                None,
                details,
                now,
            ),
        )
    return move


def _recognise(
    newest: Wallet, info: GenerationInfo, coins: list[UtxoRecord], prepare: bool, now: float, log: logging.Logger
) -> None:
    """Audit and alert once per coin (the alert's key in the outbox says it was seen)."""
    store = newest.store
    said = []
    with store.transaction():
        for c in coins:
            message = _coin_message(c, info, newest.record.generation, prepare)
            alert = Alert(
                f"old-generation-coin:{c.outpoint}",
                "old-generation-coin",
                "warning" if info.can_sign else "critical",
                c.outpoint,
                message,
                None,
                {"generation": info.generation, "value": c.value, "can_sign": info.can_sign},
                now,
            )
            if enqueue(store, alert):
                store.audit(ACTOR, "old-generation-coin", c.outpoint, {**alert.details, "height": c.height})
                said.append(message)
    for message in said:
        log.warning("%s", message)


def _signers(info: GenerationInfo) -> list[str]:
    return [k.signer or k.fingerprint for k in info.keys if k.usable]


def _details(move: Migration, path: Path, info: GenerationInfo) -> dict[str, Any]:
    return {
        "session": move.session.id,
        "file": str(path),
        "from_generation": move.from_generation,
        "to_generation": move.to_generation,
        "coins": [f"{i.txid}:{i.vout}" for i in move.session.summary.inputs],
        "amount_sat": move.amount_sat,
        "fee_sat": move.session.summary.fee,
        "address": move.address,
        "threshold": info.threshold,
        "signers": _signers(info),
    }


def _prepared_message(move: Migration, path: Path, info: GenerationInfo) -> str:
    fee = move.session.summary.fee or 0
    return (
        f"{move.coins} coin(s) of {move.amount_sat:,} sat landed in generation {move.from_generation}, an older key "
        f"set; their migration to generation {move.to_generation} is ready to sign: session {move.session.id}, PSBT "
        f"{path} ({move.amount_sat - fee:,} sat to {move.address} after a {fee:,} sat fee). Generation "
        f"{move.from_generation}'s signers must sign it, {info.threshold} of {', '.join(_signers(info))}: "
        f"`l2custody psbt sign {path} --signer NAME`, then `l2custody psbt broadcast {path}`"
    )


def _coin_message(c: UtxoRecord, info: GenerationInfo, newest: int, prepare: bool) -> str:
    what = f"a coin of {c.value:,} sat ({c.outpoint}) landed in generation {info.generation}, an older key set"
    if not info.can_sign:
        return (
            f"{what}, whose quorum can no longer sign ({info.usable_keys} of its keys can, {info.threshold} are "
            "needed): only a recovery path could save it, which l2custody does not have yet"
        )
    why = "" if prepare else " ([watch] auto_migrate_psbt is off)"
    return (
        f"{what}: move it to generation {newest} with `l2custody wallet migrate --generation {info.generation} "
        f"--utxo {c.outpoint}`{why}, signed by {info.threshold} of {', '.join(_signers(info))}"
    )
