"""``l2custody report``: where every satoshi is, and whether custody holds (one screen)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from l2custody.cli.main import STATE, app, emit
from l2custody.cli.render import table


@app.command("report")
def report(
    node: Annotated[
        Optional[str], typer.Option("--node", help="Only this node (default: every registered node).")
    ] = None,
    channels: Annotated[
        bool, typer.Option("--channels", help="Also list every open, pending and closing channel.")
    ] = False,
    sync: Annotated[
        bool, typer.Option("--sync/--no-sync", help="Bring the multisig wallet up to the chain tip first.")
    ] = True,
) -> None:
    """Balances by place and the custody checks, per wallet and node.

    Shows the multisig balance; for each node its channels by state with
    their local balance, pending opens (with the funding deadline's blocks
    left), pending closes and force-close limbo with maturity, and the
    node's own (hot) wallet; after a `wallet rotate`, each wallet generation
    with its quorum, the keys that can still sign, its coins and the live
    channels that close to it; for a wallet with recovery paths, each coin
    with the block at which its first recovery path opens. Then the custody
    checks: every channel closes to a multisig address, every channel we
    opened was funded by one of our sessions, no node wallet holds more than
    the sweep threshold, no funding session is near its deadline, the wallet
    was rehearsed (`wallet rehearse`) and every signer signed a rehearsal
    lately, no older generation holds coins or channels (critical when its
    quorum can no longer sign), no coin's
    recovery path opens within [recovery] refresh_margin_blocks (`wallet
    refresh`; critical once a path is open: the recovery keys can spend it).

    Exit status: 0 when every check passes, 1 when one fails (each failure is
    listed with what to do), 2 on an error. Suitable for cron.

    Examples:

      l2custody report

      l2custody report --node west --channels

      l2custody --json report | jq '.findings[].message'
    """
    from l2custody import api

    snapshot = api.report(STATE.config, node, sync=sync)
    out = snapshot.to_dict(channels=True)
    emit(out, render_report(out, channels=channels))
    if not snapshot.ok:
        raise typer.Exit(1)


def _sat(value: int) -> str:
    return f"{value:,} sat"


def render_report(out: dict[str, Any], *, channels: bool = False) -> str:
    """The one-screen human form of ``Snapshot.to_dict()``."""
    b = out["balances"]
    tip = out["tip_height"]
    lines = [f"Wallet {out['wallet']} ({out['network']}) at block {tip if tip is not None else '?'}", ""]
    lines.append(
        table(
            ["place", "balance"],
            [
                ["multisig", b["multisig"]],
                ["channels (local, open)", b["channels_local"]],
                ["channels (pending open)", b["pending_open"]],
                ["closing / force-close limbo", b["limbo"]],
                ["node hot wallets", b["hot_wallet"]],
            ],
        )
    )
    note = _multisig_note(out)
    if note:
        lines.append(note)
    for n in out["nodes"]:
        lines += ["", _node_title(n)]
        rows = [[state, c["count"], c["local_sat"]] for state, c in n["channels"].items()]
        lines.append(table(["state", "channels", "local balance"], rows, empty="  no channels"))
        hot = n["hot_wallet"]
        lines.append(
            f"hot wallet: {_sat(hot['confirmed_sat'])} confirmed, {_sat(hot['unconfirmed_sat'])} "
            f"unconfirmed; keeps {_sat(hot['keep_sat'])} (anchor reserve {_sat(hot['reserve_sat'])}); "
            f"sweepable {_sat(hot['sweepable_sat'])}"
        )
        for p in n["pending_opens"]:
            left = (
                f", {p['blocks_left']} blocks left before the funding deadline" if p["blocks_left"] is not None else ""
            )
            src = f"session {p['session_id']}" if p["session_id"] else p["funding"]
            lines.append(f"pending open {p['channel_point']}: {_sat(p['capacity_sat'])} ({src}{left})")
        for p in n["pending_closes"]:
            when = ""
            if p["maturity_height"]:
                when = f", matures at block {p['maturity_height']}"
                if p["blocks_til_maturity"] is not None:
                    when += f" (in {p['blocks_til_maturity']} blocks)"
            lines.append(
                f"{p['state'].replace('_', ' ')} {p['channel_point']}: {_sat(p['limbo_sat'])} in limbo{when}"
                + (f", closing tx {p['closing_txid']}" if p["closing_txid"] else "")
            )
    if out["sessions"]:
        lines += ["", "Funding sessions not settled:"]
        lines.append(
            table(
                ["session", "state", "amount", "blocks left", "deadline"],
                [
                    [s["id"], s["state"], s["amount_sat"], s["blocks_left"], s["deadline_height"]]
                    for s in out["sessions"]
                ],
            )
        )
    if out.get("rehearsal"):
        lines += ["", _rehearsal(out["rehearsal"])]
    if len(out["generations"]) > 1:
        lines += ["", _generations(out["generations"])]
    if out.get("recovery"):
        lines += ["", _recovery(out["recovery"])]
    if channels:
        lines += ["", _channels(out["channels"])]
    lines += ["", _checks(out)]
    return "\n".join(lines)


def _when(ts: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "never"


def _rehearsal(r: dict[str, Any]) -> str:
    lines = [f"Rehearsals of {r['wallet']} generation {r['generation']}:"]
    if r["confirmed"]:
        c = r["confirmed"]
        lines.append(f"  last confirmed: {c['id']} on {_when(c['at'])} (signers {', '.join(c['signers'])})")
    else:
        lines.append("  never rehearsed (`l2custody wallet rehearse`)")
    if r["pending"]:
        p = r["pending"]
        lines.append(f"  pending: {p['id']} {p['state']} (signers {', '.join(p['signers'])}; run it again to continue)")
    if r["failed"]:
        lines.append(f"  last attempt failed: {r['failed']['id']}: {r['failed']['error']}")
    rows = [[s["name"], s["kind"], s["fingerprint"], _when(s["last_signed"])] for s in r["signers"]]
    rows += [["(none)", "-", fp, "never"] for fp in r["unregistered_keys"]]
    lines.append(table(["signer", "kind", "key", "last signed a rehearsal"], rows))
    return "\n".join(lines)


def _multisig_note(out: dict[str, Any]) -> str:
    """What the multisig line leaves out: unconfirmed, reserved, and older generations' coins."""
    m, extra = out["multisig"], []
    if m["unconfirmed_sat"]:
        extra.append(f"{_sat(m['unconfirmed_sat'])} unconfirmed")
    if m["reserved_sat"]:
        extra.append(f"{_sat(m['reserved_sat'])} reserved by sessions in flight (funding, send, refresh, migration)")
    older = [g for g in out["generations"] if not g["current"] and g["coins"]]
    if older:
        extra.append(
            f"{_sat(sum(g['balance_sat'] for g in older))} more in older generations (not counted above; see below)"
        )
    return "multisig: " + ", ".join(extra) if extra else ""


