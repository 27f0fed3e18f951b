"""``l2custody node enforce NODE`` and ``node macaroon NODE --out FILE``: lnd asks us first.

Registered on the ``node`` sub-app of cli/node.py. ``enforce`` is long-running:
one line per decision (a JSON object per line with --json), clean stop on
Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from l2custody.cli.main import STATE, emit
from l2custody.cli.node import sub as node_app
from l2custody.cli.params import path


@node_app.command("enforce")
def enforce(
    node: Annotated[str, typer.Argument(help="The lnd node to enforce custody on (see `l2custody node list`).")],
    *,
    macaroon: Annotated[
        Optional[Path],
        typer.Option(
            help="An unencumbered macaroon with macaroon:write to register with (e.g. admin.macaroon); "
            "default: the node's registered macaroon.",
            parser=path,
        ),
    ] = None,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit",
            help="Also register read-only and alert on fund-moving requests made without the l2custody caveat.",
        ),
    ] = True,
) -> None:
    """Check every fund-moving request lnd gets with an l2custody caveat macaroon, until stopped.

    lnd sends each request made with a macaroon from `l2custody node macaroon`
    here first; closes, opens, sends, PSBTs and broadcasts that would pay
    anything but the multisig, an allowed destination, a funding session or
    the node's own wallet are refused with a message the caller sees. Run lnd
    with rpcmiddleware.enable=true and rpcmiddleware.addmandatory=l2custody-enforce
    so that nothing runs while this is down. Requests made with other macaroons
    (admin.macaroon: the break-glass key) are audited and alerted on.

    Examples:

      l2custody node enforce west --macaroon ~/.lnd/data/chain/bitcoin/mainnet/admin.macaroon
    """
    import signal
    import threading

    from l2custody import api

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = api.enforce_node(STATE.config, node, stop, macaroon=macaroon, audit=audit, log=_log)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not STATE.json:
        typer.echo(
            f"enforcer for {summary.node} stopped after {summary.seconds:.0f}s: {summary.allowed} allowed, "
            f"{summary.refused} refused, {summary.unguarded} unguarded requests seen"
        )


@node_app.command("macaroon")
def macaroon(
    node: Annotated[str, typer.Argument(help="The lnd node (see `l2custody node list`).")],
    *,
    out: Annotated[Path, typer.Option(help="Where to write the macaroon (created 0600; must not exist).", parser=path)],
    permissions: Annotated[
        Optional[list[str]],
        typer.Option(
            "--permissions",
            help="ENTITY:ACTION to grant (repeatable, or comma-separated); default: everything but "
            "macaroon:* and signer:generate.",
        ),
    ] = None,
    holder: Annotated[
        str, typer.Option(help="Who gets it (letters, digits, . _ -): recorded with each of its requests.")
    ] = "",
) -> None:
    """Bake a macaroon whose every request lnd sends to `l2custody node enforce`.

    Give it to operators and apps instead of admin.macaroon. While the
    enforcer is not registered, lnd refuses it outright.

    Examples:

      l2custody node macaroon west --out ops.macaroon --holder ops
    """
    from l2custody import api

    perms = [p.strip() for item in permissions or () for p in item.split(",") if p.strip()]
    emit(api.bake_enforced_macaroon(STATE.config, node, out, permissions=perms or None, holder=holder))


def _log(event: Any) -> None:
    if STATE.json:
        typer.echo(json.dumps(event.to_dict(), sort_keys=True))
    else:
        typer.echo(event.describe())
