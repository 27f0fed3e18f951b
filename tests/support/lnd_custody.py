"""Shared set-up for the closing, sweeping and guard integration tests.

A 2-of-3 multisig wallet (three software signers) configured against the
harness btcd, the harness lnd nodes registered through `l2custody node add`,
and channels opened with lnd's own wallet (the funding-session layer has its
own tests): optionally with an upfront close address, as the product would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import l2custody.cli.main
from regtest import Network, wait_for
from regtest.lightning import channel_point_str, find_channel
from regtest.lnd import RPC_TIMEOUT, LndNode
from tests.support.cli_runner import (
    Result,
    create_wallet,
    init_on_chain,
    ok,
    runner,
    software_signers,
)
from tests.support.funding import register_lnd


@dataclass
class Setup:
    net: Network
    config: Path
    dir: Path

    def node_name(self, node: LndNode) -> str:
        return node.name


def make_setup(net: Network, directory: Path) -> Setup:
    """init + 3 software signers + a 2-of-3 wallet + lnd[0] registered by its name
    (lnd[1] is the peer: someone else's node)."""
    config = init_on_chain(directory, net.chain)
    create_wallet(config, software_signers(config, directory))
    register_lnd(config, net.lnd[0])
    return Setup(net, config, directory)


def invoke_input(config: Path, *args: str, input: str, json_out: bool = True) -> Result:
    """Run ``l2custody`` with text on stdin (for prompts)."""
    argv = ["--config", str(config)] + (["--json"] if json_out else []) + list(args)
    with runner.isolation(input=input) as (out, err, _mixed):
        try:
            l2custody.cli.main.main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        stdout = out.getvalue().decode()
        # CliRunner echoes the typed answer to stdout (a terminal would echo it itself)
        echoed = input.splitlines()[0] if input else ""
        if echoed and echoed in stdout:
            stdout = stdout.replace(echoed + "\n", "", 1).lstrip(" ")
        return Result(code, stdout, err.getvalue().decode())


def open_channel(net: Network, a: LndNode, b: LndNode, sats: int, *, push_sat: int = 0, close_address: str = "") -> str:
    """a opens a channel to b from its own wallet (with ``close_address`` as upfront
    shutdown script if given), mined and active on both sides. Returns the channel point."""
    from lndgrpc.compiled import lightning_pb2 as ln

    net.connect(a, b)
    point = a.ln.OpenChannelSync(
        ln.OpenChannelRequest(
            node_pubkey=bytes.fromhex(b.pubkey),
            local_funding_amount=sats,
            push_sat=push_sat,
            sat_per_vbyte=2,
            close_address=close_address,
        ),
        timeout=RPC_TIMEOUT,
    )
    cp = channel_point_str(point)
    txid = cp.split(":")[0]
    wait_for(lambda: txid in net.chain.rpc("getrawmempool"), 30, what=f"funding tx {txid} in the mempool")
    net.mine(1)
    wait_for(
        lambda: all((c := find_channel(n, cp)) is not None and c.active for n in (a, b)),
        60,
        what=f"channel {cp} active on {a.name} and {b.name}",
    )
    return cp


def channel_json(setup: Setup, cp: str) -> dict[str, Any]:
    views = ok(setup.config, "channel", "list")
    [view] = [v for v in views if v["channel_point"] == cp and v["node"] == setup.net.lnd[0].name]
    return view


def wallet_address(setup: Setup) -> str:
    return ok(setup.config, "wallet", "address")["address"]


def audit_actions(setup: Setup, subject: str) -> list[tuple[str, dict[str, Any]]]:
    """(action, details) of the audit entries about ``subject``, read straight from the store."""
    import sqlite3

    db = sqlite3.connect(setup.dir / "data" / "l2custody.sqlite")
    try:
        rows = db.execute("SELECT action, details FROM audit WHERE subject = ? ORDER BY id", (subject,)).fetchall()
    finally:
        db.close()
    return [(a, json.loads(d)) for a, d in rows]


def tx_outputs(net: Network, txid: str) -> list[tuple[str | None, int]]:
    """(address, sats) of each output, as btcd decodes the transaction."""
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    out = []
    for vout in tx["vout"]:
        spk = vout["scriptPubKey"]
        addrs = spk.get("addresses") or ([spk["address"]] if spk.get("address") else [None])
        out.append((addrs[0], round(vout["value"] * 100_000_000)))
    return out


def probe(peer: LndNode, node: LndNode, sats: int) -> str | None:
    """``peer`` starts an open to ``node`` that nobody will fund: the refusal's text, or
    None if ``node`` accepted (the negotiation is then cancelled; nothing was funded).
    Whether `node guard` answers ``node``'s ChannelAcceptor cannot be observed directly:
    wait until a probe the policy rejects is refused."""
    import os

    import grpc
    from lndgrpc.compiled import lightning_pb2 as ln

    pending_id = os.urandom(32)
    request = ln.OpenChannelRequest(
        node_pubkey=bytes.fromhex(node.pubkey),
        local_funding_amount=sats,
        funding_shim=ln.FundingShim(psbt_shim=ln.PsbtShim(pending_chan_id=pending_id, no_publish=True)),
    )
    call = peer.ln.OpenChannel(request, timeout=RPC_TIMEOUT)
    try:
        for update in call:
            if update.HasField("psbt_fund"):
                cancel = ln.FundingTransitionMsg(shim_cancel=ln.FundingShimCancel(pending_chan_id=pending_id))
                peer.ln.FundingStateStep(cancel, timeout=RPC_TIMEOUT)
                return None
    except grpc.RpcError as exc:
        return exc.details() or ""
    finally:
        call.cancel()
    return ""
