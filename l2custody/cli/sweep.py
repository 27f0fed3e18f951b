"""``l2custody sweep NODE`` and ``l2custody sweep-status``: bring the node wallet's coins
(force-close proceeds land there) into the multisig, keeping the anchor reserve."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.params import number
from l2custody.cli.render import table


@app.command("sweep")
def sweep(
    node: Annotated[str, typer.Argument(help="The node whose wallet to sweep (see `l2custody node list`).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would move; send nothing.")] = False,
    keep: Annotated[
        Optional[str],
        typer.Option(
            "--keep",
            help="Leave at least this much in the node wallet, e.g. 50000 or 0.0005btc "
            "(the node's anchor reserve is always kept).",
        ),
    ] = None,
    fee_rate: Annotated[
        Optional[float],
        typer.Option("--fee-rate", help="Fee rate in sat/vB (default: the node's estimate).", parser=number),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the sweep confirms and the wallet holds it.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up waiting after this many seconds.", parser=number)
    ] = 3600.0,
) -> None:
    """Move the node's confirmed on-chain funds to a fresh multisig address.

    Force-close proceeds land in the node's own (hot) wallet; this brings
    them home. The node keeps max(--keep, its anchor reserve) so it can still
    fee-bump its anchor channels. The node builds, signs and publishes the
    sweep; the wallet verifies it after confirmation (`l2custody sweep-status`).

    Examples:

      l2custody sweep west --dry-run

      l2custody sweep west --keep 100000 --fee-rate 3 --wait
    """
    from l2custody import api

    keep_sat = api.parse_sats(keep) if keep is not None else None
    report = api.sweep(
        STATE.config,
        node,
        keep_sat=keep_sat,
        fee_rate=fee_rate,
        dry_run=dry_run,
        wait=wait,
        timeout=timeout,
        progress=_progress,
    )
    out = report.to_dict()
    emit(out, _preview(out) if dry_run else _done(out))


def _locked_lines(out: dict[str, Any]) -> list[str]:
    return [
        f"  still time-locked: {t['limbo_sat']:,} sat of {t['channel_point']}"
        + (f", matures at height {t['maturity_height']}" if t["maturity_height"] else "")
        for t in out.get("time_locked", [])
    ]


def _preview(out: dict[str, Any]) -> str:
    lines = [
        f"Dry run for node {out['node']} (nothing sent):",
        f"  node wallet: {out['node_confirmed_sat']:,} sat confirmed, "
        f"{out['node_unconfirmed_sat']:,} sat unconfirmed (not swept until confirmed)",
    ]
    if out["anchor_reserve_sat"] is not None:
        lines.append(f"  anchor reserve the node needs: {out['anchor_reserve_sat']:,} sat")
    if out["reason"]:
        lines.append(f"  nothing to sweep: {out['reason']}")
    else:
        lines += [
            f"  would send {out['amount_sat']:,} sat to {out['address']} (next multisig address)",
            f"  fee {out['fee_sat']:,} sat; {out['kept_sat']:,} sat stay in the node",
            f"  inputs: {len(out['inputs'])}",
        ]
    return "\n".join(lines + _locked_lines(out))


def _done(out: dict[str, Any]) -> str:
    lines = [
        f"Sweep #{out['id']} of node {out['node']}: {out['amount_sat']:,} sat to {out['address']}",
        f"  txid {out['txid']}, fee {out['fee_sat']:,} sat, {out['kept_sat']:,} sat kept in the node",
    ]
    status = out["status"]
    if status:
        lines.append(f"  status: {status['message']}")
    else:
        lines.append(f"Next: after a confirmation, `l2custody sweep-status {out['node']}` checks the wallet holds it")
    return "\n".join(lines)


def _progress(status: Any) -> None:
    typer.echo(f"… {status.message}", err=True)


@app.command("sweep-status")
def sweep_status(
    node: Annotated[Optional[str], typer.Argument(help="Only this node's sweeps.")] = None,
) -> None:
    """The sweeps made so far, unfinished ones checked against the wallet.

    The wallet is synced first; a sweep is verified once the wallet holds
    its output with a confirmation.

    Examples:

      l2custody sweep-status

      l2custody sweep-status west --json
    """
    from l2custody import api

    statuses = [s.to_dict() for s in api.sweep_statuses(STATE.config, node)]
    rows = [[s["id"], s["node"], s["state"], s["amount_sat"], s["txid"] or "-", s["message"]] for s in statuses]
    emit(
        statuses,
        table(
            ["#", "node", "state", "amount", "txid", "status"],
            rows,
            empty="No sweeps yet: l2custody sweep NODE --dry-run",
        ),
    )
