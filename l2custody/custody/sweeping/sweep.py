"""Sweeping a node's hot wallet into the multisig (second half of invariant 5).

Force-close proceeds (and anything else sent to the node's wallet) are moved
to a fresh multisig address, keeping ``max(--keep, the node's anchor
reserve)`` in the node so it can still fee-bump its anchor channels. The
node builds, signs and publishes the sweep (``NodeBackend.sweep_to``).

Every sweep is a row in the ``sweeps`` table, written (with its address,
recorded as issued) before the node is asked, and follows the transaction::

    started -> broadcast -> verified        (the wallet holds the output)
        \\-> failed (node refused: nothing sent) | unknown (no answer: check the chain)

A dry run (:func:`preview_sweep`) asks the node for the exact figures but
sends, records and issues nothing: it shows the address the sweep would use
without handing it out.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import (
    AnchorReserve,
    Capability,
    ChannelState,
    NodeBackend,
    OnchainBalance,
    SweepResult,
)
from l2custody.custody.polling import poll_until
from l2custody.custody.sweeping.records import (
    SweepRecord,
    SweepState,
    insert_sweep,
    sweep_record,
    update_sweep,
)
from l2custody.errors import BroadcastUnknown, L2CustodyError, NodeUnreachable, UsageError
from l2custody.numbers import is_positive

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.service import Wallet


# --- what is there to sweep -----------------------------------------------------------------
@dataclass(frozen=True)
class TimeLocked:
    """Force-close funds still on their way to the node wallet."""

    channel_point: str
    limbo_sat: int
    maturity_height: int | None
    blocks_til_maturity: int | None


@dataclass(frozen=True)
class SweepPreview:
    """What ``sweep`` would do now (nothing was sent, recorded or handed out)."""

    node: str
    address: str  # the next multisig address; not issued by a dry run
    result: SweepResult | None  # None: nothing to sweep (see ``reason``)
    balance: OnchainBalance
    reserve: AnchorReserve | None
    time_locked: tuple[TimeLocked, ...]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {
            "node": self.node,
            "address": self.address,
            "dry_run": True,
            "amount_sat": r.amount_sat if r else 0,
            "fee_sat": r.fee_sat if r else 0,
            "kept_sat": r.kept_sat if r else None,
            "inputs": list(r.inputs) if r else [],
            "node_confirmed_sat": self.balance.confirmed_sat,
            "node_unconfirmed_sat": self.balance.unconfirmed_sat,
            "anchor_reserve_sat": self.reserve.required_sat if self.reserve else None,
            "time_locked": [t.__dict__ for t in self.time_locked],
            "reason": self.reason,
        }


def peek_address(wallet: Wallet) -> str:
    """The receive address ``next_address`` would hand out next, without handing it out."""
    store, wid = wallet.store, wallet.record.id
    fresh = [a for a in store.addresses(wid, change=False, used=False) if not a.issued]
    if fresh:
        return min(fresh, key=lambda a: a.index).address
    _top, last = store.branch_state(wid, False)
    return wallet.descriptor.address(False, last + 1)


def time_locked(backend: NodeBackend) -> tuple[TimeLocked, ...]:
    """Force-close balances the node has not swept into its wallet yet."""
    return tuple(
        TimeLocked(c.channel_point, c.limbo_sat, c.maturity_height, c.blocks_til_maturity)
        for c in backend.list_channels(include_closed=False)
        if c.state in (ChannelState.FORCE_CLOSING, ChannelState.CLOSING) and c.limbo_sat
    )


def _check_args(backend: NodeBackend, keep_sat: int | None, fee_rate: float | None) -> None:
    if not backend.supports(Capability.SWEEP):
        raise backend._not_supported("sweeping the node wallet")
    if keep_sat is not None and keep_sat < 0:
        raise UsageError(f"--keep must be 0 or more sat, got {keep_sat}")
    if fee_rate is not None and not is_positive(fee_rate):
        raise UsageError(f"fee rate must be positive (sat/vB), got {fee_rate}")


def preview_sweep(
    backend: NodeBackend, wallet: Wallet, *, keep_sat: int | None = None, fee_rate: float | None = None
) -> SweepPreview:
    """The dry run: the node's figures for a sweep now. Sends, locks and records nothing."""
    from l2custody.errors import InsufficientFunds

    _check_args(backend, keep_sat, fee_rate)
    address = peek_address(wallet)
    balance = backend.onchain_balance()
    reserve = backend.anchor_reserve() if backend.supports(Capability.ANCHOR_RESERVE) else None
    locked = time_locked(backend)
    try:
        result = backend.sweep_to(address, keep_sat=keep_sat, fee_rate=fee_rate, dry_run=True)
    except InsufficientFunds as exc:
        return SweepPreview(backend.name, address, None, balance, reserve, locked, exc.message)
    return SweepPreview(backend.name, address, result, balance, reserve, locked)