def _node_title(n: dict[str, Any]) -> str:
    title = f"Node {n['name']} ({n['kind']})"
    if not n["reachable"]:
        title += f": UNREACHABLE ({n['error']})"
    return title


def _generations(rows: list[dict[str, Any]]) -> str:
    """Per wallet generation: quorum, who can sign, coins, and the live channels that close to it."""

    def status(g: dict[str, Any]) -> str:
        if g["current"]:
            return "current"
        if not g["can_sign"] and g["exposed"]:
            return "CANNOT SIGN"
        return "old, exposed" if g["exposed"] else "old, empty"

    def keys(g: dict[str, Any]) -> str:
        return " ".join(
            (k["signer"] or k["fingerprint"]) + ("" if k["usable"] else f" (removed: {k['removed_reason']})")
            for k in g["keys"]
        )

    def nodes(g: dict[str, Any]) -> str:
        return ", ".join(f"{n} {v['channels']}" for n, v in g["nodes"].items()) or "-"

    lines = ["Wallet generations (a channel closes to the generation that was current when it opened):"]
    lines.append(
        table(
            ["gen", "status", "quorum", "can sign", "coins", "balance", "channels", "channel local", "nodes", "keys"],
            [
                [
                    g["generation"],
                    status(g),
                    f"{g['threshold']}-of-{len(g['keys'])}",
                    g["can_sign"],
                    g["coins"],
                    g["balance_sat"],
                    g["channels"],
                    g["channel_local_sat"],
                    nodes(g),
                    keys(g),
                ]
                for g in rows
            ],
        )
    )
    for g in rows:
        for m in g["migrations"]:
            lines.append(
                f"migration from generation {g['generation']}: session {m['session']} ({m['state']}), "
                f"{_sat(m['amount_sat'])}; signers: {g['threshold']} of {', '.join(g['signers'])}"
            )
    return "\n".join(lines)


