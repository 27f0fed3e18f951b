"""Closing channels into the multisig, and proving on chain that they landed there.

Invariant 4 (cooperative closes pay the multisig, verified on chain) and the
first half of invariant 5 (force-close proceeds land in the node's wallet,
from where ``custody/sweeping/`` brings them home).

A cooperative close pays the channel's upfront shutdown address when it has
one. We close only when that address is ours; a foreign one is refused
(CustodyViolation) unless the operator explicitly allows it, because the
close would pay it. A channel without one is closed to a fresh multisig
address (``delivery_address``), recorded as issued before the node sees it.

Every close is a row in the ``closes`` table, written before the node is
asked, and follows the transaction::

    requested -> pending (closing txid known) -> verified | violation
         \\-> failed (node refused: nothing happened) | unknown (no answer: check)
    force:  requested -> pending (time-locked in the node) -> in-node-wallet

:func:`close_status` is where verification happens: sync the wallet, fetch
the closing transaction (the store holds it once the scanner has seen it;
else the chain source's mempool or txindex), judge it
(``verdict.judge_closing_tx``), and once confirmed check that the wallet
holds the output as a UTXO. The verdict goes to the audit log;
a violation as ``custody-violation``. Closes the peer started are recorded
(and verified) the first time we look at them.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import ChannelInfo, ChannelState, CloseResult, CloseType, NodeBackend
from l2custody.custody.channels import ChannelView, view_channels
from l2custody.custody.closing.records import (
    AddressSource,
    CloseKind,
    CloseRecord,
    CloseState,
    close_record,
    save_record,
)
from l2custody.custody.closing.verdict import CloseVerdict, judge_closing_tx
from l2custody.custody.polling import poll_until
from l2custody.errors import (
    BroadcastUnknown,
    ChainError,
    ChainUnreachable,
    ChannelNotFound,
    CustodyViolation,
    L2CustodyError,
    NodeUnreachable,
    UsageError,
)
from l2custody.numbers import is_positive

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.service import Wallet


_FORCE_TYPES = (CloseType.LOCAL_FORCE, CloseType.REMOTE_FORCE, CloseType.BREACH)


# --- planning -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClosePlan:
    """What closing a channel will do, shown to the operator before it happens."""

    view: ChannelView
    force: bool
    address_source: AddressSource
    destination: str | None  # None: a fresh multisig address (delivery) or the node wallet (force)
    explanation: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel_point": self.view.channel_point,
            "node": self.view.node,
            "force": self.force,
            "address_source": self.address_source,
            "destination": self.destination,
            "explanation": list(self.explanation),
        }


def force_close_explanation(ch: ChannelInfo) -> tuple[str, ...]:
    """Where a force close sends the funds, in words for the confirmation prompt."""
    return (
        f"A force close publishes node {ch.node!r}'s latest commitment transaction without the peer.",
        f"Our balance ({ch.local_balance_sat:,} sat) does NOT go to the multisig: the node pays it to its "
        "own hot wallet once the channel's CSV delay (set by the peer, often 144-2016 blocks) has passed; "
        "pending HTLCs are settled on chain first.",
        "Follow it with `l2custody channel close-status CHANNEL`; when it says the funds are in the node "
        f"wallet, run `l2custody sweep {ch.node}` to move them to the multisig.",
        "Prefer a cooperative close whenever the peer is online: it pays the multisig directly.",
    )


def plan_close(view: ChannelView, *, force: bool = False, allow_foreign: bool = False) -> ClosePlan:
    """Decide where a close of ``view`` pays, or refuse.

    Raises UsageError for a channel that is not open, and CustodyViolation for
    a cooperative close of a channel whose upfront shutdown address is not
    ours (unless ``allow_foreign``): the close could only pay that address.
    """
    ch = view.channel
    if ch.state is not ChannelState.OPEN:
        raise UsageError(
            f"channel {ch.channel_point} is {ch.state.value.replace('_', ' ')}, not open: there is nothing to "
            f"close. See `l2custody channel close-status {ch.channel_point}`."
        )
    if force:
        return ClosePlan(view, True, AddressSource.NODE_WALLET, None, force_close_explanation(ch))
    if not ch.close_address_known:
        raise UsageError(
            f"node {ch.node!r} does not report the upfront shutdown address of {ch.channel_point}; "
            "cannot tell where a cooperative close would pay. Check the node's version (`l2custody node check`)."
        )
    if ch.close_address is None:
        return ClosePlan(
            view,
            False,
            AddressSource.DELIVERY,
            None,
            ("The channel has no upfront shutdown address: it is closed to a fresh multisig address.",),
        )
    if view.close_ours:
        return ClosePlan(
            view,
            False,
            AddressSource.UPFRONT,
            ch.close_address,
            (f"The channel committed its close to {ch.close_address}, an address of the multisig.",),
        )
    if not allow_foreign:
        raise CustodyViolation(
            f"channel {ch.channel_point} on {ch.node!r} committed its cooperative close to {ch.close_address}, "
            "which is not an address of the multisig: a cooperative close can only pay that address. "
            "Refusing. To bring the balance home instead, force close it (`--force`: the funds go to the "
            f"node's wallet after the CSV delay, then `l2custody sweep {ch.node}`); if the address is yours, "
            "close with --allow-foreign-close-address."
        )
    return ClosePlan(
        view,
        False,
        AddressSource.FOREIGN_UPFRONT,
        ch.close_address,
        (
            f"WARNING: the close pays {ch.close_address}, which is NOT an address of the multisig "
            "(allowed by --allow-foreign-close-address).",
        ),
    )


# --- closing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CloseOutcome:
    plan: ClosePlan
    record: CloseRecord
    closing_txid: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "record": self.record.to_dict(), "closing_txid": self.closing_txid}


def close_channel(
    backend: NodeBackend,
    wallet: Wallet,
    view: ChannelView,
    *,
    force: bool = False,
    fee_rate: float | None = None,
    allow_foreign: bool = False,
) -> CloseOutcome:
    """Close ``view``'s channel on ``backend`` (see :func:`plan_close` for where it pays).

    The close record (and, for a channel without an upfront address, the
    fresh multisig address; a retry reuses the one of the earlier attempt)
    is persisted before the node is asked. Node
    errors are recorded (``failed``; ``unknown`` when the node did not
    answer) and re-raised. Returns once the node reports the closing txid.
    """
    plan = plan_close(view, force=force, allow_foreign=allow_foreign)
    if force and fee_rate is not None:
        raise UsageError("a force close pays the fee fixed in the commitment transaction; drop --fee-rate")
    if fee_rate is not None and not is_positive(fee_rate):
        raise UsageError(f"fee rate must be positive (sat/vB), got {fee_rate}")
    ch, cp = view.channel, view.channel_point
    store = wallet.store
    with store.transaction():
        destination = plan.destination
        if plan.address_source == AddressSource.DELIVERY:
            # a retry after a refused or unanswered close reuses its address (the node may hold it)
            earlier = close_record(store, cp)
            if earlier is not None and earlier.address_source == AddressSource.DELIVERY and earlier.expected_address:
                destination = earlier.expected_address
            else:
                destination = wallet.next_address(label=f"close {cp}").address
        rec = save_record(
            store,
            CloseRecord(
                cp,
                ch.node,
                CloseKind.FORCE if force else CloseKind.COOPERATIVE,
                CloseState.REQUESTED,
                destination,
                plan.address_source,
                details={
                    "local_balance_sat": ch.local_balance_sat,
                    "capacity_sat": ch.capacity_sat,
                    "peer": ch.peer_pubkey,
                    "fee_rate": fee_rate,
                    "initiated": "us",
                },
            ),
        )
        store.audit(wallet.actor, "close-requested", cp, rec.to_dict())
    try:
        result = backend.close_channel(
            cp,
            delivery_address=destination if plan.address_source == AddressSource.DELIVERY else None,
            fee_rate=fee_rate,
            force=force,
        )
    except (NodeUnreachable, BroadcastUnknown) as exc:
        _finish(wallet, rec, CloseState.UNKNOWN, "close-unknown", {"error": exc.message})
        raise type(exc)(
            f"{exc.message} — the close of {cp} may or may not have started; check with "
            f"`l2custody channel close-status {cp}` before trying again"
        ) from None
    except L2CustodyError as exc:
        _finish(wallet, rec, CloseState.FAILED, "close-failed", {"error": exc.message})
        raise
    rec = _record_result(wallet, rec, result)
    return CloseOutcome(plan, rec, result.closing_txid)


def _finish(wallet: Wallet, rec: CloseRecord, state: CloseState, action: str, details: dict[str, Any]) -> CloseRecord:
    store = wallet.store
    with store.transaction():
        rec = save_record(store, replace(rec, state=state, details={**rec.details, **details}))
        store.audit(wallet.actor, action, rec.channel_point, {"state": state, **details})
    return rec


def _record_result(wallet: Wallet, rec: CloseRecord, result: CloseResult) -> CloseRecord:
    store = wallet.store
    with store.transaction():
        rec = save_record(store, replace(rec, state=CloseState.PENDING, closing_txid=result.closing_txid))
        store.audit(
            wallet.actor,
            "close-broadcast",
            rec.channel_point,
            {"closing_txid": result.closing_txid, "kind": rec.kind, "expected_address": rec.expected_address},
        )
    return rec


# --- status and verification ---------------------------------------------------------------------
@dataclass(frozen=True)
class CloseStatus:
    """A close as it stands now: our record, the node's view, the on-chain verdict."""

    record: CloseRecord
    channel: ChannelInfo | None
    confirmations: int
    verdict: CloseVerdict | None
    wallet_utxo: str | None  # "txid:vout" once the wallet holds our output
    message: str
    next_step: str | None

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def settled(self) -> bool:
        return self.record.state.settled

    def to_dict(self) -> dict[str, Any]:
        ch = self.channel
        return {
            **self.record.to_dict(),
            "confirmations": self.confirmations,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "wallet_utxo": self.wallet_utxo,
            "message": self.message,
            "next_step": self.next_step,
            "channel_state": ch.state.value if ch else None,
            "limbo_sat": ch.limbo_sat if ch else None,
            "maturity_height": ch.maturity_height if ch else None,
            "blocks_til_maturity": ch.blocks_til_maturity if ch else None,
        }


