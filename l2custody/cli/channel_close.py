"""``l2custody channel close | close-status``: closing channels into the multisig and verifying it.

Registered on the shared ``channel`` sub-app (cli/channel.py). Thin: each
command calls one function of ``l2custody.api`` and renders the result.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from l2custody.cli.channel import ChanArg, NodeOpt, channel_app
from l2custody.cli.main import STATE, emit
from l2custody.cli.params import number


@channel_app.command("close")
def close(
    chan: ChanArg,
    node: NodeOpt = None,
    fee_rate: Annotated[
        Optional[float],
        typer.Option("--fee-rate", help="Closing fee rate in sat/vB (default: the node's estimate).", parser=number),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Force close without the peer (asks you to type the channel point).")
    ] = False,
    yes_force: Annotated[
        bool, typer.Option("--yes-force", help="Force close without the typed confirmation (scripts).")
    ] = False,
    allow_foreign: Annotated[
        bool,
        typer.Option(
            "--allow-foreign-close-address",
            help="Close cooperatively even though the committed close address is not the multisig.",
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the close is confirmed and verified on chain.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up waiting after this many seconds.", parser=number)
    ] = 3600.0,
) -> None:
    """Close a channel into the multisig.

    Cooperative by default: the close pays the channel's upfront shutdown
    address when it is ours (refused when it is not), else a fresh multisig
    address. A force close sends our balance to the NODE's wallet after the
    CSV delay; sweep it with `l2custody sweep NODE` afterwards.
    Follow a close with `l2custody channel close-status CHAN` (or --wait).

    Examples:

      l2custody channel close 3f1c...a9:0 --fee-rate 5 --wait

      l2custody channel close 512x1x0 --force
    """
    from l2custody import api

    force = force or yes_force

    def confirm(plan: Any) -> None:
        if not plan.force or yes_force:
            return
        for line in plan.explanation:
            typer.echo(line, err=True)
        typed = typer.prompt(f"Type the channel point {plan.view.channel_point} to force close it", err=True)
        if typed.strip() != plan.view.channel_point:
            from l2custody.errors import UsageError

            raise UsageError(
                f"you typed {typed.strip()!r}, not the channel point {plan.view.channel_point}; nothing was closed"
            )

    report = api.close_channel(
        STATE.config,
        chan,
        node=node,
        force=force,
        fee_rate=fee_rate,
        allow_foreign=allow_foreign,
        confirm=confirm,
        wait=wait,
        timeout=timeout,
        progress=_progress,
    ).to_dict()
    rec = report["record"]
    where = {
        "upfront": f"the multisig (committed upfront address {rec['expected_address']})",
        "delivery": f"a fresh multisig address {rec['expected_address']}",
        "foreign-upfront": f"the FOREIGN address {rec['expected_address']}",
        "node-wallet": f"node {rec['node']!r}'s own wallet after the CSV delay",
    }[rec["address_source"]]
    lines = [
        f"{'Force' if report['force'] else 'Cooperative'} close of {rec['channel_point']} started: "
        f"closing tx {report['closing_txid']}",
        f"Pays to: {where}",
    ]
    status = report["status"]
    if status:
        lines.append(f"Status: {status['message']}")
    else:
        lines.append(
            f"Next: after a confirmation, `l2custody channel close-status {rec['channel_point']}` "
            "verifies it on chain" + (f"; then `l2custody sweep {rec['node']}`" if report["force"] else "")
        )
    emit(report, "\n".join(lines))
    _exit_on_violation(status)


@channel_app.command("close-status")
def close_status(
    chan: ChanArg,
    node: NodeOpt = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the close is settled.")] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up waiting after this many seconds.", parser=number)
    ] = 3600.0,
) -> None:
    """Follow a close and verify on chain that it paid the multisig.

    The closing transaction must pay the multisig and the wallet must hold
    the output (it is synced first). Exits 2 and records a custody violation
    when it does not.

    Examples:

      l2custody channel close-status 3f1c...a9:0

      l2custody channel close-status 512x1x0 --wait --timeout 7200
    """
    from l2custody import api

    status = api.close_status(
        STATE.config, chan, node=node, wait=wait, timeout=timeout, progress=_progress if wait else None
    ).to_dict()
    lines = [f"Close of {status['channel_point']} ({status['kind']}): {status['state']}", status["message"]]
    if status["next_step"]:
        lines.append(f"Next: {status['next_step']}")
    emit(status, "\n".join(lines))
    _exit_on_violation(status)


def _progress(status: Any) -> None:
    typer.echo(f"… {status.message}", err=True)


def _exit_on_violation(status: dict[str, Any] | None) -> None:
    if status and status["state"] == "violation":
        from l2custody.errors import CustodyViolation

        raise CustodyViolation(status["message"])
