"""Reading what the operator asks for: ``PEER[@HOST:PORT]`` and batch files.

A batch file lists the channels of one funding transaction, as CSV (a header
row naming at least ``node,peer,amount``; ``private`` and ``push`` are
optional) or JSON (a list of objects with the same keys). ``peer`` may carry
an address (``PUBKEY@HOST:PORT``) to connect to first; amounts take the same
forms as on the command line (``250000``, ``250000sat``, ``0.0025btc``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from l2custody.amounts import parse_sats
from l2custody.custody.funding.session import ChannelRequest
from l2custody.errors import L2CustodyError, UsageError
from l2custody.netaddr import host_port
from l2custody.text_files import read_text

_TRUE = {"1", "true", "yes", "y", "private"}
_FALSE = {"", "0", "false", "no", "n", "public"}


def parse_peer(text: str) -> tuple[str, str | None]:
    """``PUBKEY`` or ``PUBKEY@HOST:PORT`` -> (pubkey, host or None); UsageError otherwise."""
    pubkey, sep, host = text.strip().partition("@")
    pubkey = pubkey.lower()
    ok = len(pubkey) == 66 and pubkey[:2] in ("02", "03")
    if ok:
        try:
            bytes.fromhex(pubkey)
        except ValueError:
            ok = False
    if not ok:
        raise UsageError(
            f"peer {text!r} is not a node public key: expected 66 hex characters starting with 02 or 03, "
            "optionally followed by @HOST:PORT (e.g. 02ab…ef@203.0.113.5:9735)"
        )
    if sep:
        try:
            host_port(host, "peer address")
        except UsageError:
            raise UsageError(f"peer address {host!r} must be HOST:PORT (e.g. 203.0.113.5:9735)") from None
    return pubkey, (host or None)


def channel_request(
    node: str, peer: str, amount: str | int, *, private: bool = False, push: str | int = 0
) -> ChannelRequest:
    """One ChannelRequest from what a user typed."""
    if not node:
        raise UsageError("a channel needs a node name (see `l2custody node list`)")
    pubkey, host = parse_peer(peer)
    return ChannelRequest(
        node=node,
        peer_pubkey=pubkey,
        amount_sat=parse_sats(amount),
        peer_host=host,
        private=private,
        push_sat=parse_sats(push or 0),
    )


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{where}: private must be true/false (or yes/no), got {value!r}")


def _rows_from_text(text: str, name: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("channels")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UsageError(f"{name}: JSON must be a list of {{node, peer, amount, private}} objects")
        return data
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)), skipinitialspace=True)
    missing = {"node", "peer", "amount"} - {(f or "").strip().lower() for f in reader.fieldnames or []}
    if missing:
        raise UsageError(
            f"{name}: the CSV header must name node,peer,amount (and optionally private,push); "
            f"missing: {', '.join(sorted(missing))}"
        )
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def read_batch(path: Path | str) -> list[ChannelRequest]:
    """The channels a batch file asks for; UsageError naming the row of any bad value."""
    path = Path(path)
    text = read_text(path, "the batch file", UsageError)
    rows = _rows_from_text(text, str(path))
    if not rows:
        raise UsageError(f"{path}: no channels listed")
    out = []
    for n, row in enumerate(rows, start=1):
        where = f"{path} row {n}"
        try:
            out.append(
                channel_request(
                    str(row.get("node", "")).strip(),
                    str(row.get("peer", "")),
                    row.get("amount", ""),
                    private=_flag(row.get("private"), where),
                    push=row.get("push") or 0,
                )
            )
        except L2CustodyError as exc:
            raise type(exc)(f"{where}: {exc.message}") from None
    return out