def _find_channel(backend: NodeBackend, channel_point: str) -> ChannelInfo | None:
    for ch in backend.list_channels(include_closed=True):
        if ch.channel_point == channel_point:
            return ch
    return None


def _observed_record(ch: ChannelInfo, wallet: Wallet) -> CloseRecord:
    """A record for a close we did not start (the peer's, or from before l2custody)."""
    force = ch.state is ChannelState.FORCE_CLOSING or ch.close_type in _FORCE_TYPES
    view = view_channels(wallet, [ch])[0]
    return CloseRecord(
        ch.channel_point,
        ch.node,
        CloseKind.FORCE if force else CloseKind.COOPERATIVE,
        CloseState.PENDING,
        None if force else view.close_address,
        AddressSource.NODE_WALLET if force else (AddressSource.UPFRONT if view.close_ours else None),
        ch.closing_txid,
        details={"initiated": "outside", "local_balance_sat": ch.local_balance_sat, "peer": ch.peer_pubkey},
    )


def close_status(backend: NodeBackend, wallet: Wallet, channel_point: str, *, sync: bool = True) -> CloseStatus:
    """Where the close of ``channel_point`` stands; verifies it on chain when it can.

    Syncs the wallet first (unless ``sync`` is False). Records every state
    change (and a ``custody-violation`` audit entry when a cooperative close
    did not pay the multisig). Raises ChannelNotFound when neither the node
    nor our records know the channel, UsageError when it is not closing.
    """
    store = wallet.store
    ch = _find_channel(backend, channel_point)
    rec = close_record(store, channel_point)
    if ch is None and rec is None:
        raise ChannelNotFound(f"node {backend.name!r} has no channel {channel_point}; see `l2custody channel list`")
    if rec is None or rec.state in (CloseState.FAILED, CloseState.REQUESTED, CloseState.UNKNOWN):
        if ch is not None and ch.state in (ChannelState.OPEN, ChannelState.PENDING_OPEN):
            if rec is None:
                raise UsageError(
                    f"channel {channel_point} is {ch.state.value.replace('_', ' ')}; no close to follow. "
                    f"Close it with `l2custody channel close {channel_point}`."
                )
            return CloseStatus(
                rec,
                ch,
                0,
                None,
                None,
                f"the close {rec.state}; the channel is still {ch.state.value}",
                f"l2custody channel close {channel_point}",
            )
        if rec is None:
            assert ch is not None
            with store.transaction():
                rec = save_record(store, _observed_record(ch, wallet))
                store.audit(wallet.actor, "close-observed", channel_point, rec.to_dict())
        elif ch is not None:  # an unknown/failed close that did happen after all
            rec = _finish(wallet, rec, CloseState.PENDING, "close-found", {"closing_txid": ch.closing_txid})
    if ch is not None and ch.closing_txid and rec.closing_txid != ch.closing_txid:
        # lnd's first answer can precede the final closing tx (fee renegotiation, RBF)
        rec = _finish(
            wallet,
            replace(rec, closing_txid=ch.closing_txid),
            rec.state,
            "close-txid-changed",
            {"closing_txid": ch.closing_txid},
        )
    forced = ch is not None and (ch.state is ChannelState.FORCE_CLOSING or ch.close_type in _FORCE_TYPES)
    if (
        ch is not None
        and rec.kind == CloseKind.COOPERATIVE
        and forced
        and rec.state not in (CloseState.VERIFIED, CloseState.VIOLATION)
    ):
        # the cooperative close did not happen: one side published its commitment instead
        rec = _finish(
            wallet,
            replace(rec, kind=CloseKind.FORCE, address_source=AddressSource.NODE_WALLET, expected_address=None),
            rec.state,
            "close-became-force",
            {"close_type": ch.close_type.value if ch.close_type else None},
        )
    if rec.state in (CloseState.VERIFIED, CloseState.VIOLATION, CloseState.IN_NODE_WALLET):
        return _settled_status(wallet, rec, ch)
    if sync:
        wallet.sync()
    if rec.kind == CloseKind.FORCE:
        return _force_status(wallet, rec, ch)
    return _coop_status(wallet, rec, ch)


