"""What ``watch`` does besides recording: it carries funding sessions to confirmation
(rebroadcasting a signed funding transaction the network lost), verifies sweeps,
and sweeps node wallets into the multisig (or logs the dry run).

Each function works on the wallet and the node backends the watch loop holds,
uses the flows that own each step (``lifecycle``, ``sweeping``), never raises
for a node or chain problem (it logs), and returns the alerts it wants raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from l2custody.backends.base import Capability, NodeBackend
from l2custody.custody.watch.alerts import Alert
from l2custody.errors import L2CustodyError

if TYPE_CHECKING:  # pragma: no cover
    from embit.psbt import PSBT

    from l2custody.custody.report.snapshot import NodeReport
    from l2custody.custody.sweeping.records import SweepRecord
    from l2custody.wallet.service import Wallet

ACTOR = "watch"  # who the audit log names for what watch does


def write_prepared_psbt(path: Path, psbt: PSBT, what: str) -> None:
    """Write a PSBT ``watch`` prepared for the signers (0600). Called inside the store
    transaction that saves its session: PsbtError rolls the session back, and the next
    block tries again."""
    from l2custody.errors import PsbtError
    from l2custody.private_files import write_private_file
    from l2custody.user_paths import why

    try:
        write_private_file(path, psbt.serialize())
    except OSError as exc:
        raise PsbtError(
            f"cannot write the {what} PSBT to {path}: {why(exc)}; nothing was prepared (watch tries again at the "
            "next block)"
        ) from None


def drive_sessions(
    wallet: Wallet, backend_for: Callable[[str], NodeBackend], log: logging.Logger, problem: Callable[[str, str], None]
) -> None:
    """Follow every unsettled funding session past signing (``lifecycle.refresh``: confirmations,
    channels opening, close addresses read back) and rebroadcast a funding transaction that is
    neither confirmed nor in the mempool. ``problem(session_id, message)`` hears what failed."""
    from l2custody.custody.context import Custody
    from l2custody.custody.funding.lifecycle import broadcast_session, done, refresh
    from l2custody.custody.funding.records import list_sessions
    from l2custody.custody.funding.session import SessionState

    # SECURED sessions wait for people (signatures); their deadline is a custody check
    sessions = [s for s in list_sessions(wallet.store) if not done(s) and s.state is not SessionState.SECURED]
    if not sessions:
        return
    ctx = Custody(wallet, backend_for, lambda m: log.info("%s", m), actor=ACTOR)
    mempool: set[str] | None = None
    for session in sessions:
        try:
            session = refresh(ctx, session.id).session
            if session.state not in (SessionState.BROADCAST, SessionState.BROADCASTING):
                continue
            if mempool is None:
                mempool = set(wallet.chain.mempool_txids())
            if session.txid in mempool:
                continue
            log.warning(
                "funding session %s: %s is neither confirmed nor in the mempool; rebroadcasting",
                session.id,
                session.txid,
            )
            broadcast_session(ctx, session.id)
        except L2CustodyError as exc:
            problem(session.id, exc.message)


def verify_sweeps(wallet: Wallet, log: logging.Logger) -> None:
    """Move unfinished sweeps along (``sweeping.sweep_status``, the wallet already synced)."""
    from l2custody.custody.sweeping.sweep import sweep_status

    for rec in open_sweeps(wallet, None):
        try:
            status = sweep_status(wallet, rec.id, sync=False)
        except L2CustodyError as exc:
            log.warning("sweep #%d: %s", rec.id, exc.message)
            continue
        if status.record.state != rec.state:
            log.info("sweep #%d of node %s: %s", rec.id, rec.node, status.message)


def open_sweeps(wallet: Wallet, node: str | None) -> list[SweepRecord]:
    """Sweeps not yet verified or failed (of one node, or all)."""
    from l2custody.custody.sweeping.records import SweepState, sweep_records

    return [
        r
        for r in sweep_records(wallet.store, node)
        if r.state in (SweepState.STARTED, SweepState.UNKNOWN, SweepState.BROADCAST)
    ]


def sweep_if_due(
    wallet: Wallet,
    backend: NodeBackend,
    report: NodeReport,
    *,
    auto: bool,
    threshold_sat: int,
    keep_sat: int,
    fee_rate: float | None,
    seen: int | None,
    log: logging.Logger,
    now: float,
) -> tuple[int | None, Alert | None]:
    """Sweep the node wallet when more than ``threshold_sat`` sits above what it keeps:
    for real with ``auto``, else the dry run, logged and audited. One sweep at a time per
    node; ``seen`` is the confirmed balance last acted on (not acted on again). Returns the
    new ``seen`` and the alert to raise, if any."""
    from l2custody.custody.sweeping.sweep import preview_sweep, sweep_node
    from l2custody.errors import InsufficientFunds

    name = backend.name
    if not report.reachable or not backend.supports(Capability.SWEEP):
        return seen, None
    if report.sweepable_sat <= threshold_sat:
        return None, None
    confirmed = report.hot_confirmed_sat
    if seen == confirmed or open_sweeps(wallet, name):
        return seen, None
    if not auto:
        try:
            preview = preview_sweep(backend, wallet, keep_sat=keep_sat, fee_rate=fee_rate)
        except L2CustodyError as exc:
            log.warning("node %s: sweep dry run failed: %s", name, exc.message)
            return confirmed, None
        r = preview.result
        if r is None:
            log.info("node %s: due a sweep, but %s", name, preview.reason)
            return confirmed, None
        with wallet.store.transaction():
            wallet.store.audit(ACTOR, "sweep-dry-run", f"node {name}", preview.to_dict())
        log.warning(
            "node %s: auto-sweep is off ([watch] auto_sweep = false); dry run: would send %s sat to %s "
            "(fee %s sat, %s sat kept). Run `l2custody sweep %s` to do it.",
            name,
            f"{r.amount_sat:,}",
            preview.address,
            f"{r.fee_sat:,}",
            f"{r.kept_sat:,}",
            name,
        )
        return confirmed, None
    try:
        rec = sweep_node(backend, wallet, keep_sat=keep_sat, fee_rate=fee_rate)
    except InsufficientFunds as exc:
        log.info("node %s: due a sweep, but %s", name, exc.message)
        return confirmed, None
    except L2CustodyError as exc:
        log.error("node %s: automatic sweep failed: %s", name, exc.message)
        return confirmed, Alert(
            f"sweep-failed:{name}:{confirmed}",
            "sweep-problem",
            "critical",
            f"node {name}",
            f"automatic sweep of node {name} failed: {exc.message}",
            name,
            {"error": exc.message},
            now,
        )
    message = (
        f"swept {rec.amount or 0:,} sat from node {name}'s wallet to the multisig address {rec.address} "
        f"(sweep #{rec.id}, tx {rec.txid}, fee {rec.fee or 0:,} sat, {rec.kept or 0:,} sat kept)"
    )
    log.info("node %s: %s", name, message)
    return None, Alert(
        f"auto-sweep:{name}:{rec.id}", "auto-sweep", "info", f"sweep {rec.id}", message, name, rec.to_dict(), now
    )
