"""The classic interactive funding flow, for operators whose signers are at hand.

The nodes negotiate as usual, but the peers counter-sign only once the fully
signed transaction is handed over (lnd: ``psbt_finalize``), and the node that
finalizes last publishes it. Everything must happen before the peers give up
on the unfinished open (lnd: about 10 minutes), so the signatures are
collected right away, with a countdown, from the signers named on the
command line (software keys sign at once; file signers get the PSBT exported
and their signed file is picked up as soon as it is dropped back).

If the time runs out or a step fails before the publishing node got the
transaction, everything is undone as in the deferred flow: nothing was
broadcast, nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from l2custody.amounts import format_sats
from l2custody.backends.base import FundingIntent
from l2custody.custody.context import Custody
from l2custody.custody.funding.negotiate import open_channels, outcome_text, unwind
from l2custody.custody.funding.records import load_session
from l2custody.custody.funding.session import ChannelRequest, FundingSession, LegState, SessionState
from l2custody.errors import BroadcastUnknown, L2CustodyError, SessionError, UsageError

#: lnd forgets an open whose funding is not finalized after about 10 minutes; keep a margin.
INTERACTIVE_TIMEOUT = 540.0


def open_interactive(
    ctx: Custody,
    requests: Sequence[ChannelRequest],
    signers: Sequence[str],
    *,
    fee_rate: float | None = None,
    allow_no_upfront_shutdown: bool = False,
    timeout: float = INTERACTIVE_TIMEOUT,
    poll: float = 2.0,
) -> FundingSession:
    """Negotiate, collect signatures from ``signers`` within ``timeout`` seconds, hand the
    signed transaction to the nodes; the last one publishes. Returns the session BROADCAST."""
    if not signers:
        raise UsageError(
            "--interactive needs the signers at hand: name them with --signer (as many as the multisig needs)"
        )
    for name in signers:
        ctx.store.signer(name)  # SignerUnavailable now, not after the peers started their timers
    started = time.monotonic()
    session = open_channels(
        ctx, requests, fee_rate=fee_rate, allow_no_upfront_shutdown=allow_no_upfront_shutdown, interactive=True
    )
    deadline = started + timeout
    try:
        _collect(ctx, session.id, list(signers), deadline, poll)
        return _finalize(ctx, session.id, deadline)
    except BroadcastUnknown:
        raise
    except L2CustodyError as exc:
        undone = unwind(ctx, session.id, f"interactive open failed: {exc.message}")
        raise type(exc)(f"{exc.message}\n{outcome_text(undone)}") from None
    except BaseException:
        current = load_session(ctx.store, session.id)
        if not current.state.may_be_on_chain:
            unwind(ctx, session.id, "interactive open interrupted")
        raise


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _collect(ctx: Custody, session_id: str, signers: list[str], deadline: float, poll: float) -> None:
    from l2custody.wallet.psbt import load_psbt
    from l2custody.wallet.signer_registry import load_signer
    from l2custody.wallet.signers import FileSigner

    waiting: list[str] = []
    for name in signers:
        result = ctx.wallet.sign(load_psbt(load_session(ctx.store, session_id).psbt), name)
        if result.exported:
            ctx.progress(
                f"{name}: PSBT exported to {result.exported[0]}; drop the signed file back as {session_id}-signed.psbt"
            )
            waiting.append(name)
        else:
            ctx.progress(f"{name}: {result.added} signature(s) added")
        if result.complete:
            return
    network = ctx.wallet.record.network
    while waiting:
        left = _left(deadline)
        if left <= 0:
            raise SessionError(
                f"session {session_id}: the signatures of {', '.join(waiting)} did not arrive in time; the peers "
                "would drop the open. Use the deferred flow (without --interactive) for slow signers."
            )
        ctx.progress(f"waiting for {', '.join(waiting)}: {int(left) // 60}:{int(left) % 60:02d} left")
        for name in list(waiting):
            signer = load_signer(ctx.store.signer(name), network)
            unsigned = load_psbt(load_session(ctx.store, session_id).psbt)
            if isinstance(signer, FileSigner) and signer.collect(session_id, unsigned=unsigned):
                result = ctx.wallet.sign(unsigned, name)
                waiting.remove(name)
                ctx.progress(f"{name}: {result.added} signature(s) collected")
                if result.complete:
                    return
        time.sleep(min(poll, max(_left(deadline), 0.1)))
    raise SessionError(
        f"session {session_id}: the signers named ({', '.join(signers)}) are not enough for the "
        f"{ctx.wallet.descriptor.threshold}-of-{ctx.wallet.descriptor.n} multisig"
    )


def _finalize(ctx: Custody, session_id: str, deadline: float) -> FundingSession:
    from l2custody.wallet.psbt import extract, finalize_psbt, load_psbt

    session = load_session(ctx.store, session_id)
    checked = ctx.wallet.verify(load_psbt(session.psbt))
    if checked.txid != session.txid:
        raise SessionError(f"session {session_id}: the signed PSBT is not the negotiated transaction; refusing")
    final = finalize_psbt(checked.psbt, ctx.wallet.descriptor)
    extract(final)  # complete: every input has its witness
    raw = final.serialize()
    session = replace(session, psbt=final.to_base64())
    ctx.save(session, "funding-finalized", {"txid": session.txid}, psbt=True)
    last = len(session.legs) - 1
    for i, leg in enumerate(session.legs):
        if _left(deadline) <= 0:
            raise SessionError(f"session {session_id}: out of time before {leg.request.label} was finalized")
        publishing = i == last
        if publishing:
            # From here on the transaction may go out: never undo.
            session = session.with_state(SessionState.BROADCASTING, broadcast_height=ctx.wallet.chain.tip_height())
            ctx.save(session, "funding-broadcasting", {"txid": session.txid, "by": leg.request.node})
        ctx.progress(f"finalizing {leg.request.label}" + (" (the node publishes)" if publishing else ""))
        try:
            point = ctx.node(leg.request.node).open_finalize_interactive(FundingIntent.from_dict(leg.intent or {}), raw)
        except L2CustodyError as exc:
            if not publishing:
                raise
            ctx.audit("funding-broadcast-unknown", session.id, {"reason": exc.message})
            raise BroadcastUnknown(
                f"{exc.message}\nNode {leg.request.node!r} was handed the signed funding transaction {session.txid}; "
                f"whether it published it is unknown. Check with `l2custody session status {session.id}`; "
                f"`l2custody session broadcast {session.id}` is safe once every channel shows as pending."
            ) from None
        session = session.update_leg(i, state=LegState.SECURED, channel_point=point)
        ctx.save(session, "channel-secured", {"leg": i, "node": leg.request.node, "channel_point": point})
    session = session.with_state(SessionState.BROADCAST, owner={})
    ctx.save(session, "funding-broadcast", {"txid": session.txid, "by": "node", "amount": session.amount_sat})
    ctx.progress(
        f"funding transaction {session.txid} published ({format_sats(session.amount_sat)} in "
        f"{len(session.legs)} channel(s))"
    )
    try:
        ctx.wallet.sync()
    except L2CustodyError:
        pass
    return load_session(ctx.store, session_id)