def _settled_status(wallet: Wallet, rec: CloseRecord, ch: ChannelInfo | None) -> CloseStatus:
    confs, _ = wallet.store.confirmations(rec.closing_txid)
    if rec.state == CloseState.VERIFIED:
        utxo = f"{rec.closing_txid}:{rec.vout}" if rec.vout is not None else None
        msg = f"verified: {rec.value:,} sat in the multisig at {utxo}" if utxo else "verified: nothing was due to us"
        return CloseStatus(rec, ch, confs, None, utxo, msg, None)
    if rec.state == CloseState.IN_NODE_WALLET:
        return CloseStatus(
            rec,
            ch,
            confs,
            None,
            None,
            "force close resolved: the funds are in the node's wallet",
            f"l2custody sweep {rec.node}",
        )
    return CloseStatus(rec, ch, confs, None, None, str(rec.details.get("problem", "custody violation")), None)


def _force_status(wallet: Wallet, rec: CloseRecord, ch: ChannelInfo | None) -> CloseStatus:
    if ch is not None and ch.state is ChannelState.CLOSED:
        rec = _finish(
            wallet,
            rec,
            CloseState.IN_NODE_WALLET,
            "force-close-resolved",
            {"settled_sat": ch.settled_sat, "close_height": ch.close_height},
        )
        return CloseStatus(
            rec,
            ch,
            0,
            None,
            None,
            f"force close resolved: {ch.settled_sat or 0:,} sat went to node {rec.node!r}'s wallet",
            f"l2custody sweep {rec.node}",
        )
    if ch is not None and ch.state is ChannelState.FORCE_CLOSING:
        if ch.blocks_til_maturity and ch.blocks_til_maturity > 0:
            msg = (
                f"force close confirmed; {ch.limbo_sat:,} sat time-locked until height "
                f"{ch.maturity_height} ({ch.blocks_til_maturity} blocks)"
            )
        else:
            msg = f"force close confirmed; {ch.limbo_sat:,} sat in limbo, the node is sweeping it to its wallet"
        return CloseStatus(rec, ch, 0, None, None, msg, f"wait, then l2custody sweep {rec.node}")
    return CloseStatus(
        rec,
        ch,
        0,
        None,
        None,
        f"force close {rec.closing_txid or ''} waiting for confirmation".replace("  ", " "),
        "wait for a block",
    )


