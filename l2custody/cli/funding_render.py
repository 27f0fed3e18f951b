"""Human output for funding sessions (shared by `channel open/batch` and `session ...`).

Works on the JSON-ready dict of a ``SessionView`` (``view.to_dict()``), so the
human form and ``--json`` show the same facts. No library imports.
"""

from __future__ import annotations

from typing import Any

from l2custody.cli.render import table


def _short(text: str | None, head: int = 12, tail: int = 6) -> str:
    if not text:
        return "-"
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def _upfront(leg: dict[str, Any]) -> str:
    if leg["upfront_shutdown"] is False:
        return "NONE (allowed)"
    if leg["close_address_ok"] is True:
        return "committed, checked"
    if leg["close_address_ok"] is False:
        return "VIOLATION"
    return "committed" if leg["upfront_shutdown"] else "-"


NEXT = {
    "secured": "sign it: l2custody session sign {id} --signer NAME  ({have} of {need} signatures)",
    "negotiating": "check it: l2custody session status {id}  (or abort: l2custody session abort {id})",
    "broadcasting": "outcome unknown: l2custody session status {id}; rebroadcasting is safe: "
    "l2custody session broadcast {id}",
    "broadcast": "wait for a confirmation: l2custody session status {id} --wait",
    "confirmed": "follow the channels: l2custody session status {id} --wait",
}


def session_text(v: dict[str, Any]) -> str:
    """A session for people: state, deadline, signatures, one row per channel, what to do next."""
    lines = [f"Session {v['id']}: {v['state']}"]
    if v["txid"]:
        lines.append(f"Funding transaction {v['txid']}")
    if v["state"] in ("negotiating", "secured", "broadcasting"):
        lines.append(
            f"Negotiated at height {v['start_height']}; now {v['tip_height']}; {v['blocks_left']} block(s) left "
            f"before the broadcast deadline (peers forget at {v['deadline_height']}, margin {v['deadline_margin']})"
        )
    lines.append(
        f"Signatures: {v['signatures']} of {v['threshold']}"
        + (f"; confirmations: {v['confirmations']}" if v["confirmations"] else "")
    )
    rows = []
    for i, leg in enumerate(v["legs"]):
        r = leg["request"]
        rows.append(
            [
                i,
                r["node"],
                r["peer_pubkey"][:16] + "…",
                r["amount_sat"],
                "private" if r["private"] else "public",
                leg["state"],
                _short(leg["channel_point"], 10, 4),
                _short(leg["close_address"], 14, 6),
                _upfront(leg),
            ]
        )
    lines.append("")
    lines.append(
        table(
            ["#", "node", "peer", "amount", "kind", "state", "channel point", "close address", "upfront shutdown"], rows
        )
    )
    for note in v.get("notes", []):
        lines.append(f"note: {note}")
    step = NEXT.get(v["state"])
    if step and not (v["state"] == "confirmed" and all(leg["state"] == "open" for leg in v["legs"])):
        lines.append("")
        lines.append("Next: " + step.format(id=v["id"], have=v["signatures"], need=v["threshold"]))
    return "\n".join(lines)


def sessions_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["session", "state", "channels", "amount", "nodes", "txid", "problem"],
        [
            [
                s["id"],
                s["state"],
                len(s["legs"]),
                sum(leg["request"]["amount_sat"] for leg in s["legs"]),
                ", ".join(sorted({leg["request"]["node"] for leg in s["legs"]})),
                _short(s["txid"], 10, 4),
                (s["error"] or "")[:60],
            ]
            for s in rows
        ],
        empty="No funding sessions. Open a channel with `l2custody channel open NODE PEER AMOUNT`.",
    )
