"""A funding session after negotiation: signatures, broadcast, confirmation, abort.

- ``sign_session``: one signer adds its signatures through the wallet's
  verified pipeline (software key, or a file round trip to an air-gapped
  signer); when the last needed signature arrives the session is broadcast
  unless told otherwise.
- ``broadcast_session``: re-verify (only signatures may have changed since
  the peers counter-signed: same txid), check every channel is still pending
  on its node and the deadline margin, finalize, broadcast through the chain
  source. An unknown outcome leaves the session BROADCASTING: check the
  chain, broadcasting again is safe.
- ``refresh``: follow the chain and the nodes (``session status``): the
  transaction's confirmations, channels opening, and the read-back of each
  channel's committed close address (a mismatch is a custody violation,
  written to the audit log). It also settles a session left NEGOTIATING by
  a process that died.
- ``abort_session``: nodes forget the channels, coins are released.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2custody.backends.base import Capability, ChannelInfo, ChannelState
from l2custody.custody.context import Custody
from l2custody.custody.funding.negotiate import expected_point, unwind
from l2custody.custody.funding.records import load_session
from l2custody.custody.funding.session import FundingSession, LegState, SessionState, SessionView
from l2custody.custody.polling import poll_until
from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    L2CustodyError,
    PsbtTampered,
    SessionError,
)

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.pipeline import SignResult


@dataclass(frozen=True)
class BroadcastOutcome:
    session: FundingSession
    txid: str
    rebroadcast: bool = False


@dataclass(frozen=True)
class SignOutcome:
    view: SessionView
    result: SignResult
    broadcast: BroadcastOutcome | None = None
    broadcast_error: str = ""


# --- views -------------------------------------------------------------------------------------


def view(ctx: Custody, session: FundingSession, notes: list[str] | None = None, tip: int | None = None) -> SessionView:
    """The session with live facts: tip, blocks left, signatures k/n, confirmations."""
    from l2custody.wallet.psbt import load_psbt
    from l2custody.wallet.review import summarize

    notes = list(notes or [])
    if tip is None:
        try:
            tip = ctx.wallet.chain.tip_height()
        except L2CustodyError as exc:  # show what is stored even without the chain
            tip = session.start_height
            notes.append(f"chain unreachable, deadline figures assume no new block: {exc.message}")
    signatures = 0
    if session.psbt:
        summary = summarize(load_psbt(session.psbt), ctx.wallet.descriptor)
        counts = [ctx.wallet.descriptor.threshold if i.finalized else i.signatures for i in summary.inputs]
        signatures = min(counts, default=0)
    confirmations = 0
    if session.confirm_height is not None:
        confirmations = max(tip - session.confirm_height + 1, 0)
    return SessionView(session, tip, ctx.margin, signatures, ctx.wallet.descriptor.threshold, confirmations, notes)


def show(ctx: Custody, session_id: str) -> SessionView:
    """The stored session and its live view, changing nothing."""
    session = load_session(ctx.store, session_id)
    return view(ctx, session, _static_notes(session))


def _static_notes(session: FundingSession) -> list[str]:
    notes = []
    if session.error:
        notes.append(session.error)
    for leg in session.legs:
        if leg.upfront_shutdown is False:
            notes.append(
                f"{leg.request.label}: no upfront shutdown address (allowed by the operator); close it "
                "with a multisig delivery address"
            )
        if leg.close_address_ok is False:
            notes.append(
                f"CUSTODY VIOLATION: {leg.request.label} ({leg.channel_point}) does not close to the "
                f"reserved multisig address {leg.close_address}; see the audit log"
            )
    return notes


# --- signing ------------------------------------------------------------------------------------


def sign_session(ctx: Custody, session_id: str, signer: str, *, broadcast: bool = True) -> SignOutcome:
    """Add ``signer``'s signatures (verified first: a changed output is refused before
    any signer sees it). A file signer exports on the first call and collects the signed
    file on a later one. When the PSBT is complete and ``broadcast``, broadcast it."""
    from l2custody.wallet.psbt import load_psbt

    session = load_session(ctx.store, session_id)
    signable = session.state is SessionState.SECURED or (
        session.state is SessionState.NEGOTIATING and session.interactive and session.psbt
    )
    if not signable:
        hint = {
            SessionState.NEGOTIATING: "its channels are not secured yet; see `l2custody session status "
            + session.id
            + "`",
        }.get(session.state, "nothing is left to sign")
        raise SessionError(f"session {session.id} is {session.state.value}: {hint}")
    result = ctx.wallet.sign(load_psbt(session.psbt), signer)
    with ctx.store.transaction():
        ctx.audit(
            "funding-signed" if not result.exported else "funding-exported",
            session.id,
            {
                "signer": signer,
                "added": result.added,
                "complete": result.complete,
                "files": [str(p) for p in result.exported],
            },
        )
    session = load_session(ctx.store, session_id)
    outcome = None
    error = ""
    if result.complete and broadcast and session.state is SessionState.SECURED:
        try:
            outcome = broadcast_session(ctx, session.id)
            session = outcome.session
        except L2CustodyError as exc:  # the signatures are saved; report and let the operator retry
            error = f"{type(exc).__name__}: {exc.message}"
            session = load_session(ctx.store, session_id)
    return SignOutcome(view(ctx, session, _static_notes(session)), result, outcome, error)


# --- broadcasting ---------------------------------------------------------------------------------


def _check_still_pending(ctx: Custody, session: FundingSession) -> None:
    """Every channel must still be pending on its node: broadcasting a funding output a node
    forgot would lock the coins in a 2-of-2 nobody tracks."""
    by_node: dict[str, dict[str, ChannelInfo]] = {}
    for leg in session.legs:
        name = leg.request.node
        if name not in by_node:
            by_node[name] = {c.channel_point: c for c in ctx.node(name).list_channels(include_closed=True)}
        ch = by_node[name].get(leg.channel_point)
        if ch is None or ch.state not in (ChannelState.PENDING_OPEN, ChannelState.OPEN):
            state = "unknown to the node" if ch is None else ch.state.value
            raise SessionError(
                f"session {session.id}: channel {leg.channel_point} ({leg.request.label}) is {state}; "
                "broadcasting would fund an output the node no longer tracks. Refusing. Run "
                f"`l2custody session abort {session.id}` and open again."
            )


def broadcast_session(ctx: Custody, session_id: str) -> BroadcastOutcome:
    """Finalize and broadcast a fully signed, secured session (or rebroadcast one).

    Raises SessionError (not secured, a channel no longer pending), DeadlinePassed,
    PsbtTampered (the transaction is not the one the peers counter-signed),
    PsbtError (signatures missing), BroadcastRejected (nothing went out; the session
    stays SECURED) and BroadcastUnknown (the session stays BROADCASTING: check the
    chain with `session status`, broadcasting again is safe).
    """
    from l2custody.wallet.psbt import extract, finalize_psbt, load_psbt, psbt_txid

    session = load_session(ctx.store, session_id)
    tip = ctx.wallet.chain.tip_height()
    session.check_broadcastable(tip, ctx.margin)
    _check_still_pending(ctx, session)
    checked = ctx.wallet.verify(load_psbt(session.psbt))
    if checked.summary.fingerprint != session.psbt_fingerprint or checked.txid != session.txid:
        raise PsbtTampered(
            f"session {session.id}: the PSBT is not the transaction the peers counter-signed ({checked.txid} "
            f"instead of {session.txid}); broadcasting it would leave the channels unfunded and the coins in "
            "limbo. Refusing."
        )
    final = finalize_psbt(checked.psbt, ctx.wallet.descriptor)
    raw = extract(final)
    if psbt_txid(final) != session.txid:  # pragma: no cover - segwit inputs: signatures never change the txid
        raise PsbtTampered(f"session {session.id}: finalizing changed the txid; refusing")
    previous = session.state
    rebroadcast = previous is not SessionState.SECURED
    session = session.with_state(
        SessionState.BROADCASTING, psbt=final.to_base64(), broadcast_height=session.broadcast_height or tip
    )
    ctx.save(session, "funding-broadcasting", {"txid": session.txid, "rebroadcast": rebroadcast}, psbt=True)
    ctx.progress(f"broadcasting {session.txid}")
    try:
        ctx.wallet.chain.broadcast(raw)
    except BroadcastRejected as exc:
        if _chain_knows(ctx, session.txid):
            ctx.audit("funding-rebroadcast-known", session.id, {"reason": exc.message})
        else:
            back = previous if previous is not SessionState.BROADCASTING else SessionState.SECURED
            ctx.save(session.with_state(back), "funding-broadcast-rejected", {"reason": exc.message})
            raise
    except BroadcastUnknown as exc:
        ctx.audit("funding-broadcast-unknown", session.id, {"reason": exc.message})
        raise BroadcastUnknown(
            f"{exc.message}\nSession {session.id} stays broadcast-pending: `l2custody session status "
            f"{session.id}` checks the chain; `l2custody session broadcast {session.id}` again is safe."
        ) from None
    session = session.with_state(SessionState.BROADCAST)
    ctx.save(session, "funding-broadcast", {"txid": session.txid})
    _publish_through_nodes(ctx, session, final.serialize())
    try:
        ctx.wallet.sync()  # the wallet records the spend and its change right away
    except L2CustodyError:
        pass  # the broadcast happened; `session status` syncs again
    return BroadcastOutcome(load_session(ctx.store, session_id), session.txid, rebroadcast)


def _publish_through_nodes(ctx: Custody, session: FundingSession, signed_psbt: bytes) -> None:
    """Hand the signed funding PSBT to every node that must be told (CLN ``sendpsbt``).

    Such a node keeps the channels it secured marked "funding withheld" until it
    sees the PSBT, and forgets a withheld channel without a closing transaction
    when it closes. The transaction is already out, so a failure here is recorded
    and reported, not raised: `session broadcast` again retries it (harmless twice).
    """
    for name in sorted({leg.request.node for leg in session.legs}):
        backend = ctx.node(name)
        if not backend.supports(Capability.PUBLISH_PSBT):
            continue
        try:
            backend.publish_psbt(signed_psbt)
        except L2CustodyError as exc:
            ctx.audit("funding-node-publish-failed", session.id, {"node": name, "reason": exc.message})
            ctx.progress(
                f"warning: node {name} was not told about funding {session.txid} ({exc.message}); run "
                f"`l2custody session broadcast {session.id}` again once it is reachable"
            )
        else:
            ctx.audit("funding-node-published", session.id, {"node": name, "txid": session.txid})


def _chain_knows(ctx: Custody, txid: str) -> bool:
    try:
        ctx.wallet.chain.raw_transaction(txid)
        return True
    except L2CustodyError:
        return False


# --- following ------------------------------------------------------------------------------------


def _owner_alive(session: FundingSession) -> bool:
    owner = session.owner or {}
    pid = owner.get("pid")
    if not pid or owner.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settle_negotiation(ctx: Custody, session: FundingSession, notes: list[str]) -> FundingSession:
    """A NEGOTIATING session whose process died: legs the nodes hold as pending count
    as secured; if that is all of them the session is SECURED, else it must be aborted."""
    if _owner_alive(session):
        notes.append(f"negotiation in progress in process {session.owner.get('pid')}")
        return session
    if session.interactive or not session.txid:
        notes.append(
            "the negotiation was interrupted before its channels were secured; nothing was "
            f"broadcast. Run `l2custody session abort {session.id}` and open again."
        )
        return session
    pending: dict[str, set[str]] = {}
    for i, leg in enumerate(session.legs):
        name = leg.request.node
        if name not in pending:
            pending[name] = {
                c.channel_point
                for c in ctx.node(name).list_channels(include_closed=False)
                if c.state is ChannelState.PENDING_OPEN
            }
        point = expected_point(session, leg)
        if leg.state is LegState.REQUESTED and point in pending[name]:
            session = session.update_leg(i, state=LegState.SECURED, channel_point=point)
            ctx.save(
                session,
                "channel-secured",
                {"leg": i, "node": name, "channel_point": point, "found": "pending on the node after an interruption"},
            )
    if all(leg.state is LegState.SECURED for leg in session.legs):
        session = session.with_state(SessionState.SECURED, owner={})
        ctx.save(session, "funding-secured", {"txid": session.txid, "resumed": True})
        notes.append("the negotiating process was interrupted after every channel was secured; resumed")
    else:
        notes.append(
            "the negotiation was interrupted before every channel was secured; nothing was broadcast. "
            f"Run `l2custody session abort {session.id}` and open again."
        )
    return session


def _follow_chain(ctx: Custody, session: FundingSession, notes: list[str]) -> FundingSession:
    ctx.wallet.sync()
    known, height = ctx.store.transaction_height(session.txid)
    if not known and _chain_knows(ctx, session.txid):
        known = True
    if not known:
        if session.state is SessionState.BROADCASTING:
            notes.append(
                f"the chain does not know {session.txid} (yet): run `l2custody session broadcast "
                f"{session.id}` again (safe)"
            )
        return session
    state = SessionState.CONFIRMED if height is not None else SessionState.BROADCAST
    if state is not session.state or height != session.confirm_height:
        session = session.with_state(state, confirm_height=height)
        ctx.save(session, f"funding-{state.value}", {"txid": session.txid, "height": height})
    return session


def _check_channels(ctx: Custody, session: FundingSession, notes: list[str]) -> FundingSession:
    """Open channels: read back the committed close address (invariant 2)."""
    by_node: dict[str, dict[str, ChannelInfo]] = {}
    for i, leg in enumerate(session.legs):
        if leg.state is not LegState.SECURED:
            continue
        name = leg.request.node
        try:
            if name not in by_node:
                node = ctx.node(name)
                if node.supports(Capability.WITHHELD_FUNDING):
                    node.record_withheld_funding()  # broadcast by us, not by the node: tell it
                by_node[name] = {c.channel_point: c for c in node.list_channels(include_closed=False)}
        except L2CustodyError as exc:
            notes.append(f"node {name!r}: {exc.message}")
            continue
        ch = by_node[name].get(leg.channel_point)
        if ch is None or ch.state is not ChannelState.OPEN:
            notes.append(f"{leg.request.label}: waiting for {name} to open {leg.channel_point}")
            continue
        if leg.upfront_shutdown is False:
            ok = None
        elif not ch.close_address_known:
            notes.append(f"{leg.request.label}: the node does not report the close address yet")
            continue
        else:
            ok = ch.close_address == leg.close_address
        session = session.update_leg(i, state=LegState.OPEN, close_address_ok=ok)
        details = {
            "leg": i,
            "node": name,
            "channel_point": leg.channel_point,
            "reserved": leg.close_address,
            "committed": ch.close_address,
        }
        ctx.save(session, "channel-open", details)
        if ok is False:
            ctx.audit(
                "custody-violation",
                session.id,
                {**details, "invariant": 2, "what": "committed close address is not the reserved one"},
            )
    return session


def refresh(ctx: Custody, session_id: str) -> SessionView:
    """``session status``: bring the session up to date with the chain and the nodes."""
    session = load_session(ctx.store, session_id)
    notes: list[str] = []
    if session.state is SessionState.NEGOTIATING:
        session = _settle_negotiation(ctx, session, notes)
    elif session.state.may_be_on_chain:
        session = _follow_chain(ctx, session, notes)
        if session.state is SessionState.CONFIRMED:
            session = _check_channels(ctx, session, notes)
    elif session.state is SessionState.SECURED:
        try:
            _check_still_pending(ctx, session)
        except L2CustodyError as exc:  # a node that forgot a channel, or cannot be reached now
            notes.append(exc.message)
    return view(ctx, session, notes + _static_notes(session))


def done(session: FundingSession) -> bool:
    """Nothing left to follow: confirmed with every channel open, or final."""
    if session.state is SessionState.CONFIRMED:
        return all(leg.state is LegState.OPEN for leg in session.legs)
    return session.state in (SessionState.ABORTED, SessionState.FAILED)


def follow(
    ctx: Custody,
    session_id: str,
    *,
    timeout: float = 600.0,
    interval: float = 2.0,
    on_update: Callable[[SessionView], None] | None = None,
) -> SessionView:
    """``refresh`` until the channels are open (or the session is final), up to ``timeout`` s."""
    # SECURED, NEGOTIATING, BROADCASTING wait for people (signatures, a decision), not for the chain
    waiting_for_people = (SessionState.SECURED, SessionState.NEGOTIATING, SessionState.BROADCASTING)
    return poll_until(
        lambda: refresh(ctx, session_id),
        lambda v: done(v.session) or v.session.state in waiting_for_people,
        timeout=timeout,
        interval=interval,
        progress=on_update,
    )


# --- aborting -------------------------------------------------------------------------------------------


def abort_session(ctx: Custody, session_id: str, reason: str = "", *, force: bool = False) -> FundingSession:
    """Abandon an unbroadcast session: every node forgets its channels, the coins are released.

    Refused once the transaction may be on chain (BROADCAST/CONFIRMED; BROADCASTING
    unless ``force`` and the chain does not know it), and for a negotiation still
    running in a live process unless ``force``. Safe to repeat (it retries what a
    node could not do before).
    """
    session = load_session(ctx.store, session_id)
    if session.state in (SessionState.BROADCAST, SessionState.CONFIRMED):
        raise SessionError(
            f"session {session.id} is {session.state.value}: its transaction is on the network. The channels "
            "exist; close them with `l2custody channel close` to bring the coins back."
        )
    if session.state is SessionState.BROADCASTING:
        if _chain_knows(ctx, session.txid):
            raise SessionError(
                f"session {session.id}: the chain knows {session.txid}; it cannot be aborted. "
                f"Follow it with `l2custody session status {session.id}`."
            )
        if not force:
            raise SessionError(
                f"session {session.id} was broadcast with an unknown outcome; the chain does not know "
                f"{session.txid} now, but it may still be propagating. Check again with `l2custody session "
                f"status {session.id}`; abort only if you are sure it never went out (--force)."
            )
        session = session.with_state(SessionState.SECURED)
        ctx.save(session, "funding-broadcast-given-up", {"txid": session.txid})
    if session.state is SessionState.NEGOTIATING and _owner_alive(session) and not force:
        raise SessionError(
            f"session {session.id} is being negotiated by process {session.owner.get('pid')}; "
            "wait for it (or stop it, or use --force)"
        )
    pending_work = any(leg.state in (LegState.PLANNED, LegState.REQUESTED, LegState.SECURED) for leg in session.legs)
    if session.state is SessionState.ABORTED and not pending_work:
        return session
    final = SessionState.ABORTED if session.state is not SessionState.FAILED else SessionState.FAILED
    text = f"aborted by the operator{': ' + reason if reason else ''}"
    return unwind(
        ctx, session.id, text if final is SessionState.ABORTED else session.error.split("; left")[0], final=final
    )


def leftovers(session: FundingSession) -> list[str]:
    """Channels a node still holds for an undone session (empty: clean)."""
    return [
        f"{leg.request.label} ({leg.state.value})"
        for leg in session.legs
        if leg.state in (LegState.REQUESTED, LegState.SECURED)
    ]


__all__ = [
    "BroadcastOutcome",
    "SignOutcome",
    "abort_session",
    "broadcast_session",
    "done",
    "follow",
    "refresh",
    "show",
    "sign_session",
    "view",
]


@dataclass(frozen=True)
class SessionBroadcast:
    txid: str
    view: SessionView


@dataclass(frozen=True)
class SessionAbort:
    view: SessionView
    leftovers: tuple[str, ...]  # channels a node still holds: run abort again
