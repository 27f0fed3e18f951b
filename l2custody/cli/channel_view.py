"""``l2custody channel list | show``: the channels of the registered nodes, with where each one closes.

Registered on the shared ``channel`` sub-app (cli/channel.py). Thin: each
command calls one function of ``l2custody.api`` and renders the result.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from l2custody.cli.channel import ChanArg, NodeOpt, channel_app
from l2custody.cli.main import STATE, emit
from l2custody.cli.render import table

LIVE_STATES = ("pending_open", "open")


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


def _generation_column(v: dict[str, Any]) -> str:
    """The wallet generation a cooperative close pays; "old" when it is not the newest."""
    if v["close_generation"] is None:
        return "-"
    return str(v["close_generation"]) + ("" if v["close_generation_current"] else " (old)")


def _funding_column(v: dict[str, Any]) -> str:
    return f"session {v['session_id']}" if v["funding"] == "session" else "foreign"


@channel_app.command("list")
def list_(
    node: NodeOpt = None,
    closed: Annotated[bool, typer.Option("--closed/--no-closed", help="Include closed channels.")] = True,
) -> None:
    """Channels of the registered nodes: balances, close address (ours?), generation, funding source.

    The close address column says where a cooperative close pays and whether
    that is the multisig; gen is the wallet generation of that address
    ("old" when `wallet rotate` has made a newer one since); funding says
    whether one of our funding sessions paid for the channel.

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
            _generation_column(v),
            _funding_column(v),
        ]
        for v in views
    ]
    human = table(
        ["node", "channel", "state", "capacity", "local", "remote", "close address", "gen", "funding"],
        rows,
        empty="No channels. Open one with `l2custody channel open NODE PEER AMOUNT`.",
    )
    foreign = sum(1 for v in views if v["state"] == "open" and v["close_address_ours"] is False)
    if foreign:
        human += (
            f"\n\nwarning: {foreign} open channel(s) commit their cooperative close to an address that is "
            "NOT the multisig; see `l2custody channel show CHAN`."
        )
    old = sum(1 for v in views if v["state"] in LIVE_STATES and v["close_generation_current"] is False)
    if old:
        human += (
            f"\n\nnote: {old} channel(s) commit their cooperative close to an older wallet generation (gen: old); "
            "a close pays that generation's keys. `l2custody report` shows each generation's exposure, and "
            "`l2custody wallet migrate` moves what lands there to the newest generation."
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
        f"  generation:     {_generation_column(detail)}",
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
