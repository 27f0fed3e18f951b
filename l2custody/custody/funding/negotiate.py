"""Negotiating funding sessions: channels funded by the multisig, secured before anyone signs.

``open_channels`` is the fast, automatic half of a funding session (seconds,
no signer needed):

1. pre-flight (``preflight``): the wallet rehearsed (``wallet rehearse``, unless
   ``[rehearsal] required = false``), nodes synced and on the wallet's network,
   peers connected, anchor reserves present, enough confirmed multisig coins;
2. a fresh multisig address per channel is issued and persisted as its
   upfront shutdown (close) address;
3. each node negotiates its channel (``open_start``) and names the funding
   output; ONE PSBT pays all of them plus change to our wallet, is verified
   against the wallet (exactly these funding outputs, invariant 1), its
   coins are reserved;
4. each node hands the unsigned PSBT to its peer (``open_secure``): the peer
   counter-signs the commitment and the channel is pending. Nothing is
   broadcast; only signatures may be added to this transaction from now on.

The session is persisted before and after every step (invariant 6). If any
step fails, ``unwind`` cancels the negotiations that were not secured,
abandons the pending channels that were, releases the coins and marks the
session FAILED: nothing was broadcast, nothing is lost.

Signing, broadcasting, following and aborting are in ``custody/funding/lifecycle.py``;
the classic interactive flow in ``custody/funding/interactive.py``.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from l2custody.amounts import format_sats
from l2custody.backends.base import Capability, FundingIntent, NodeBackend, NodeInfo, OpenRequest
from l2custody.custody.context import Custody
from l2custody.custody.funding.records import create_session, new_session_id, save_session
from l2custody.custody.funding.session import (
    ChannelRequest,
    FundingLeg,
    FundingSession,
    LegState,
    SessionState,
)
from l2custody.errors import (
    InsufficientFunds,
    L2CustodyError,
    NetworkMismatch,
    NodeError,
    NotSupported,
    PeerRefused,
    UsageError,
)

if TYPE_CHECKING:  # pragma: no cover
    pass

#: lnd refuses channels below 20,000 sat (funding.MinChanFundingSize); peers may ask for more.
MIN_CHANNEL_SAT = 20_000


# --- pre-flight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    """What the pre-flight found: everything needed to start, or an error was raised."""

    fee_rate: float
    tip_height: int
    spendable_sat: int
    estimated_fee_sat: int
    nodes: dict[str, NodeInfo]


def check_requests(requests: Sequence[ChannelRequest]) -> None:
    """Amounts and shapes we can refuse without asking anyone."""
    if not requests:
        raise UsageError("no channels to open")
    for r in requests:
        if r.amount_sat < MIN_CHANNEL_SAT:
            raise UsageError(
                f"channel {r.label}: {format_sats(r.amount_sat)} is below the smallest channel lnd opens "
                f"({format_sats(MIN_CHANNEL_SAT)}); ask for more"
            )
        if not 0 <= r.push_sat < r.amount_sat:
            raise UsageError(f"channel {r.label}: push {format_sats(r.push_sat)} must be below the channel amount")
    seen = set()
    for r in requests:
        key = (r.node, r.peer_pubkey, r.amount_sat)
        if key in seen:
            raise UsageError(
                f"channel {r.label} of {format_sats(r.amount_sat)} is listed twice; two equal channels "
                "to one peer in one transaction cannot be told apart by lnd: vary the amounts"
            )
        seen.add(key)


def _check_node(ctx: Custody, name: str, requests: Sequence[ChannelRequest], interactive: bool) -> NodeInfo:
    backend = ctx.node(name)
    needed = [Capability.PSBT_FUNDING, Capability.INTERACTIVE_FUNDING if interactive else Capability.SECURE_BEFORE_SIGN]
    missing = [c.value for c in needed if not backend.supports(c)]
    if missing:
        raise NotSupported(
            f"node {name!r} ({backend.kind}) cannot open multisig-funded channels this way (missing: "
            f"{', '.join(missing)}); {'try without --interactive' if interactive else 'try --interactive'}"
        )
    info = backend.info()
    if info.network != ctx.wallet.record.network:
        raise NetworkMismatch(
            f"node {name!r} is on {info.network}, the wallet on {ctx.wallet.record.network}; "
            "check `l2custody node list`"
        )
    if not info.synced_to_chain:
        raise NodeError(
            f"node {name!r} is not synced to the chain (at height {info.block_height}); wait until "
            "`l2custody node check` says it is synced, then retry"
        )
    for r in requests:
        if r.peer_pubkey == info.pubkey:
            raise UsageError(f"{r.peer_pubkey[:16]}… is node {name!r} itself; a channel needs another peer")
        if r.peer_host:
            ctx.progress(f"connecting {name} to {r.peer_pubkey[:16]}…@{r.peer_host}")
            backend.connect_peer(r.peer_pubkey, r.peer_host)
        elif not backend.is_connected(r.peer_pubkey):
            raise PeerRefused(
                f"node {name!r} is not connected to {r.peer_pubkey}; give its address as "
                f"{r.peer_pubkey}@HOST:PORT so l2custody connects first"
            )
    public = sum(1 for r in requests if not r.private)
    if public and backend.supports(Capability.ANCHOR_RESERVE):
        reserve = backend.anchor_reserve(additional_public_channels=public)
        if not reserve.sufficient:
            where = ""
            if backend.supports(Capability.NEW_ADDRESS):
                where = f" to {backend.new_address()}"
            raise InsufficientFunds(
                f"node {name!r} must hold {format_sats(reserve.required_sat)} in its own wallet as the anchor "
                f"reserve for its public channels ({public} new); it has {format_sats(reserve.available_sat)}. "
                f"Send at least {format_sats(reserve.missing_sat)}{where} and wait for a confirmation, or "
                "open the channel(s) as --private. Nothing was started."
            )
    return info


def preflight(
    ctx: Custody, requests: Sequence[ChannelRequest], *, fee_rate: float | None = None, interactive: bool = False
) -> Preflight:
    """Check everything that can be checked before any node is asked for a channel.

    Raises UsageError, NotSupported, NetworkMismatch, NodeError (not synced),
    PeerRefused (not connected / connect failed), InsufficientFunds (anchor
    reserve, or not enough confirmed multisig coins), PolicyViolation (the
    wallet generation was never rehearsed, ``[rehearsal] required``) — each
    saying what to do.
    """
    from l2custody.wallet import coinselect
    from l2custody.wallet.rehearsal_records import require_rehearsed

    check_requests(requests)
    by_node: dict[str, list[ChannelRequest]] = {}
    for r in requests:
        by_node.setdefault(r.node, []).append(r)
    for name in by_node:
        ctx.node(name)  # NodeNotFound before any network access
    # every open (single, batch, interactive) passes here: an untested setup funds no channel
    require_rehearsed(ctx.store, ctx.wallet.record, required=ctx.wallet.config.rehearsal.required)
    ctx.progress("syncing the multisig wallet")
    ctx.wallet.sync()
    rate = ctx.wallet.fee_rate(fee_rate)
    tip = ctx.wallet.chain.tip_height()
    infos = {}
    for name, reqs in by_node.items():
        ctx.progress(f"checking node {name}")
        infos[name] = _check_node(ctx, name, reqs, interactive)
    coins = [ctx.wallet.psbt_utxo(u) for u in ctx.wallet.spendable_coins()]
    spendable = sum(c.value for c in coins)
    total = sum(r.amount_sat for r in requests)
    try:
        sel = coinselect.select(
            coins, total, rate, desc=ctx.wallet.descriptor, output_script_lens=(34,) * len(requests)
        )
    except InsufficientFunds:
        raise InsufficientFunds(
            f"the channels need {format_sats(total)} plus the fee at {rate:g} sat/vB; the multisig has "
            f"{format_sats(spendable)} confirmed and not reserved. Fund it (`l2custody wallet address`), "
            "wait for a confirmation and `l2custody wallet sync`, or open smaller channels. Nothing was started."
        ) from None
    return Preflight(rate, tip, spendable, sel.fee, infos)


# --- negotiation ------------------------------------------------------------------------------


def open_channels(
    ctx: Custody,
    requests: Sequence[ChannelRequest],
    *,
    fee_rate: float | None = None,
    allow_no_upfront_shutdown: bool = False,
    interactive: bool = False,
) -> FundingSession:
    """Negotiate one funding session for ``requests`` (one channel or a batch).

    Returns the session SECURED (every channel counter-signed, pending in its
    node, nothing broadcast) — or, with ``interactive``, NEGOTIATING with its
    PSBT built and verified, for ``interactive.complete`` to sign and hand to
    the nodes within the peers' timeout. On any failure everything done so
    far is undone (see ``unwind``) and the error is raised with what was undone.
    """
    pre = preflight(ctx, requests, fee_rate=fee_rate, interactive=interactive)
    session = _create(ctx, requests, pre, allow_no_upfront_shutdown, interactive)
    try:
        session = _negotiate(ctx, session)
        session = _build_psbt(ctx, session)
        if not interactive:
            session = secure(ctx, session)
    except L2CustodyError as exc:
        session = unwind(ctx, session.id, f"negotiation failed: {exc.message}")
        raise type(exc)(f"{exc.message}\n{outcome_text(session)}") from None
    except BaseException:
        unwind(ctx, session.id, "negotiation interrupted")
        raise
    return session


def _create(
    ctx: Custody, requests: Sequence[ChannelRequest], pre: Preflight, allow_no_upfront_shutdown: bool, interactive: bool
) -> FundingSession:
    sid = new_session_id()
    legs = []
    for i, r in enumerate(requests):
        # Issued (persisted) before any node sees it.
        addr = ctx.wallet.next_address(label=f"close {sid} #{i}")
        legs.append(FundingLeg(request=r, close_address=addr.address))
    session = FundingSession(
        id=sid,
        state=SessionState.NEGOTIATING,
        start_height=pre.tip_height,
        legs=tuple(legs),
        fee_rate=pre.fee_rate,
        interactive=interactive,
        allow_no_upfront_shutdown=allow_no_upfront_shutdown,
        owner={"pid": os.getpid(), "host": socket.gethostname()},
    )
    with ctx.store.transaction():
        create_session(ctx.store, ctx.wallet.record.id, session)
        ctx.audit(
            "funding-started",
            sid,
            {
                "channels": [
                    {
                        "node": r.node,
                        "peer": r.peer_pubkey,
                        "amount": r.amount_sat,
                        "private": r.private,
                        "close_address": leg.close_address,
                    }
                    for r, leg in zip(requests, legs)
                ],
                "start_height": pre.tip_height,
                "fee_rate": pre.fee_rate,
                "interactive": interactive,
            },
        )
    return session


def _negotiate(ctx: Custody, session: FundingSession) -> FundingSession:
    last = len(session.legs) - 1
    for i, leg in enumerate(session.legs):
        if leg.state is not LegState.PLANNED:
            continue
        r = leg.request
        ctx.progress(f"negotiating {r.label} ({format_sats(r.amount_sat)})")
        request = OpenRequest(
            peer_pubkey=r.peer_pubkey,
            amount_sat=r.amount_sat,
            private=r.private,
            push_sat=r.push_sat,
            close_address=leg.close_address,
            fee_rate=session.fee_rate,
            allow_no_upfront_shutdown=session.allow_no_upfront_shutdown,
            # classic flow: the node that finalizes last publishes the whole transaction
            node_publishes=session.interactive and i == last,
        )
        intent = ctx.node(r.node).open_start(request)
        upfront = intent.close_address is not None
        session = session.update_leg(i, state=LegState.REQUESTED, intent=intent.to_dict(), upfront_shutdown=upfront)
        ctx.save(
            session,
            "channel-negotiated",
            {
                "leg": i,
                "node": r.node,
                "peer": r.peer_pubkey,
                "intent": intent.intent_id,
                "funding_address": intent.funding_address,
                "amount": intent.amount_sat,
                "upfront_shutdown": upfront,
            },
        )
        if intent.amount_sat != r.amount_sat:
            raise NodeError(
                f"node {r.node!r} negotiated {format_sats(intent.amount_sat)} for {r.label}, we asked for "
                f"{format_sats(r.amount_sat)}; refusing"
            )
        if not upfront:
            ctx.audit(
                "upfront-shutdown-missing",
                session.id,
                {"leg": i, "peer": r.peer_pubkey, "reason": "peer cannot commit it; allowed by the operator"},
            )
    return session


def _build_psbt(ctx: Custody, session: FundingSession) -> FundingSession:
    """ONE PSBT paying every funding output plus change to us; verified and its coins reserved."""
    from l2custody.wallet import coinselect
    from l2custody.wallet.pipeline import SESSION_KEY
    from l2custody.wallet.psbt import TxOut, build_psbt, find_output, psbt_fingerprint, psbt_txid

    w = ctx.wallet
    outputs = [TxOut(leg.funding_script, leg.amount_sat, leg.funding_address) for leg in session.legs]
    rate = float(session.fee_rate or w.fee_rate(None))
    coins = [w.psbt_utxo(u) for u in w.spendable_coins()]
    sel = coinselect.select(
        coins,
        sum(o.value for o in outputs),
        rate,
        desc=w.descriptor,
        output_script_lens=tuple(len(o.script_pubkey) for o in outputs),
    )
    change = w.next_address(label=f"change {session.id}", change=True) if sel.change else None
    psbt = build_psbt(
        w.descriptor, list(sel.utxos), outputs, change.index if change else None, rate, w.chain.tip_height()
    )
    psbt.unknown[SESSION_KEY] = session.id.encode()
    legs = []
    for leg in session.legs:
        index = find_output(psbt, leg.funding_script, leg.amount_sat)
        if index is None:  # pragma: no cover - build_psbt pays every output it is given
            raise NodeError(f"the funding PSBT lacks the output for {leg.request.label}; nothing was sent")
        legs.append(replace(leg, output_index=index))
    reserved = tuple(f"{u.txid}:{u.vout}" for u in sel.utxos)
    session = replace(
        session,
        legs=tuple(legs),
        psbt=psbt.to_base64(),
        psbt_fingerprint=psbt_fingerprint(psbt),
        txid=psbt_txid(psbt),
        reserved_utxos=reserved,
        fee_rate=rate,
    )
    expected = [{"script": o.script_pubkey.hex(), "value": o.value, "address": o.address} for o in outputs]
    with ctx.store.transaction():
        save_session(
            ctx.store, session, psbt=True, expected_outputs=expected, policy_checked=False, fee=sel.fee, fee_rate=rate
        )
        # Invariant 1: exactly these funding outputs + our change, our inputs, the policy's fee caps.
        checked = w.verify(psbt)
        ctx.store.reserve_utxos([(u.txid, u.vout) for u in sel.utxos], session.id)
        ctx.audit(
            "funding-psbt-built",
            session.id,
            {
                "txid": session.txid,
                "fingerprint": session.psbt_fingerprint,
                "fee": checked.summary.fee,
                "inputs": list(reserved),
                "outputs": expected,
            },
        )
    ctx.progress(
        f"funding PSBT {session.txid[:16]}… built: {len(reserved)} input(s), fee {format_sats(checked.summary.fee or 0)}"
    )
    return session


def secure(ctx: Custody, session: FundingSession) -> FundingSession:
    """Hand the unsigned PSBT to every node; each peer counter-signs its channel."""
    from l2custody.wallet.psbt import load_psbt

    raw = load_psbt(session.psbt).serialize()
    for i, leg in enumerate(session.legs):
        if leg.state is not LegState.REQUESTED:
            continue
        ctx.progress(f"securing {leg.request.label}: the peer counter-signs the commitment")
        point = ctx.node(leg.request.node).open_secure(FundingIntent.from_dict(leg.intent or {}), raw)
        expected = f"{session.txid}:{leg.output_index}"
        if point != expected:
            raise NodeError(
                f"node {leg.request.node!r} secured channel {point}, the session PSBT funds {expected}; "
                "nothing will be broadcast"
            )
        session = session.update_leg(i, state=LegState.SECURED, channel_point=point)
        ctx.save(session, "channel-secured", {"leg": i, "node": leg.request.node, "channel_point": point})
    session = session.with_state(SessionState.SECURED, owner={})
    ctx.save(
        session, "funding-secured", {"txid": session.txid, "channels": [leg.channel_point for leg in session.legs]}
    )
    ctx.progress(f"session {session.id}: {len(session.legs)} channel(s) secured; nothing broadcast")
    return session


# --- undoing ---------------------------------------------------------------------------------


def _pending_points(backend: NodeBackend) -> set[str]:
    from l2custody.backends.base import ChannelState

    return {
        c.channel_point for c in backend.list_channels(include_closed=False) if c.state is ChannelState.PENDING_OPEN
    }


def expected_point(session: FundingSession, leg: FundingLeg) -> str:
    """The channel point a leg has (or will have) in the session's transaction."""
    if leg.channel_point:
        return leg.channel_point
    if session.txid and leg.output_index is not None:
        return f"{session.txid}:{leg.output_index}"
    return ""


