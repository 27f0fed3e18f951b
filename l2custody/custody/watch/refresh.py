"""What ``watch`` does when a recovery wallet's coin nears its recovery path (issue 13).

A recovery wallet's coin may be spent by the recovery keys alone once it is as old as the
shortest recovery path's delay (wallet/recovery_timing.py). On each new block,
:func:`follow_recovery_timelocks` looks at the current generation's coins:

- coins due a refresh (the path opens within ``[recovery] refresh_margin_blocks``, or is
  open), that a spend may use (confirmed as ``[wallet] min_confirmations`` asks, reserved by
  no session) and that no refresh session has re-spent before: with ``[recovery]
  auto_refresh_psbt`` (the default) it prepares one refresh session for them
  (``wallet/recovery.refresh``: back to a fresh address of the wallet, the fee taken from
  the amount, at ``[watch] sweep_fee_rate`` or the chain's estimate) and writes it to
  ``<data_dir>/refresh/SESSION.psbt`` (0600). The session, its file, a
  ``recovery-coin-due`` audit entry per coin, a ``refresh-prepared`` entry and the alert
  naming the session, the file, the coins with their opening heights and the primary
  signers are one transaction. Nothing moves until the primary signers sign. With the
  switch off it audits and alerts once per coin, saying what to run;
- every coin whose path is open (the recovery keys can spend it now): one critical alert
  per coin, whatever the switch says.

What it knows comes from the store (coins, refresh sessions, the alert outbox), never from
memory: a coin reserved by a session, or re-spent by a refresh session before (one the
operator aborted is left to the operator: ``report`` keeps warning), is not prepared again,
and a restart repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.custody.watch.alerts import Alert
from l2custody.custody.watch.state import enqueue
from l2custody.custody.watch.upkeep import ACTOR, write_prepared_psbt
from l2custody.errors import L2CustodyError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.custody.report.timelocks import RecoveryFacts
    from l2custody.wallet.recovery import RefreshPlan
    from l2custody.wallet.recovery_timing import CoinLock
    from l2custody.wallet.service import Wallet


def follow_recovery_timelocks(
    wallet: Wallet,
    *,
    tip: int,
    prepare: bool,
    fee_rate: float | None,
    out_dir: Path,
    log: logging.Logger,
    problem: Callable[[str, str], None],
    now: float,
) -> RefreshPlan | None:
    """Prepare the refresh of the coins due one and alert on open coins (see the module
    docstring). Returns the refresh prepared now, if any. Never raises for a chain or store
    problem: ``problem(subject, message)`` hears it and the next block tries again."""
    from l2custody.custody.report.observe import read_recovery
    from l2custody.wallet.recovery import refresh_records
    from l2custody.wallet.recovery_timing import due_for_refresh, first_opening

    facts = read_recovery(wallet, tip)
    if facts is None:
        return None
    plan = None
    subject = f"wallet {wallet.record.name}"
    try:
        seen = {o for r in refresh_records(wallet.store, wallet.record.id) for o in r.outpoints}
        delays = [p.delay for p in facts.paths]
        coins = [c for c in wallet.spendable_coins() if c.outpoint not in seen]
        due = due_for_refresh([first_opening(c.outpoint, c.value, c.height, delays, tip) for c in coins], facts.margin)
        if due and prepare:
            plan = _prepare(wallet, facts, due, fee_rate, out_dir, now)
            log.warning("%s", _prepared_message(plan, out_dir / f"{plan.session.id}.psbt", facts))
        elif due:
            _recognise(wallet, facts, [c for c in due if not c.is_open], now, log)
    except L2CustodyError as exc:
        problem(subject, exc.message)
    try:
        _open_coins(wallet, facts, plan, now, log)
    except L2CustodyError as exc:
        problem(subject, exc.message)
    return plan


def _prepare(
    wallet: Wallet, facts: RecoveryFacts, due: list[CoinLock], fee_rate: float | None, out_dir: Path, now: float
) -> RefreshPlan:
    """One refresh session for ``due``, its file, audit entries and alert: all or nothing."""
    from l2custody.wallet.recovery import refresh

    store = wallet.store
    rate = wallet.fee_rate(fee_rate)  # the chain's estimate is read before the store is locked
    with store.transaction():
        plan = refresh(wallet, fee_rate=rate, utxos=[c.outpoint for c in due])
        path = out_dir / f"{plan.session.id}.psbt"
        write_prepared_psbt(path, plan.session.psbt, "refresh")
        details = _details(plan, path, facts)
        for c in plan.coins:
            store.audit(ACTOR, "recovery-coin-due", c.outpoint, {**c.to_dict(), "session": plan.session.id})
        store.audit(ACTOR, "refresh-prepared", plan.session.id, details)
        enqueue(
            store,
            Alert(
                f"refresh-psbt:{plan.session.id}",
                "refresh-psbt",
                "warning",
                plan.session.id,
                _prepared_message(plan, path, facts),
                None,
                details,
                now,
            ),
        )
    return plan


def _recognise(wallet: Wallet, facts: RecoveryFacts, due: list[CoinLock], now: float, log: logging.Logger) -> None:
    """The switch is off: audit and alert once per coin (the alert's key in the outbox says it was seen)."""
    said = []
    with wallet.store.transaction():
        for c in due:
            message = _due_message(c, facts)
            alert = Alert(
                f"recovery-due:{c.outpoint}", "recovery-due", "warning", c.outpoint, message, None, c.to_dict(), now
            )
            if enqueue(wallet.store, alert):
                wallet.store.audit(ACTOR, "recovery-coin-due", c.outpoint, c.to_dict())
                said.append(message)
    for message in said:
        log.warning("%s", message)


def _open_coins(
    wallet: Wallet, facts: RecoveryFacts, plan: RefreshPlan | None, now: float, log: logging.Logger
) -> None:
    """Every coin the recovery keys can spend now: one critical alert (and audit entry) per coin."""
    from l2custody.custody.report.timelocks import OPEN

    opened = facts.with_status(OPEN)
    if not opened:
        return
    prepared = {c.outpoint for c in plan.coins} if plan is not None else set()
    said = []
    with wallet.store.transaction():
        for c in opened:
            session = plan.session.id if c.outpoint in prepared and plan is not None else None
            session = session or _session_of(facts, c.outpoint)
            message = _open_message(c, facts, session)
            details = {**c.to_dict(), "refresh_session": session}
            alert = Alert(
                f"recovery-open:{c.outpoint}", "recovery-open", "critical", c.outpoint, message, None, details, now
            )
            if enqueue(wallet.store, alert):
                wallet.store.audit(ACTOR, "recovery-coin-open", c.outpoint, details)
                said.append(message)
    for message in said:
        log.error("%s", message)


def _session_of(facts: RecoveryFacts, outpoint: str) -> str | None:
    found = facts.refreshing(outpoint)
    return found.session if found is not None else None


def _paths(facts: RecoveryFacts) -> str:
    return "; ".join(p.describe() for p in facts.paths)


def _opening(coins: Sequence[CoinLock]) -> str:
    return "; ".join(
        f"{c.outpoint} ({c.value:,} sat) " + ("is open since" if c.is_open else "opens at") + f" block {c.opens_at:,}"
        for c in coins
    )


def _details(plan: RefreshPlan, path: Path, facts: RecoveryFacts) -> dict[str, Any]:
    return {
        "session": plan.session.id,
        "file": str(path),
        "coins": [c.to_dict() for c in plan.coins],
        "amount_sat": plan.amount_sat,
        "fee_sat": plan.session.summary.fee,
        "address": plan.address,
        "margin": plan.margin,
        "threshold": facts.threshold,
        "signers": list(facts.primary),
    }


def _prepared_message(plan: RefreshPlan, path: Path, facts: RecoveryFacts) -> str:
    fee = plan.session.summary.fee or 0
    return (
        f"{len(plan.coins)} coin(s) of the wallet {facts.wallet}, {plan.amount_sat:,} sat, reach their recovery path "
        f"({_paths(facts)}) within {facts.margin:,} blocks: {_opening(plan.coins)}. Their refresh is ready to sign: "
        f"session {plan.session.id}, PSBT {path} ({plan.amount_sat - fee:,} sat back to the wallet's {plan.address} "
        f"after a {fee:,} sat fee; the new coin's clock starts when it confirms). The primary signers must sign it, "
        f"{facts.quorum()}: `l2custody psbt sign {path} --signer NAME`, then `l2custody psbt broadcast {path}`"
    )


def _due_message(c: CoinLock, facts: RecoveryFacts) -> str:
    return (
        f"a coin of {c.value:,} sat ({c.outpoint}) of the wallet {facts.wallet} reaches its recovery path "
        f"({_paths(facts)}) at block {c.opens_at:,}, in {c.blocks_left:,} blocks: from then on the recovery keys "
        f"can spend it. Refresh it with `l2custody wallet refresh --utxo {c.outpoint}`, signed by {facts.quorum()} "
        "([recovery] auto_refresh_psbt is off)"
    )


def _open_message(c: CoinLock, facts: RecoveryFacts, session: str | None) -> str:
    what = (
        f"a coin of {c.value:,} sat ({c.outpoint}) of the wallet {facts.wallet} is past its recovery path's opening "
        f"(block {c.opens_at:,}): the recovery keys alone ({_paths(facts)}) can spend it NOW. If that is not "
        "intended, re-spend it with the primary keys at once"
    )
    if session is not None:
        return (
            f"{what}: refresh session {session} re-spends it; have it signed by {facts.quorum()} and broadcast "
            f"(`l2custody psbt export {session} --out FILE`, `l2custody psbt sign FILE --signer NAME`, "
            "`l2custody psbt broadcast FILE`)"
        )
    return f"{what}: `l2custody wallet refresh --utxo {c.outpoint}`, signed by {facts.quorum()}"
