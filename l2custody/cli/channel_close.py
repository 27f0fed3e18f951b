"""``l2custody channel list | show | close | close-status``: channels and closing them into the multisig.

Registered on the shared ``channel`` sub-app (cli/channel.py). Thin: each
command calls one function of ``l2custody.api`` and renders the result.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from l2custody.cli.channel import channel_app
from l2custody.cli.main import STATE, emit
from l2custody.cli.render import table

NodeOpt = Annotated[
    Optional[str],
    typer.Option("--node", "-n", help="Only this node (see `l2custody node list`); default: every node."),
]
ChanArg = Annotated[
    str,
    typer.Argument(help="The channel: its channel point FUNDING_TXID:OUTPUT or short id BLOCKxTXxOUTPUT."),
]


def short(text: str | None, head: int = 10, tail: int = 6) -> str:
    """``bcrt1qabcdef…uvwxyz``: long ids shortened for tables (--json has them whole)."""
    if not text:
        return "-"
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def _channel_ref(v: dict[str, Any]) -> str:
    if v["short_channel_id"]:
        return v["short_channel_id"]
    txid, _, vout = v["channel_point"].partition(":")
    return f"{txid[:10]}…:{vout}"


def _close_column(v: dict[str, Any]) -> str:
    if v["close_address"] is None:
        if v["state"] == "open" and v["close_address_from"] == "node":
            return "none (fresh multisig address at close)"
        return "unknown"
    owner = "ours" if v["close_address_ours"] else "FOREIGN"
    return f"{short(v['close_address'], 12, 6)} ({owner})"


def _funding_column(v: dict[str, Any]) -> str:
    return f"session {v['session_id']}" if v["funding"] == "session" else "foreign"


@channel_app.command("list")
def list_(
    node: NodeOpt = None,
    closed: Annotated[bool, typer.Option("--closed/--no-closed", help="Include closed channels.")] = True,
) -> None:
    """Channels of the registered nodes: balances, close address (ours?), funding source.

    The close address column says where a cooperative close pays and whether
    that is the multisig; funding says whether one of our funding sessions
    paid for the channel.

    Examples:

      l2custody channel list

      l2custody channel list --node west --no-closed --json
    """
    from l2custody import api

    views = [v.to_dict() for v in api.list_channels(STATE.config, node, include_closed=closed)]
    rows = [
        [
            v["node"],
            _channel_ref(v),
            v["state"],
            v["capacity_sat"],
            v["local_balance_sat"],
            v["remote_balance_sat"],
            _close_column(v),
            _funding_column(v),
        ]
        for v in views
    ]
    human = table(
        ["node", "channel", "state", "capacity", "local", "remote", "close address", "funding"],
        rows,
        empty="No channels. Open one with `l2custody channel open NODE PEER AMOUNT`.",
    )
    foreign = sum(1 for v in views if v["state"] == "open" and v["close_address_ours"] is False)
    if foreign:
        human += (
            f"\n\nwarning: {foreign} open channel(s) commit their cooperative close to an address that is "
            "NOT the multisig; see `l2custody channel show CHAN`."
        )
    emit(views, human)


@channel_app.command("show")
def show(chan: ChanArg, node: NodeOpt = None) -> None:
    """One channel in full, with our close record and its audit history.

    Examples:

      l2custody channel show 3f1c...a9:0

      l2custody channel show 512x1x0 --json
    """
    from l2custody import api

    detail = api.show_channel(STATE.config, chan, node).to_dict()
    lines = [
        f"Channel {detail['channel_point']} on {detail['node']}",
        f"  short id:       {detail['short_channel_id'] or '-'}",
        f"  peer:           {detail['peer']}",
        f"  state:          {detail['state']}" + (" (active)" if detail["active"] else ""),
        f"  capacity:       {detail['capacity_sat']:,} sat   local {detail['local_balance_sat']:,} / "
        f"remote {detail['remote_balance_sat']:,}",
        f"  close address:  {detail['close_address'] or _close_column(detail)}",
        f"  close to us:    {_ours(detail)}",
        f"  funding:        {_funding_column(detail)}",
    ]
    if detail["closing_txid"]:
        lines.append(f"  closing tx:     {detail['closing_txid']}")
    if detail["limbo_sat"]:
        lines.append(f"  time-locked:    {detail['limbo_sat']:,} sat until height {detail['maturity_height']}")
    if detail["close"]:
        c = detail["close"]
        lines.append(
            f"  our close:      {c['kind']}, {c['state']}"
            + (f" -> {c['expected_address']}" if c["expected_address"] else "")
        )
    if detail["history"]:
        lines.append("  history:")
        lines.extend(f"    {h['action']}" for h in detail["history"])
    emit(detail, "\n".join(lines))


def _ours(v: dict[str, Any]) -> str:
    if v["close_address_ours"] is None:
        return "no address committed yet" if v["state"] == "open" else "unknown"
    return f"yes ({v['close_address_index']})" if v["close_address_ours"] else "NO - a close pays a foreign address"


@channel_app.command("close")
def close(
    chan: ChanArg,
    node: NodeOpt = None,
    fee_rate: Annotated[
        Optional[float], typer.Option("--fee-rate", help="Closing fee rate in sat/vB (default: the node's estimate).")
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
    timeout: Annotated[float, typer.Option(help="With --wait: give up waiting after this many seconds.")] = 3600.0,
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
    timeout: Annotated[float, typer.Option(help="With --wait: give up waiting after this many seconds.")] = 3600.0,
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