def _closing_raw(wallet: Wallet, txid: str) -> bytes | None:
    raw = wallet.store.transaction_raw(txid)
    if raw is not None:
        return raw
    try:
        return wallet.chain.raw_transaction(txid)
    except ChainUnreachable:
        raise
    except ChainError:
        return None  # not in the mempool, and the chain source has no txindex


def _due_sat(rec: CloseRecord, ch: ChannelInfo | None) -> int | None:
    if ch is not None and ch.state is ChannelState.CLOSED and ch.settled_sat is not None:
        return ch.settled_sat
    if ch is not None and ch.state is ChannelState.CLOSING:
        return ch.local_balance_sat
    due = rec.details.get("local_balance_sat")
    return int(due) if due is not None else None


def _coop_status(wallet: Wallet, rec: CloseRecord, ch: ChannelInfo | None) -> CloseStatus:
    store, cp = wallet.store, rec.channel_point
    txid = rec.closing_txid
    if not txid:
        return CloseStatus(
            rec, ch, 0, None, None, "the node has not reported a closing transaction yet", "wait, then check again"
        )
    raw = _closing_raw(wallet, txid)
    confs, height = store.confirmations(txid)
    due = _due_sat(rec, ch)
    if raw is None:
        if ch is not None and ch.state is ChannelState.CLOSED and (due is None or due > 0):
            problem = (
                f"closing transaction {txid} is confirmed but pays nothing the wallet knows, and the chain "
                f"source cannot return it (no txindex) to show where {due if due is not None else 'our'} sat "
                "went. Treating it as a custody violation: inspect it with a block explorer."
            )
            return _violation(wallet, rec, ch, problem, None)
        return CloseStatus(
            rec, ch, confs, None, None, f"closing transaction {txid} not seen yet", "wait, then check again"
        )
    # every generation's addresses: a channel opened before `wallet rotate` closes to the generation it committed
    our_scripts = {script: (change, index) for script, (_g, change, index) in wallet.owned_scripts().items()}
    verdict = judge_closing_tx(
        raw,
        cp,
        network=wallet.record.network,
        our_scripts=our_scripts,
        expected_address=rec.expected_address,
        due_sat=due,
    )
    if not verdict.ok:
        return _violation(wallet, rec, ch, verdict.problem or "custody violation", verdict)
    main = verdict.main_output
    if confs < 1:
        msg = (
            (
                f"closing transaction {txid} pays {main.value:,} sat to the multisig ({main.address}); "
                "waiting for confirmation"
            )
            if main
            else f"closing transaction {txid} waiting for confirmation"
        )
        return CloseStatus(rec, ch, 0, verdict, None, msg, "wait for a block, then check again")
    if main is None:  # nothing was due
        rec = _verified(wallet, rec, verdict, None, height)
        return CloseStatus(rec, ch, confs, verdict, None, "verified: " + "; ".join(verdict.notes), None)
    utxo = store.utxo(txid, main.index)
    if utxo is None:
        return CloseStatus(
            rec,
            ch,
            confs,
            verdict,
            None,
            f"closing transaction {txid} is confirmed and pays the multisig, but the wallet does "
            "not hold the output yet",
            "l2custody wallet sync, then check again",
        )
    rec = _verified(wallet, rec, verdict, main.index, height)
    return CloseStatus(
        rec,
        ch,
        confs,
        verdict,
        f"{txid}:{main.index}",
        f"verified: {main.value:,} sat in the multisig at {txid}:{main.index} ({main.address})",
        None,
    )


