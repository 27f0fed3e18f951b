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
from tests.support.cln_plugin import PLUGIN, ROOT, outside_address

pytestmark = [pytest.mark.integration, pytest.mark.cln]

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def plugin_path_env() -> Iterator[None]:
    """lightningd (and so the plugin's ``#!/usr/bin/env python3``) finds the venv's python first."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        mp.setenv("PYTHONPATH", str(ROOT))  # this checkout's l2custody, not the one installed
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


# --- attacks on a real lightningd (issue 10, CLN half) -----------------------------------------------------


def raw_call(node: ClnNode, request: bytes, timeout: float = 60.0) -> dict[str, Any]:
    """Send bytes to lightningd's RPC socket as they are (a client's duplicate members and raw
    control characters included) and return its JSON answer."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(node.rpc_file))
        sock.sendall(request)
        buf = b""
        decoder = json.JSONDecoder()
        while True:
            chunk = sock.recv(65536)
            assert chunk, f"lightningd closed the connection; answer so far: {buf!r}"
            buf += chunk
            try:
                answer, _ = decoder.raw_decode(buf.decode().lstrip())
            except ValueError:
                continue
            assert isinstance(answer, dict)
            return answer


def shutdown_state(node: ClnNode, channel_id: str) -> tuple[Any, Any, str]:
    (channel,) = [c for c in node.rpc.listpeerchannels()["channels"] if c["channel_id"] == channel_id]
    return channel.get("close_to"), channel.get("close_to_addr"), channel["state"]


@pytest.fixture(scope="module")
def no_upfront_channel(custody: tuple[ClnNode, Config], cln_network: Network) -> dict[str, Any]:
    """A channel opened from the node's wallet without close_to: its shutdown script is the
    node's default key, which lightningd v25.12.1 lets ``close destination=...`` replace with
    any script (``closing_control.c``), so nothing but the plugin stands in the way."""
    node, _cfg = custody

    def local() -> dict[str, Any] | None:
        return next((c for c in node.rpc.listpeerchannels()["channels"] if c["opener"] == "local"), None)

    if local() is None:
        node.rpc.fundchannel(cln_network.lnd[0].pubkey, 200_000)
        cln_network.mine(1)
    channel = local()
    assert channel is not None
    assert node.rpc.listaddresses(channel["close_to_addr"])["addresses"], "not the node's default key"
    return dict(channel)


def upfront_channel(node: ClnNode) -> dict[str, Any]:
    """The inbound channel, which committed our upfront close_to."""
    return dict(next(c for c in node.rpc.listpeerchannels()["channels"] if c["opener"] == "remote" and c["close_to"]))


@pytest.mark.parametrize("which", ["upfront", "no-upfront"])
def test_duplicate_params_close_is_refused_and_the_shutdown_script_is_unchanged(
    custody: tuple[ClnNode, Config], no_upfront_channel: dict[str, Any], which: str
) -> None:
    """lightningd runs the first ``params`` (a foreign destination); the plugin must judge that one."""
    node, cfg = custody
    channel = upfront_channel(node) if which == "upfront" else no_upfront_channel
    before = shutdown_state(node, channel["channel_id"])
    foreign = outside_address()
    for first, second in (("params", "params"), ("params", "par\\u0061ms")):
        request = (
            f'{{"jsonrpc":"2.0","id":"dup-{which}","method":"close",'
            f'"{first}":{{"id":"{channel["channel_id"]}","destination":"{foreign}","unilateraltimeout":1}},'
            f'"{second}":{{"id":"{channel["channel_id"]}"}}}}'
        ).encode()
        answer = raw_call(node, request)
        assert "error" in answer, answer
        assert answer["error"]["code"] == 70 and "appears twice" in answer["error"]["message"], answer
    assert shutdown_state(node, channel["channel_id"]) == before
    assert node.rpc.getinfo()["id"] == node.pubkey
    refused = [e.details for e in audit(cfg, "rpc-refused") if e.details.get("rule") == "malformed-request"]
    assert refused


@pytest.mark.parametrize(
    "payload",
    [
        b'{"jsonrpc":"2.0","id":"tab","method":"withdraw","params":{"destination":"DEST\t","satoshi":1000}}',
        b'{"jsonrpc":"2.0","id":"nl","method":"withdraw","params":{"destination":"DEST","satoshi":1000,"x":"\n\n"}}',
        b'{"jsonrpc":"2.0","id":"deep","method":"withdraw","params":{"destination":"DEST","satoshi":1000,"x":'
        + b"[" * 3000
        + b"]" * 3000
        + b"}}",
    ],
    ids=["tab", "blank-lines", "deep"],
)
def test_crashing_payloads_are_refused_and_lightningd_stays_up(custody: tuple[ClnNode, Config], payload: bytes) -> None:
    node, _cfg = custody
    before = sorted(o["txid"] for o in node.rpc.listfunds()["outputs"])
    request = payload.replace(b"DEST", outside_address().encode())
    answer = raw_call(node, request)
    assert "error" in answer and answer["error"]["code"] == 70, answer
    plugins = node.rpc.plugin("list")["plugins"]
    assert any(p["name"].endswith("l2custody_plugin.py") and p["active"] for p in plugins)
    assert node.rpc.getinfo()["id"] == node.pubkey
    assert sorted(o["txid"] for o in node.rpc.listfunds()["outputs"]) == before


def test_plugin_stop_and_exposesecret_are_refused(custody: tuple[ClnNode, Config]) -> None:
    from pyln.client import RpcError

    node, _cfg = custody
    for call in (
        lambda: node.rpc.plugin_stop("l2custody_plugin.py"),
        lambda: node.rpc.call("exposesecret", {"passphrase": "x"}),
    ):
        with pytest.raises(RpcError) as err:
            call()
        assert rpc_error(err.value)["code"] == 70
    (ours,) = [p for p in node.rpc.plugin("list")["plugins"] if p["name"].endswith("l2custody_plugin.py")]
    assert ours["active"] and ours["dynamic"] is False