# --- sweeping ---------------------------------------------------------------------------------
def sweep_node(
    backend: NodeBackend, wallet: Wallet, *, keep_sat: int | None = None, fee_rate: float | None = None
) -> SweepRecord:
    """Sweep the node's confirmed funds to a fresh multisig address (see the module docstring).

    Raises InsufficientFunds when nothing is left after the reserve and the
    fee (nothing recorded then but the issued address), the node's errors
    (recorded as ``failed``), and BroadcastUnknown/NodeUnreachable when the
    outcome is unknown (recorded as ``unknown``: check the chain).
    """
    from l2custody.errors import InsufficientFunds

    _check_args(backend, keep_sat, fee_rate)
    store = wallet.store
    with store.transaction():
        address = wallet.next_address(label=f"sweep {backend.name}").address
        rec = insert_sweep(store, backend.name, address, {"keep_sat": keep_sat, "fee_rate": fee_rate})
        store.audit(wallet.actor, "sweep-started", f"sweep {rec.id}", rec.to_dict())
    try:
        result = backend.sweep_to(address, keep_sat=keep_sat, fee_rate=fee_rate)
    except (BroadcastUnknown, NodeUnreachable) as exc:
        update_sweep(
            wallet.store, wallet.actor, rec, "sweep-unknown", state=SweepState.UNKNOWN, details={"error": exc.message}
        )
        raise type(exc)(
            f"{exc.message} — sweep #{rec.id} to {address} may have gone out; check with "
            f"`l2custody sweep-status {backend.name}` (after a block) before sweeping again"
        ) from None
    except InsufficientFunds as exc:
        update_sweep(
            wallet.store, wallet.actor, rec, "sweep-failed", state=SweepState.FAILED, details={"error": exc.message}
        )
        raise
    except L2CustodyError as exc:
        update_sweep(
            wallet.store, wallet.actor, rec, "sweep-failed", state=SweepState.FAILED, details={"error": exc.message}
        )
        raise
    return update_sweep(
        wallet.store,
        wallet.actor,
        rec,
        "sweep-broadcast",
        state=SweepState.BROADCAST,
        amount=result.amount_sat,
        fee=result.fee_sat,
        kept=result.kept_sat,
        txid=result.txid,
        details={"inputs": list(result.inputs)},
    )


# --- verification --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepStatus:
    record: SweepRecord
    confirmations: int
    message: str

    @property
    def settled(self) -> bool:
        return self.record.state.settled

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), "confirmations": self.confirmations, "message": self.message}


def sweep_status(wallet: Wallet, sweep_id: int, *, sync: bool = True) -> SweepStatus:
    """Where sweep ``sweep_id`` stands; marks it verified once the wallet holds
    its output with at least one confirmation. Syncs the wallet first."""
    store = wallet.store
    rec = sweep_record(store, sweep_id)
    if rec.state == SweepState.VERIFIED:
        return SweepStatus(
            rec,
            store.confirmations(rec.txid)[0],
            f"verified: {rec.amount or 0:,} sat in the multisig at {rec.txid}:{rec.vout}",
        )
    if rec.state == SweepState.FAILED:
        return SweepStatus(rec, 0, f"failed: {rec.details.get('error', 'the node sent nothing')}")
    if sync:
        wallet.sync()
    from l2custody.wallet.addresses import address_to_script

    # started/unknown sweeps have no txid: whatever pays their (fresh) address is theirs
    script = address_to_script(rec.address, wallet.record.network)
    ours = [
        u
        for u in store.utxos(wallet.record.id, unspent=False)
        if u.script == script and (rec.txid is None or u.txid == rec.txid)
    ]
    if not ours:
        if rec.txid is None:
            return SweepStatus(
                rec,
                0,
                f"{rec.state}: nothing has paid {rec.address} yet "
                f"({rec.details.get('error', 'no answer from the node')})",
            )
        known, _ = store.transaction_height(rec.txid)
        what = "seen, but not paying the sweep address" if known else "not seen yet by the wallet"
        return SweepStatus(rec, 0, f"sweep transaction {rec.txid} {what}")
    utxo = ours[0]
    if rec.state != SweepState.BROADCAST:
        rec = update_sweep(wallet.store, wallet.actor, rec, "sweep-found", state=SweepState.BROADCAST, txid=utxo.txid)
    confs, _ = store.confirmations(rec.txid)
    if confs < 1:
        return SweepStatus(
            rec, 0, f"sweep {rec.txid} pays {utxo.value:,} sat to the multisig; waiting for confirmation"
        )
    rec = update_sweep(
        wallet.store,
        wallet.actor,
        rec,
        "sweep-verified",
        state=SweepState.VERIFIED,
        vout=utxo.vout,
        height=utxo.height,
        amount=utxo.value,
    )
    return SweepStatus(rec, confs, f"verified: {utxo.value:,} sat in the multisig at {rec.txid}:{utxo.vout}")


def wait_for_sweep(
    wallet: Wallet,
    sweep_id: int,
    *,
    timeout: float = 3600.0,
    interval: float = 2.0,
    progress: Callable[[SweepStatus], None] | None = None,
) -> SweepStatus:
    """Poll :func:`sweep_status` until verified (or failed) or ``timeout`` seconds pass."""
    return poll_until(
        lambda: sweep_status(wallet, sweep_id),
        lambda s: s.settled,
        timeout=timeout,
        interval=interval,
        progress=progress,
    )


@dataclass(frozen=True)
class SweepReport:
    """``sweep``: the dry-run preview, or the sweep made (and, with a wait, its status)."""

    preview: SweepPreview | None
    record: SweepRecord | None
    status: SweepStatus | None

    def to_dict(self) -> dict[str, Any]:
        if self.preview is not None:
            return self.preview.to_dict()
        assert self.record is not None
        return {**self.record.to_dict(), "dry_run": False, "status": self.status.to_dict() if self.status else None}
