"""The custody plugin inside a real lightningd (``important-plugin=plugins/l2custody_plugin.py``).

On the ``cln_network`` (bitcoind + lnd + a plain CLN) a second CLN node starts with the plugin,
exactly as plugins/README.md documents (the file itself, run by the ``python3`` first on
lightningd's PATH: here the venv's). lightningd is the oracle: its commands fail with our error,
or run; ``listpeerchannels`` shows the close_to it committed. Skipped, naming the missing
binary, without lightningd/bitcoind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import Config
from l2custody.store import Store
from l2custody.wallet.addresses import address_to_script
from regtest import DaemonStartError, Network, wait_for
from regtest.cln import ClnNode
from tests.support.cln_plugin import PLUGIN, outside_address

pytestmark = [pytest.mark.integration, pytest.mark.cln]

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def plugin_path_env() -> Iterator[None]:
    """lightningd (and so the plugin's ``#!/usr/bin/env python3``) finds the venv's python first."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        yield


@pytest.fixture(scope="module")
def custody(
    cln_network: Network,
    plugin_path_env: None,
    tmp_path_factory: pytest.TempPathFactory,
    make_plugin_wallet: Callable[..., Config],
) -> Iterator[tuple[ClnNode, Config]]:
    cfg = make_plugin_wallet(tmp_path_factory.mktemp("cln-plugin") / "w")
    node = cln_network.add_cln(
        extra_args=(
            f"--important-plugin={PLUGIN}",
            f"--l2custody-config={cfg.path}",
            "--l2custody-node=custody-cln",
        ),
        name="cln-custody",
    )
    cln_network.fund_node(node, 2_000_000, utxos=2)
    yield node, cfg


def audit(cfg: Config, action: str) -> list[Any]:
    with Store.open(cfg.store_path) as store:
        return [e for e in store.audit_log() if e.action == action]


def rpc_error(exc: BaseException) -> dict[str, Any]:
    from pyln.client import RpcError

    assert isinstance(exc, RpcError), exc
    return exc.error


def test_plugin_runs_inside_lightningd(custody: tuple[ClnNode, Config]) -> None:
    node, _cfg = custody
    plugins = node.rpc.plugin("list")["plugins"]
    assert any(p["name"].endswith("l2custody_plugin.py") and p["active"] for p in plugins)
    status = node.rpc.call("custody-status")
    assert status["mode"] == "enforce" and status["node"] == "custody-cln" and status["network"] == "regtest"
    assert status["wallet"]["policy"] == "2-of-3"


def test_withdraw_to_a_foreign_address_is_refused(custody: tuple[ClnNode, Config]) -> None:
    from pyln.client import RpcError

    node, cfg = custody
    foreign = outside_address()
    before = sorted(o["txid"] for o in node.rpc.listfunds()["outputs"])
    with pytest.raises(RpcError) as err:
        node.rpc.withdraw(foreign, 100_000)
    error = rpc_error(err.value)
    assert error["code"] == 70 and "rule spend-destination" in error["message"] and foreign in error["message"]
    assert error["data"] == {"rule": "spend-destination", "plugin": "l2custody"}
    with pytest.raises(RpcError) as err:  # positional, as lightning-cli sends it
        node.rpc.call("withdraw", [foreign, "all"])
    assert rpc_error(err.value)["code"] == 70
    assert sorted(o["txid"] for o in node.rpc.listfunds()["outputs"]) == before
    assert [e.details["destination"] for e in audit(cfg, "rpc-refused")][:2] == [foreign, foreign]


def test_withdraw_to_the_multisig_with_node_change_goes_through(
    custody: tuple[ClnNode, Config], cln_network: Network
) -> None:
    """The sweep path: txprepare's signpsbt/sendpsbt pay our address plus the node's own change,
    which the plugin recognises by asking lightningd (listaddresses) off the hook thread."""
    node, cfg = custody
    ours = node.rpc.call("custody-address", {"label": "sweep test"})["address"]
    txid = node.rpc.withdraw(ours, 150_000)["txid"]
    assert txid in cln_network.chain.rpc("getrawmempool")
    rules = {e.subject: e.details for e in audit(cfg, "rpc-allowed")}
    assert rules["withdraw"]["rule"] == "ours"
    assert rules["signpsbt"]["rule"] == "node" and sorted(rules["signpsbt"]["outputs"]) == ["node-wallet", "ours"]
    assert rules["sendpsbt"]["txid"] == txid
    cln_network.mine(1)


def test_inbound_channel_commits_our_close_to(custody: tuple[ClnNode, Config], cln_network: Network) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    node, cfg = custody
    lnd = cln_network.lnd[0]
    cln_network.connect(lnd, node)
    lnd.ln.OpenChannelSync(
        ln.OpenChannelRequest(node_pubkey=bytes.fromhex(node.pubkey), local_funding_amount=250_000, sat_per_vbyte=2),
        timeout=60,
    )
    (accepted,) = audit(cfg, "inbound-accepted")
    close_to = accepted.details["close_to"]
    assert accepted.details["peer"] == lnd.pubkey and accepted.details["hook"] == "openchannel"

    def inbound() -> dict[str, Any] | None:
        chans = node.rpc.listpeerchannels(lnd.pubkey)["channels"]
        return next((c for c in chans if c["opener"] == "remote"), None)

    channel = wait_for(inbound, 30, what="lightningd to list the inbound channel")
    assert channel["close_to_addr"] == close_to
    assert channel["close_to"] == address_to_script(close_to, "regtest").hex()
    with Store.open(cfg.store_path) as store:
        rec = store.address_by_script(bytes.fromhex(channel["close_to"]))
    assert rec is not None and rec.issued and rec.label.startswith("inbound ")
    cln_network.mine(1)
    status = node.rpc.call("custody-status")
    (row,) = [c for c in status["channels"] if c["opener"] == "remote"]
    assert row["custody"] == "multisig"


def test_close_to_a_foreign_destination_is_refused(custody: tuple[ClnNode, Config], cln_network: Network) -> None:
    from pyln.client import RpcError

    node, _cfg = custody
    lnd = cln_network.lnd[0]
    channel = node.rpc.listpeerchannels(lnd.pubkey)["channels"][0]
    with pytest.raises(RpcError) as err:
        node.rpc.close(channel["channel_id"], destination=outside_address())
    assert "rule close-destination" in rpc_error(err.value)["message"]
    assert node.rpc.listpeerchannels(lnd.pubkey)["channels"][0]["state"] == channel["state"]


def test_node_wallet_fundchannel_passes_its_psbt_checks(custody: tuple[ClnNode, Config], cln_network: Network) -> None:
    """fundchannel from the node's own wallet: the plugin recognises the funding output from
    listpeerchannels and the change from listaddresses, so lightningd signs and sends."""
    node, cfg = custody
    lnd = cln_network.lnd[0]
    txid = node.rpc.fundchannel(lnd.pubkey, 200_000)["txid"]
    assert txid in cln_network.chain.rpc("getrawmempool")
    signed = [e.details for e in audit(cfg, "rpc-allowed") if e.subject == "signpsbt" and e.details["txid"] == txid]
    assert signed and "channel-funding" in signed[-1]["outputs"]
    cln_network.mine(1)
    assert audit(cfg, "channel_state_changed") and audit(cfg, "coin_movement")


def test_a_plugin_that_cannot_start_stops_lightningd(
    cln_network: Network, plugin_path_env: None, tmp_path: Path
) -> None:
    """As an important-plugin, a disabled plugin (here: no config file) takes lightningd down."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(DaemonStartError) as err:
        cln_network.add_cln(
            extra_args=(f"--important-plugin={PLUGIN}", f"--l2custody-config={missing}"), name="cln-no-config"
        )
    assert "missing.toml" in err.value.message