def _recovery(r: dict[str, Any]) -> str:
    """Each coin of a recovery wallet and when its first recovery path opens."""

    def who(keys: list[str], threshold: int) -> str:
        return f"{keys[0]} alone" if len(keys) == 1 else f"{threshold} of {', '.join(keys)}"

    def status(c: dict[str, Any]) -> str:
        text = {"open": "OPEN NOW", "due": "DUE A REFRESH"}.get(c["status"], c["status"])
        if c["refresh_session"]:
            state = next(s["state"] for s in r["refresh_sessions"] if s["session"] == c["refresh_session"])
            return f"{text} (refresh session {c['refresh_session']}, {state})"
        if c["reserved_by"]:
            return f"{text} (reserved by {c['reserved_by']})"
        return text

    paths = "; ".join(f"{who(p['keys'], p['threshold'])} after {p['delay']:,} blocks" for p in r["paths"])
    primary = r["primary"]
    lines = [
        f"Recovery paths of {r['wallet']}: {paths}. A coin is due a refresh {r['margin_blocks']:,} blocks before "
        f"its path opens (signed by {primary['threshold']} of {', '.join(primary['signers'])}):"
    ]
    lines.append(
        table(
            ["coin", "value", "confirmed", "opens at", "blocks left", "status"],
            [
                [c["outpoint"], c["value"], c["height"], c["opens_at"], c["blocks_left"], status(c)]
                for c in sorted(r["coins"], key=lambda c: (c["opens_at"] is None, c["opens_at"] or 0, c["outpoint"]))
            ],
            empty="  no coins",
        )
    )
    return "\n".join(lines)


def _channels(rows: list[dict[str, Any]]) -> str:
    live = [c for c in rows if c["state"] != "closed"]
    return table(
        ["node", "channel", "state", "capacity", "local", "close to", "funding"],
        [
            [
                c["node"],
                c["channel_point"],
                c["state"],
                c["capacity_sat"],
                c["local_balance_sat"],
                _close(c),
                c["session_id"] or c["funding"],
            ]
            for c in live
        ],
        empty="No open, pending or closing channels.",
    )


def _close(c: dict[str, Any]) -> str:
    if c["close_committed"] is False:
        return "NONE COMMITTED"
    if c["close_ours"] is True:
        return "multisig"
    if c["close_ours"] is False:
        return f"FOREIGN {c['close_address']}"
    return "not reported"


def _checks(out: dict[str, Any]) -> str:
    lines = ["Custody checks:"]
    for check, failures in out["checks"].items():
        lines.append(f"  {'FAIL' if failures else 'ok  '}  {check}" + (f" ({failures})" if failures else ""))
    for f in out["findings"]:
        lines.append(f"  - {f['message']}")
    lines.append("All checks passed." if out["ok"] else f"{len(out['findings'])} problem(s): exit status 1.")
    return "\n".join(lines)
