"""The multisig wallet end to end on a real btcd, driven through the CLI.

A 2-of-3 from three software signers is funded from the faucet, followed by
`wallet sync`, spent to an outside address only once the policy allows it,
signed by two signers along different paths (a software key, and a file
round trip to an "air-gapped" signer), finalized, broadcast and mined. The
node is the oracle: it must accept the transaction, and its UTXO set
(`gettxout`) must agree with the wallet's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh

from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.signers import SoftwareSigner
from regtest import Network
from tests.support.cli_runner import (
    L2CUSTODY,
    create_wallet,
    fails,
    init_on_chain,
    ok,
    software_signers,
)

pytestmark = pytest.mark.integration


def sats(btc: float) -> int:
    return round(btc * 100_000_000)


def outside_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture(scope="module")
def setup(chain_network: Network, tmp_path_factory: pytest.TempPathFactory):
    """A config pointing at the harness btcd, three signers, and the 2-of-3 wallet."""
    net = chain_network
    d = tmp_path_factory.mktemp("wallet-flow")
    config = init_on_chain(d, net.chain)
    create_wallet(config, software_signers(config, d))
    return net, config, d


def balance(config: Path) -> dict:
    return ok(config, "wallet", "balance")


def test_funds_from_the_faucet_are_seen_by_sync(setup) -> None:
    net, config, d = setup
    a = ok(config, "wallet", "address")["address"]
    b = ok(config, "wallet", "address")["address"]
    t1 = net.fund_address(a, 1_000_000)
    t2 = net.fund_address(b, 500_000)
    synced = ok(config, "wallet", "sync")
    assert synced["received"] == 2
    assert balance(config)["unconfirmed"] == 1_500_000  # seen in btcd's mempool
    net.mine(1)
    ok(config, "wallet", "sync")
    bal = balance(config)
    assert (bal["confirmed"], bal["unconfirmed"], bal["spendable"]) == (1_500_000, 0, 1_500_000)
    utxos = ok(config, "wallet", "utxos")
    assert sorted((u["txid"], u["value"], u["confirmations"]) for u in utxos) == sorted(
        [(t1, 1_000_000, 1), (t2, 500_000, 1)]
    )
    for u in utxos:  # the node agrees: these outputs exist and pay our addresses
        out = net.chain.rpc("gettxout", u["txid"], u["vout"])
        assert sats(out["value"]) == u["value"] and out["scriptPubKey"]["addresses"] == [u["address"]]
    assert [x["used"] for x in ok(config, "wallet", "addresses", "--show-used")] == [True, True]


def test_send_to_outside_needs_the_policy_then_two_signers_and_the_node_accepts(setup) -> None:
    net, config, d = setup
    dest = outside_address()
    err = fails(config, "wallet", "send", dest, "300000sat", "--fee-rate", "2", code=32)
    assert dest in err["error"] and "allowed_destinations" in err["error"]
    assert balance(config)["reserved"] == 0  # the refusal reserved nothing

    config.write_text(config.read_text().replace("allowed_destinations = []", f'allowed_destinations = ["{dest}"]'))
    psbt_file = d / "pay.psbt"
    sent = ok(config, "wallet", "send", dest, "0.003btc", "--fee-rate", "2", "--out", str(psbt_file))
    session, fee = sent["session"], sent["summary"]["fee"]
    assert sent["summary"]["sent"] == 300_000 and balance(config)["reserved"] > 0

    # signer 1: software key
    assert ok(config, "psbt", "sign", str(psbt_file), "--signer", "alice")["added"] >= 1
    # signer 2: bob's key on an "air-gapped" machine, reached through a directory
    usb = d / "usb"
    bob_fp = SoftwareSigner.from_file(d / "bob.key").fingerprint
    ok(config, "signer", "add", "bob-usb", "--file-dir", str(usb), "--fingerprint", bob_fp)
    exported = ok(config, "psbt", "sign", str(psbt_file), "--signer", "bob-usb")
    assert exported["exported"] and not exported["complete"]
    offline = SoftwareSigner.from_file(d / "bob.key").sign(load_psbt(Path(exported["exported"][1]).read_text()))
    (usb / f"{session}-signed.psbt").write_bytes(offline.serialize())
    collected = ok(config, "psbt", "sign", str(psbt_file), "--signer", "bob-usb")
    assert collected["complete"] is True

    final = ok(config, "psbt", "finalize", str(psbt_file))
    [accept] = net.chain.rpc("testmempoolaccept", [final["hex"]], 0.1)
    assert accept["allowed"], accept  # the node is the judge of the signatures
    txid = ok(config, "psbt", "broadcast", str(psbt_file))["txid"]
    assert txid == final["txid"] and txid in net.chain.rpc("getrawmempool")
    net.mine(1)
    ok(config, "wallet", "sync")

    bal = balance(config)
    assert bal["confirmed"] == 1_500_000 - 300_000 - fee and bal["reserved"] == 0
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    assert tx["confirmations"] == 1
    paid = [o for o in tx["vout"] if o["scriptPubKey"].get("addresses") == [dest]]
    assert [sats(o["value"]) for o in paid] == [300_000]
    utxos = ok(config, "wallet", "utxos")
    assert sum(u["value"] for u in utxos) == bal["confirmed"]
    for u in utxos:
        assert net.chain.rpc("gettxout", u["txid"], u["vout"]) is not None
    for vin in tx["vin"]:  # what we spent is gone from the node's UTXO set and from ours
        assert net.chain.rpc("gettxout", vin["txid"], vin["vout"]) is None
        assert all((u["txid"], u["vout"]) != (vin["txid"], vin["vout"]) for u in utxos)
    states = {s["id"]: s["state"] for s in ok(config, "psbt", "list")}
    assert states[session] == "confirmed"


def test_self_transfer_with_chosen_coin_and_subtracted_fee(setup) -> None:
    """Our own address needs no policy entry; --utxo picks the coin, --subtract-fee makes the amount pay."""
    net, config, d = setup
    before = balance(config)["confirmed"]
    coin = max(ok(config, "wallet", "utxos"), key=lambda u: u["value"])
    own = ok(config, "wallet", "address")["address"]
    f = d / "self.psbt"
    sent = ok(
        config,
        "wallet",
        "send",
        own,
        str(coin["value"]),
        "--utxo",
        f"{coin['txid']}:{coin['vout']}",
        "--subtract-fee",
        "--fee-rate",
        "3",
        "--out",
        str(f),
    )
    outputs = sent["summary"]["outputs"]
    assert len(outputs) == 1 and outputs[0]["kind"] == "self"
    assert outputs[0]["value"] == coin["value"] - sent["summary"]["fee"]
    ok(config, "psbt", "sign", str(f), "--signer", "carol")
    ok(config, "psbt", "sign", str(f), "--signer", "alice")
    txid = ok(config, "psbt", "broadcast", str(f))["txid"]
    net.mine(1)
    ok(config, "wallet", "sync")
    assert balance(config)["confirmed"] == before - sent["summary"]["fee"]
    assert net.chain.rpc("gettxout", txid, 0) is not None


def test_rebroadcast_is_refused_by_the_node_and_loses_nothing(setup) -> None:
    net, config, d = setup
    before = balance(config)
    err = fails(config, "psbt", "broadcast", str(d / "self.psbt"), code=42)  # the node says no
    assert "nothing was broadcast" in err["error"]
    assert balance(config) == before
    assert {s["state"] for s in ok(config, "psbt", "list")} == {"confirmed"}  # not moved backwards


def test_wrong_network_node_is_refused(setup, tmp_path: Path) -> None:
    net, config, d = setup
    other = tmp_path / "signet.toml"
    other.write_text(
        config.read_text()
        .replace('network = "regtest"', 'network = "signet"')
        .replace(str(d / "data"), str(tmp_path / "sdata"))
        .replace("allowed_destinations = [", "allowed_destinations = [] #")
    )
    keys = [
        SoftwareSigner.from_file(d / f"{n}.key").account_key("48h/1h/0h/2h", "signet").to_string()
        for n in ("alice", "bob", "carol")
    ]
    ok(other, "wallet", "create", "-k", "2", *sum((["--key", k] for k in keys), []))
    err = fails(other, "wallet", "sync", code=13)
    assert "regtest" in err["error"] and net.chain.rpc_url in err["error"]


def test_installed_command_syncs_against_the_node(setup) -> None:
    net, config, d = setup
    env = {**os.environ, "L2CUSTODY_CONFIG": str(config)}
    proc = subprocess.run(
        [str(L2CUSTODY), "--json", "wallet", "sync"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tip_height"] == net.chain.height()
