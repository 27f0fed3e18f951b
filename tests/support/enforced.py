"""Opt-in: run the lnd integration suites with caveat macaroons under `node enforce`.

With ``L2C_ENFORCE=1`` the shared set-ups register each lnd node with a
macaroon from `node macaroon` (caveat ``lnd-custom l2custody tests``) and
start `node enforce` (api.enforce_node, registered with admin.macaroon) for
that config, so every l2custody call of the suite passes the enforcer.
The harness itself keeps using admin.macaroon (the break-glass key: only
audited). Without the variable, nodes are registered with admin.macaroon.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from regtest import wait_for
from regtest.lnd import LndNode

ENFORCE = os.environ.get("L2C_ENFORCE") == "1"
#: grpc host -> (stop event, events, thread): one enforcer per lnd (lnd allows one per caveat)
RUNNING: dict[str, tuple[threading.Event, list[Any], threading.Thread]] = {}


def macaroon_for(node: LndNode, directory: Path) -> Path:
    """The macaroon to register ``node`` with: admin.macaroon, or a caveat one under L2C_ENFORCE."""
    if not ENFORCE:
        return node.admin_macaroon
    from l2custody.backends.lnd.backend import LndBackend
    from l2custody.custody.enforce.macaroons import DEFAULT_PERMISSIONS

    out = directory / f"{node.name}-enforced.macaroon"
    if not out.exists():
        admin = LndBackend.from_paths(node.name, node.grpc_host, node.tls_cert, node.admin_macaroon)
        out.write_bytes(admin.rpc_middleware().bake_macaroon(DEFAULT_PERMISSIONS, ("l2custody", "tests")))
        admin.close()
    return out


def start_enforcer(config: Path, name: str, node: LndNode) -> None:
    """Under L2C_ENFORCE, `node enforce NAME` for ``config`` until the process ends."""
    if not ENFORCE or node.grpc_host in RUNNING:
        return
    from l2custody import api

    stop, events = threading.Event(), []

    def run() -> None:
        try:
            api.enforce_node(config, name, stop, macaroon=node.admin_macaroon, log=events.append)
        except Exception as exc:  # the module's network was torn down under it (its files deleted)
            events.append(exc)

    thread = threading.Thread(target=run, name=f"enforce-{name}", daemon=True)
    thread.start()
    RUNNING[node.grpc_host] = (stop, events, thread)
    wait_for(lambda: sum(getattr(e, "kind", "") == "registered" for e in events) >= 2, 60, what=f"node enforce {name}")
