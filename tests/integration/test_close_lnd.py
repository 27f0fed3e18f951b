"""Cooperative closes into the multisig on real lnd + btcd, driven through the CLI.

lnd[0] ("ours") opens channels to lnd[1] from its own wallet (the funding
sessions have their own tests), with or without an upfront close address.
btcd is the oracle: the closing transaction it holds must pay the multisig
address, and the wallet must hold that output after a sync.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from regtest import Network, wait_for
from regtest.lightning import close_channel as peer_closes
from regtest.lightning import find_channel
from tests.support.cli_runner import L2CUSTODY, fails, ok, run
from tests.support.lnd_custody import (
    Setup,
    audit_actions,
    channel_json,
    invoke_input,
    make_setup,
    open_channel,
    tx_outputs,
    wallet_address,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    return make_setup(network, tmp_path_factory.mktemp("close"))


def _balance(setup: Setup) -> int:
    ok(setup.config, "wallet", "sync")
    return ok(setup.config, "wallet", "balance")["confirmed"]


def _status(setup: Setup, cp: str) -> dict:
    return ok(setup.config, "channel", "close-status", cp)


def test_upfront_multisig_close_pays_the_multisig_and_is_verified(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    addr = wallet_address(setup)
    cp = open_channel(net, a, b, 600_000, push_sat=100_000, close_address=addr)
    view = channel_json(setup, cp)
    assert (view["state"], view["capacity_sat"], view["remote_balance_sat"]) == ("open", 600_000, 100_000)
    assert (view["close_address"], view["close_address_ours"], view["funding"]) == (addr, True, "foreign")
    assert view["close_address_index"] == "receive/0"
    # found by short channel id too
    assert ok(setup.config, "channel", "show", view["short_channel_id"])["channel_point"] == cp
    before = _balance(setup)

    closed = ok(setup.config, "channel", "close", cp, "--fee-rate", "2")
    assert closed["address_source"] == "upfront" and closed["record"]["expected_address"] == addr
    txid = closed["closing_txid"]
    assert txid in net.chain.rpc("getrawmempool")
    paid = dict(tx_outputs(net, txid))
    assert addr in paid  # btcd: the closing tx pays the committed multisig address

    pending = _status(setup, cp)
    assert pending["state"] == "pending" and "waiting for confirmation" in pending["message"]
    net.mine(1)
    verified = _status(setup, cp)
    vout = [i for i, (address, _) in enumerate(tx_outputs(net, txid)) if address == addr][0]
    assert verified["state"] == "verified", verified
    assert verified["wallet_utxo"] == f"{txid}:{vout}" and verified["value"] == paid[addr]
    assert _balance(setup) == before + paid[addr]
    utxo = net.chain.rpc("gettxout", txid, vout)  # btcd agrees the output exists unspent
    assert round(utxo["value"] * 100_000_000) == paid[addr]
    actions = [a for a, _ in audit_actions(setup, cp)]
    assert actions == ["close-requested", "close-broadcast", "close-verified"]
    # a closed channel cannot be closed again; status stays verified without new entries
    err = fails(setup.config, "channel", "close", cp, code=10)
    assert "not open" in err["error"]
    assert _status(setup, cp)["state"] == "verified"
    assert len(audit_actions(setup, cp)) == 3


def test_channel_without_upfront_script_is_closed_to_a_fresh_multisig_address(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    cp = open_channel(net, a, b, 400_000, push_sat=50_000)
    view = channel_json(setup, cp)
    assert view["close_address"] is None and view["close_address_ours"] is None
    listed = run(setup.config, "channel", "list")
    assert listed.exit_code == 0 and "fresh multisig address at close" in listed.stdout
    issued = {x["address"] for x in ok(setup.config, "wallet", "addresses")}
    before = _balance(setup)

    def miner() -> None:  # the chain moves while `close --wait` follows it
        wait_for(lambda: len(net.chain.rpc("getrawmempool")) > 0, 60, what="the closing tx in the mempool")
        net.mine(1)

    thread = threading.Thread(target=miner)
    thread.start()
    result = run(setup.config, "channel", "close", cp, "--wait", "--timeout", "90", json_out=True)
    thread.join()
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    delivery = report["record"]["expected_address"]
    assert report["address_source"] == "delivery" and delivery not in issued
    labels = {x["address"]: x["label"] for x in ok(setup.config, "wallet", "addresses", "--show-used")}
    assert labels[delivery] == f"close {cp}"  # recorded as issued before lnd saw it
    assert report["status"]["state"] == "verified", report["status"]
    assert "… " in result.stderr  # progress while waiting
    paid = dict(tx_outputs(net, report["closing_txid"]))
    assert paid[delivery] == report["status"]["value"]
    assert _balance(setup) == before + paid[delivery]


def test_foreign_upfront_address_is_refused_and_force_needs_the_channel_point(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    node_addr = a.new_address()  # lnd's hot wallet: not the multisig
    cp = open_channel(net, a, b, 300_000, close_address=node_addr)
    view = channel_json(setup, cp)
    assert view["close_address"] == node_addr and view["close_address_ours"] is False
    human = run(setup.config, "channel", "list")
    assert "FOREIGN" in human.stdout and "NOT the multisig" in human.stdout

    err = fails(setup.config, "channel", "close", cp, code=70)
    assert node_addr in err["error"] and "not an address of the multisig" in err["error"]
    assert "--force" in err["error"] and "sweep" in err["error"]
    assert find_channel(a, cp) is not None  # nothing happened
    assert audit_actions(setup, cp) == []

    typo = invoke_input(setup.config, "channel", "close", cp, "--force", input=cp[:-1] + "9\n")
    assert typo.exit_code == 2 and "nothing was closed" in typo.stdout
    assert "hot wallet" in typo.stderr and f"l2custody sweep {a.name}" in typo.stderr  # the explanation
    assert find_channel(a, cp) is not None and audit_actions(setup, cp) == []
    fee = fails(setup.config, "channel", "close", cp, "--yes-force", "--fee-rate", "3", code=10)
    assert "fee" in fee["error"]


def test_peer_closing_an_upfront_channel_pays_us_and_is_verified(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    addr = wallet_address(setup)
    cp = open_channel(net, a, b, 300_000, close_address=addr)
    before = _balance(setup)
    closing_txid = peer_closes(net, b, cp)  # lnd[1] closes; mined
    wait_for(
        lambda: any(
            c["channel_point"] == cp and c["state"] == "closed"
            for c in ok(setup.config, "channel", "list", "--node", a.name)
        ),
        60,
        what=f"{a.name} to list {cp} as closed",
    )
    status = _status(setup, cp)
    assert status["state"] == "verified" and status["closing_txid"] == closing_txid
    paid = dict(tx_outputs(net, closing_txid))
    assert _balance(setup) == before + paid[addr]
    assert [x for x, _ in audit_actions(setup, cp)] == ["close-observed", "close-verified"]


def test_peer_closing_a_channel_without_upfront_script_is_a_custody_violation(setup: Setup) -> None:
    net, (a, b) = setup.net, setup.net.lnd
    cp = open_channel(net, a, b, 300_000)
    closing_txid = peer_closes(net, b, cp)  # our side is paid to lnd[0]'s own wallet
    wait_for(
        lambda: any(
            c["channel_point"] == cp and c["state"] == "closed"
            for c in ok(setup.config, "channel", "list", "--node", a.name)
        ),
        60,
        what=f"{a.name} to list {cp} as closed",
    )
    err = fails(setup.config, "channel", "close-status", cp, code=70)
    assert closing_txid in err["error"] and "pays no address of the multisig" in err["error"]
    assert "l2custody sweep" in err["error"]
    actions = audit_actions(setup, cp)
    assert [x for x, _ in actions] == ["close-observed", "custody-violation"]
    assert actions[1][1]["closing_txid"] == closing_txid
    again = run(setup.config, "channel", "close-status", cp)  # stays recorded; human form, exit 2
    assert again.exit_code == 2 and "custody violation" in again.stderr.lower()


def test_errors_name_the_channel_and_the_installed_command_lists(setup: Setup) -> None:
    err = fails(setup.config, "channel", "show", "ab" * 32 + ":7", code=63)
    assert "channel list" in err["error"]
    err = fails(setup.config, "channel", "close", "not-a-channel", code=10)
    assert "channel point" in err["error"]
    err = fails(setup.config, "channel", "list", "--node", "nope", code=53)
    assert "nope" in err["error"]
    proc = subprocess.run(
        [str(L2CUSTODY), "--config", str(setup.config), "channel", "list"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "close address" in proc.stdout and "(ours)" in proc.stdout and Path(L2CUSTODY).exists()
