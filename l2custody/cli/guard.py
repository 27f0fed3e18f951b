"""``l2custody node guard NODE``: give every inbound channel a multisig close address.

Registered on the ``node`` sub-app of cli/node.py. Long-running: one line per
decision (a JSON object per line with --json), clean stop on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from l2custody.cli.main import STATE
from l2custody.cli.node import sub as node_app


@node_app.command("guard")
def guard(
    node: Annotated[str, typer.Argument(help="The lnd node to guard (see `l2custody node list`).")],
    min_size: Annotated[
        Optional[str], typer.Option("--min-size", help="Refuse inbound channels smaller than this (e.g. 1000000).")
    ] = None,
    max_size: Annotated[
        Optional[str], typer.Option("--max-size", help="Refuse inbound channels larger than this.")
    ] = None,
    allow_peer: Annotated[
        Optional[list[str]],
        typer.Option("--allow-peer", help="Accept channels only from this peer pubkey (repeat for several)."),
    ] = None,
    deny_peer: Annotated[
        Optional[list[str]], typer.Option("--deny-peer", help="Refuse channels from this peer pubkey (repeatable).")
    ] = None,
    private: Annotated[
        bool, typer.Option("--private/--no-private", help="Accept private (unannounced) channels.")
    ] = True,
) -> None:
    """Guard a node's inbound channels until stopped (Ctrl-C or SIGTERM).

    Every channel a peer opens to the node gets a fresh multisig address as
    its upfront shutdown script (lnd ChannelAcceptor), so a cooperative close
    pays the multisig. Channels the policy refuses are rejected with a
    message the peer sees. Decisions go to the audit log. While the guard is
    not running lnd accepts channels WITHOUT an upfront address: run it as a
    service next to lnd.

    Examples:

      l2custody node guard west

      l2custody node guard west --min-size 1000000 --deny-peer 02ab...ef --no-private
    """
    import signal
    import threading

    from l2custody import api

    policy = api.guard_policy(
        min_size=min_size,
        max_size=max_size,
        allowed_peers=allow_peer or (),
        denied_peers=deny_peer or (),
        allow_private=private,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = api.guard_node(STATE.config, node, policy, stop, log=_log)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not STATE.json:
        typer.echo(
            f"guard for {summary.node} stopped after {summary.seconds:.0f}s: "
            f"{summary.accepted} accepted, {summary.rejected} rejected"
        )


def _log(event: Any) -> None:
    if STATE.json:
        typer.echo(json.dumps(event.to_dict(), sort_keys=True))
    else:
        typer.echo(event.describe())