def _verified(
    wallet: Wallet, rec: CloseRecord, verdict: CloseVerdict, vout: int | None, height: int | None
) -> CloseRecord:
    store = wallet.store
    value = verdict.outputs[vout].value if vout is not None else 0
    with store.transaction():
        rec = save_record(
            store,
            replace(
                rec,
                state=CloseState.VERIFIED,
                vout=vout,
                value=value,
                height=height,
                details={**rec.details, "notes": list(verdict.notes)},
            ),
        )
        store.audit(
            wallet.actor,
            "close-verified",
            rec.channel_point,
            {
                "closing_txid": rec.closing_txid,
                "vout": vout,
                "value": value,
                "height": height,
                "address": verdict.outputs[vout].address if vout is not None else None,
                "notes": list(verdict.notes),
            },
        )
    return rec


def _violation(
    wallet: Wallet, rec: CloseRecord, ch: ChannelInfo | None, problem: str, verdict: CloseVerdict | None
) -> CloseStatus:
    store = wallet.store
    with store.transaction():
        rec = save_record(store, replace(rec, state=CloseState.VIOLATION, details={**rec.details, "problem": problem}))
        store.audit(
            wallet.actor,
            "custody-violation",
            rec.channel_point,
            {"problem": problem, "closing_txid": rec.closing_txid, "verdict": verdict.to_dict() if verdict else None},
        )
    return CloseStatus(rec, ch, 0, verdict, None, problem, None)


def wait_for_close(
    backend: NodeBackend,
    wallet: Wallet,
    channel_point: str,
    *,
    timeout: float = 3600.0,
    interval: float = 2.0,
    progress: Callable[[CloseStatus], None] | None = None,
) -> CloseStatus:
    """Poll :func:`close_status` until the close is settled (verified, violation,
    funds in the node wallet) or ``timeout`` seconds pass (then the last status
    is returned; it is not an error: the close goes on without us)."""
    return poll_until(
        lambda: close_status(backend, wallet, channel_point),
        lambda s: s.settled,
        timeout=timeout,
        interval=interval,
        progress=progress,
    )


@dataclass(frozen=True)
class CloseReport:
    """``channel close``: what was done and, with a wait, where it ended."""

    outcome: CloseOutcome
    status: CloseStatus | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.outcome.to_dict(), "status": self.status.to_dict() if self.status else None}
