"""``l2custody session ...``: funding sessions after negotiation.

Signatures at the signers' pace (``sign``), the broadcast (``broadcast``, or
automatically with the last signature), following the confirmation and the
channels (``status``), and a clean way out (``abort``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import number

sub = typer.Typer(
    help="Funding sessions: list, show, sign, status, broadcast, abort.",
    no_args_is_help=True,
)
app.add_typer(sub, name="session")

IdArg = Annotated[str, typer.Argument(help="The session id (fs-...), see `l2custody session list`.")]


def _progress(message: str) -> None:
    typer.echo(f"… {message}", err=True)


@sub.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include finished, aborted and failed sessions.")] = False,
) -> None:
    """Funding sessions (open ones; --all for every one).

    Example: l2custody session list --all
    """
    from l2custody import api
    from l2custody.cli.funding_render import sessions_table

    rows = api.list_sessions(STATE.config, include_final=all_)
    emit(rows, sessions_table(rows))


@sub.command("show")
def show(session_id: IdArg) -> None:
    """The session as stored: channels, close addresses, signatures, deadline.

    Example: l2custody session show fs-1a2b3c4d
    """
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    data = api.show_session(STATE.config, session_id, progress=_progress).to_dict()
    emit(data, session_text(data))


@sub.command("sign")
def sign(
    session_id: IdArg,
    signer: Annotated[str, typer.Option("--signer", "-s", help="A registered signer (see `l2custody signer list`).")],
    no_broadcast: Annotated[
        bool, typer.Option("--no-broadcast", help="Do not broadcast when this signature completes the PSBT.")
    ] = False,
) -> None:
    """Add a signer's signatures (verified first); the last needed one broadcasts.

    With the last needed signature the funding transaction is broadcast
    (unless --no-broadcast).

    A file signer gets the PSBT exported on the first run; run the same
    command again once the signed file is back in its directory.

    Examples:

      l2custody session sign fs-1a2b3c4d --signer alice

      l2custody session sign fs-1a2b3c4d --signer coldcard   # exports, then collects
    """
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    out = api.sign_session(STATE.config, session_id, signer, broadcast=not no_broadcast, progress=_progress)
    data = out.view.to_dict()
    data.update(
        signer=out.result.signer,
        added=out.result.added,
        complete=out.result.complete,
        exported=[str(p) for p in out.result.exported],
        broadcast_txid=out.broadcast.txid if out.broadcast else None,
        broadcast_error=out.broadcast_error,
    )
    if out.result.exported:
        head = (
            f"PSBT exported for {out.result.signer}: {', '.join(data['exported'])}.\nSign it on the device, "
            f"put the signed file back into that directory as {session_id}-signed.psbt, then run this "
            "command again."
        )
    else:
        head = f"{out.result.signer} added {out.result.added} signature(s)."
    if out.broadcast:
        head += f"\nBroadcast {out.broadcast.txid}."
    if out.broadcast_error:
        head += f"\nNot broadcast: {out.broadcast_error}"
    emit(data, head + "\n\n" + session_text(data))
    if out.broadcast_error:
        raise typer.Exit(1)


@sub.command("status")
def status(
    session_id: IdArg,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Keep following until the channels are open.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="With --wait: give up after this many seconds.", parser=number)
    ] = 3600,
) -> None:
    """Follow a session: confirmations, channels opening, close-address check.

    Also checks the close address each node committed against the reserved
    one, and settles sessions left half-negotiated by a process that died.

    Examples:

      l2custody session status fs-1a2b3c4d

      l2custody session status fs-1a2b3c4d --wait --timeout 7200
    """
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    def update(v) -> None:
        s = v.session
        open_ = sum(1 for leg in s.legs if leg.state.value == "open")
        _progress(f"{s.state.value}: {v.confirmations} confirmation(s), {open_}/{len(s.legs)} channel(s) open")

    v = api.session_status(STATE.config, session_id, wait=wait, timeout=timeout, on_update=update, progress=_progress)
    data = v.to_dict()
    emit(data, session_text(data))


@sub.command("broadcast")
def broadcast(session_id: IdArg) -> None:
    """Finalize and broadcast a fully signed session (again after an unknown outcome).

    Refused unless every channel is counter-signed and still pending on its
    node, the transaction is exactly the one the peers signed, and the
    deadline margin ([sessions] deadline_margin_blocks) is not reached.

    Example: l2custody session broadcast fs-1a2b3c4d
    """
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    out = api.broadcast_session(STATE.config, session_id, progress=_progress)
    data = out.view.to_dict()
    emit(data, f"Broadcast {out.txid}.\n\n" + session_text(data))


@sub.command("abort")
def abort(
    session_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also when a broadcast had an unknown outcome and the chain does not know the "
            "transaction, or a negotiating process still seems alive.",
        ),
    ] = False,
) -> None:
    """Give up an unbroadcast session: nodes forget its channels, coins are released.

    Nothing was broadcast, nothing is lost.

    Example: l2custody session abort fs-1a2b3c4d --reason "peer offline"
    """
    from l2custody import api
    from l2custody.cli.funding_render import session_text

    out = api.abort_session(STATE.config, session_id, reason, force=force, progress=_progress)
    data = out.view.to_dict()
    left, session = out.leftovers, out.view.session
    head = f"Session {session.id} {session.state.value}; coins released."
    if left:
        head += " Still held by a node (run abort again): " + ", ".join(left)
    emit(data, head + "\n\n" + session_text(data))
    if left:
        raise typer.Exit(1)
