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
from pathlib import Path
from typing import Any

from l2custody import strict_json
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


_COLUMNS = ("node", "peer", "amount", "private", "push")
_REQUIRED = {"node", "peer", "amount"}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if value is None or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    raise UsageError(f"private must be true/false (or yes/no), got {value!r}")


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{key} must be text, got {type(value).__name__} {value!r:.40}")
    return value.strip()


def _amount(row: dict[str, Any], key: str) -> str | int:
    """An amount as written: text (``0.01btc``) or a whole number of satoshis. A JSON
    ``1.5`` (bitcoin? satoshis?), ``null`` or ``true`` is refused, never guessed."""
    value = row.get(key)
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if value is None:
        raise UsageError(f"{key} is missing")
    raise UsageError(
        f'{key} must be text like "0.01btc" or a whole number of satoshis, got {type(value).__name__} {value!r:.40}'
    )


def _check_columns(names: list[str], name: str) -> None:
    unknown = [n for n in names if n not in _COLUMNS]
    if unknown:
        raise UsageError(
            f"{name}: unknown column {unknown[0]!r}; a batch names node, peer, amount and optionally private, push"
        )
    missing = _REQUIRED - set(names)
    if missing:
        raise UsageError(
            f"{name}: the batch must name node, peer, amount (and optionally private, push); "
            f"missing: {', '.join(sorted(missing))}"
        )


def _rows_from_text(text: str, name: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        data = strict_json.loads(text, name, UsageError)
        if isinstance(data, dict):
            data = data.get("channels")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UsageError(f"{name}: JSON must be a list of {{node, peer, amount, private}} objects")
        for n, row in enumerate(data, start=1):
            _check_columns(list(row), f"{name} row {n}")
        return data
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        _check_columns(header, name)
        rows = []
        for n, values in enumerate(reader, start=1):
            if len(values) > len(header):
                raise UsageError(
                    f"{name} row {n}: {len(values)} values for {len(header)} columns ({', '.join(header)}); "
                    "a comma inside an amount? write 1000000 or 0.01btc"
                )
            rows.append({k: v.strip() for k, v in zip(header, values)})
    except csv.Error as exc:
        raise UsageError(f"{name}: not a CSV batch ({exc})") from None
    return rows


def read_batch(path: Path | str) -> list[ChannelRequest]:
    """The channels a batch file asks for; UsageError naming the row of any bad value."""
    path = Path(path)
    text = read_text(path, "the batch file", UsageError)
    rows = _rows_from_text(text, str(path))
    if not rows:
        raise UsageError(f"{path}: no channels listed")
    out = []
    for n, row in enumerate(rows, start=1):
        try:
            out.append(
                channel_request(
                    _text(row, "node"),
                    _text(row, "peer"),
                    _amount(row, "amount"),
                    private=_flag(row.get("private")),
                    push=_amount(row, "push") if row.get("push") not in (None, "") else 0,
                )
            )
        except L2CustodyError as exc:  # the one place that says where
            raise type(exc)(f"{path} row {n}: {exc.message}") from None
    return out
