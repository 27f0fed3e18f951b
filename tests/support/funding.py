"""Shared set-up for the funding-session integration tests (real btcd + lnd).

A 2-of-3 multisig wallet made through the CLI (software signers alice, bob,
carol; bob's key also reachable as an "air-gapped" file signer), funded from
the harness faucet, and the harness's lnd nodes registered with
``l2custody node add``. Only the CLI and the harness are used here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.signers import SoftwareSigner
from regtest import Network, wait_for
from regtest.lnd import LndNode
from tests.support.cli_runner import create_wallet, init_on_chain, ok, software_signers
from tests.support.enforced import macaroon_for, start_enforcer


def make_wallet(net: Network, d: Path, coins: tuple[int, ...] = (3_000_000, 2_000_000, 1_500_000)) -> Path:
    """Config + 3 signers + 2-of-3 wallet + registered nodes + confirmed coins; returns the config path."""
    config = init_on_chain(d, net.chain)
    create_wallet(config, software_signers(config, d))
    bob_fp = SoftwareSigner.from_file(d / "bob.key").fingerprint
    ok(config, "signer", "add", "bob-usb", "--file-dir", str(d / "usb"), "--fingerprint", bob_fp)
    register_nodes(net, config)
    fund(net, config, coins)
    return config


def register_lnd(config: Path, node: LndNode) -> None:
    """`node add NAME --lnd` for the harness ``node`` (its caveat macaroon and enforcer under
    L2C_ENFORCE, see tests/support/enforced.py)."""
    ok(
        config,
        "node",
        "add",
        node.name,
        "--lnd",
        "--host",
        node.grpc_host,
        "--tls-cert",
        str(node.tls_cert),
        "--macaroon",
        str(macaroon_for(node, config.parent)),
    )
    start_enforcer(config, node.name, node)


def register_nodes(net: Network, config: Path) -> None:
    known = {n["name"] for n in ok(config, "node", "list")}
    for node in net.lnd:
        if node.name not in known:
            register_lnd(config, node)


def fund(net: Network, config: Path, coins: tuple[int, ...]) -> None:
    outputs = [(ok(config, "wallet", "address")["address"], v) for v in coins]
    net.fund_addresses(outputs)
    net.mine(1)
    ok(config, "wallet", "sync")


def sign_offline(d: Path, exported: list[str], key: str = "bob") -> Any:
    """What the air-gapped machine does: read the exported base64 PSBT, sign it with the key."""
    psbt = load_psbt(Path(exported[1]).read_text())
    return SoftwareSigner.from_file(d / f"{key}.key").sign(psbt)


def pending_points(node: Any) -> set[str]:
    from lndgrpc.compiled import lightning_pb2 as ln

    resp = node.ln.PendingChannels(ln.PendingChannelsRequest(), timeout=60)
    return {p.channel.channel_point for p in resp.pending_open_channels}


def mempool(net: Network) -> list[str]:
    return list(net.chain.rpc("getrawmempool"))


def wait_in_mempool(net: Network, txid: str) -> None:
    wait_for(lambda: txid in mempool(net), 30, what=f"{txid} in the mempool")


def multisig_scripts(config: Path) -> set[str]:
    """scriptPubKeys (hex) of every address the wallet has derived."""
    from l2custody.config import load_config
    from l2custody.store import Store

    cfg = load_config(config)
    with Store.open(cfg.store_path) as store:
        wallet = store.wallet()
        return {a.script.hex() for a in store.addresses(wallet.id)}