def release_legs(ctx: Custody, session: FundingSession) -> tuple[FundingSession, list[str]]:
    """Make every node forget the session's channels: cancel negotiations not secured,
    abandon pending channels. Returns the session and the problems left (empty: all done).
    Only for sessions whose transaction was never broadcast."""
    problems: list[str] = []
    pending: dict[str, set[str]] = {}
    for i, leg in enumerate(session.legs):
        if leg.state in (LegState.CANCELLED, LegState.ABANDONED, LegState.OPEN):
            continue
        if leg.state is LegState.PLANNED:
            session = session.update_leg(i, state=LegState.CANCELLED)
            continue
        name = leg.request.node
        point = expected_point(session, leg)
        try:
            backend = ctx.node(name)
            if point and name not in pending:
                pending[name] = _pending_points(backend)
            if point and point in pending.get(name, set()):
                if not backend.supports(Capability.ABANDON_PENDING):
                    raise NotSupported(
                        f"node {name!r} cannot abandon pending channels; run `lncli abandonchannel` "
                        f"for {point} by hand (nothing was broadcast)"
                    )
                backend.abandon_pending(point)
                session = session.update_leg(i, state=LegState.ABANDONED, channel_point=point, error="")
                ctx.save(session, "channel-abandoned", {"leg": i, "node": name, "channel_point": point})
            elif leg.state is LegState.REQUESTED:
                backend.open_cancel(FundingIntent.from_dict(leg.intent or {}))
                session = session.update_leg(i, state=LegState.CANCELLED, error="")
                ctx.save(session, "channel-cancelled", {"leg": i, "node": name, "intent": leg.intent_id})
            else:  # secured, but the node no longer lists it as pending: it forgot it already
                session = session.update_leg(i, state=LegState.ABANDONED, error="")
                ctx.save(
                    session,
                    "channel-abandoned",
                    {"leg": i, "node": name, "channel_point": point, "note": "no longer pending on the node"},
                )
        except L2CustodyError as exc:
            problems.append(f"{leg.request.label}: {exc.message}")
            session = session.update_leg(i, error=exc.message)
    return session, problems


