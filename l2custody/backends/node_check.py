"""``node check``: everything worth knowing before l2custody relies on a node.

Reachable, synced, on the wallet's network, recent enough, credentials that
allow what l2custody does, and enough in the node wallet for the anchor
reserve. Each problem is an item saying what to do; nothing raises for the
node's answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from l2custody.backends.base import NodeBackend
from l2custody.backends.node_registry import NodeRecord, backend_for
from l2custody.errors import L2CustodyError, NotSupported
from l2custody.networks import normalize_network

MIN_LND_VERSION = (0, 16)  # skip_finalize, RequiredReserve, CheckMacaroonPermissions


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class NodeCheck:
    node: str
    kind: str
    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)


def _version_tuple(version: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)", version)  # lnd "0.20.1-beta", CLN "v25.12.1"
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_node(record: NodeRecord, network: str, backend: NodeBackend | None = None) -> NodeCheck:
    """Everything ``node check`` reports: reachable, synced, network, version,
    permissions, anchor reserve. Never raises for the node's answers: each
    problem is an item with ``ok=False`` and what to do."""
    items: list[CheckItem] = []

    def add(name: str, ok: bool, detail: str) -> None:
        items.append(CheckItem(name, ok, detail))

    try:
        backend = backend or backend_for(record)
    except NotSupported as exc:
        add("supported", False, exc.message)
        return NodeCheck(record.name, record.kind, tuple(items))
    try:
        info = backend.info()
    except L2CustodyError as exc:
        add("reachable", False, exc.message)
        return NodeCheck(record.name, record.kind, tuple(items))
    add("reachable", True, f"{info.alias or '(no alias)'} {info.pubkey} at {record.host or record.rpc_file}")
    add(
        "synced",
        info.synced_to_chain,
        f"block {info.block_height}"
        if info.synced_to_chain
        else f"not synced to chain (at block {info.block_height}); wait for it",
    )
    want = normalize_network(network)
    add(
        "network",
        info.network == want,
        info.network
        if info.network == want
        else f"node is on {info.network}, the wallet on {want}: wrong node or wrong config",
    )
    from l2custody.backends.cln.convert import MIN_CLN_VERSION

    minimum = {"lnd": MIN_LND_VERSION, "cln": MIN_CLN_VERSION}.get(record.kind, (0, 0))
    too_old = _version_tuple(info.version) < minimum
    product = "Core Lightning" if record.kind == "cln" else record.kind
    add(
        "version",
        not too_old,
        f"{info.version}"
        + (f" is too old: l2custody needs {product} {'.'.join(map(str, minimum))} or newer" if too_old else ""),
    )
    try:
        problems = backend.access_problems()
        fine = (
            "the macaroon allows everything l2custody does"
            if record.kind == "lnd"
            else ("the lightning-rpc socket allows every command")
        )
        add("permissions", not problems, "; ".join(problems) if problems else fine)
    except L2CustodyError as exc:
        add("permissions", False, exc.message)
    try:
        reserve = backend.anchor_reserve(additional_public_channels=1)
        add(
            "anchor reserve",
            reserve.sufficient,
            f"{reserve.available_sat} sat in the node wallet, {reserve.required_sat} sat needed with one more public channel"
            + (
                ""
                if reserve.sufficient
                else f": send {reserve.missing_sat} sat to the node wallet before opening public channels"
            ),
        )
    except NotSupported:
        pass
    except L2CustodyError as exc:
        add("anchor reserve", False, exc.message)
    return NodeCheck(record.name, record.kind, tuple(items))