def unwind(ctx: Custody, session_id: str, reason: str, *, final: SessionState = SessionState.FAILED) -> FundingSession:
    """Undo an unbroadcast session: nodes forget its channels, its coins are released,
    its state becomes ``final`` (FAILED or ABORTED). Never raises for a node that
    cannot be reached: what is left is written in the session's error (retry with
    `session abort`)."""
    from l2custody.custody.funding.records import load_session

    session = load_session(ctx.store, session_id)
    if session.state.may_be_on_chain:
        raise UsageError(
            f"session {session.id} is {session.state.value}: its transaction may be on chain; not undoing it"
        )
    ctx.progress(f"undoing session {session.id}: nothing was broadcast")
    session, problems = release_legs(ctx, session)
    error = reason + (
        ("; left to clean up (run `l2custody session abort " + session.id + "` again): " + "; ".join(problems))
        if problems
        else ""
    )
    with ctx.store.transaction():
        released = ctx.store.release_utxos(session.id)
        session = session.with_state(final, error=error, owner={})
        save_session(ctx.store, session)
        ctx.audit(
            f"funding-{final.value}", session.id, {"reason": reason, "released_utxos": released, "problems": problems}
        )
    return session


def outcome_text(session: FundingSession) -> str:
    """One paragraph for people: what became of each channel of an undone session."""
    counts: dict[str, int] = {}
    for leg in session.legs:
        counts[leg.state.value] = counts.get(leg.state.value, 0) + 1
    legs = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    text = f"Session {session.id} {session.state.value}: nothing was broadcast; channels: {legs}; coins released."
    if "left to clean up" in session.error:
        text += " " + session.error[session.error.index("left to clean up") :]
    return text + " Nothing was lost."
