"""Multisig funding sessions through Core Lightning (real lightningd + lnd + bitcoind), via the CLI.

The session code does not know which backend it talks to; this runs the same
flow as tests/integration/test_funding.py with a CLN node on either side:
CLN -> lnd and lnd -> CLN channels funded from a 2-of-3 multisig, secured with
no signer present, signed later, broadcast, confirmed, the committed close
address read back from the node; a batch mixing a CLN and an lnd channel in
one transaction; a cooperative close of the CLN channel into the multisig.
bitcoind (mempool, blocks) and the nodes' own listings are the oracles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regtest import Network, WaitTimeout, is_peer, wait_for
from tests.support.cli_runner import (
    create_wallet,
    fails,
    init_on_chain,
    ok,
    software_signers,
)
from tests.support.funding import (
    mempool,
    multisig_scripts,
    pending_points,
    wait_in_mempool,
)

pytestmark = [pytest.mark.integration, pytest.mark.cln]


@pytest.fixture(scope="module")
def setup(cln_network: Network, tmp_path_factory: pytest.TempPathFactory) -> tuple[Network, Path, Path]:
    net = cln_network
    net.add_cln()  # cln-1: a plain peer for the mixed batch
    d = tmp_path_factory.mktemp("cln-funding")
    config = init_on_chain(d, net.chain)
    create_wallet(config, software_signers(config, d))
    lnd, cln = net.lnd[0], net.cln[0]
    ok(
        config,
        "node",
        "add",
        lnd.name,
        "--lnd",
        "--host",
        lnd.grpc_host,
        "--tls-cert",
        str(lnd.tls_cert),
        "--macaroon",
        str(lnd.admin_macaroon),
    )
    ok(config, "node", "add", cln.name, "--cln", "--rpc-file", str(cln.rpc_file))
    outputs = [(ok(config, "wallet", "address")["address"], v) for v in (2_000_000, 2_000_000, 1_500_000, 1_500_000)]
    net.fund_addresses(outputs)
    net.mine(1)
    ok(config, "wallet", "sync")
    return net, config, d


def peer(node: Any) -> str:
    return f"{node.pubkey}@{node.p2p_host}"


def cln_entry(net: Network, point: str) -> dict[str, Any]:
    txid, vout = point.split(":")
    for e in net.cln[0].rpc.listpeerchannels()["channels"]:
        if e.get("funding_txid") == txid and e.get("funding_outnum") == int(vout):
            return dict(e)
    raise AssertionError(f"cln-0 does not list {point}")


def sign_and_confirm(net: Network, config: Path, session: dict[str, Any]) -> dict[str, Any]:
    ok(config, "session", "sign", session["id"], "--signer", "alice")
    done = ok(config, "session", "sign", session["id"], "--signer", "carol")
    assert done["complete"] and done["broadcast_txid"] == session["txid"]
    wait_in_mempool(net, session["txid"])
    for leg in session["legs"]:
        if leg["request"]["node"].startswith("cln"):
            # told at broadcast (sendpsbt), not only repaired after confirmation
            assert cln_entry(net, leg["channel_point"])["funding"]["withheld"] is False
    net.mine(1)
    final = ok(config, "session", "status", session["id"], "--wait", "--timeout", "120")
    assert final["state"] == "confirmed"
    return final


def funding_inputs_are_multisig(net: Network, config: Path, txid: str) -> bool:
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    ours = multisig_scripts(config)
    prevs = [net.chain.rpc("getrawtransaction", v["txid"], 1)["vout"][v["vout"]] for v in tx["vin"]]
    return all(p["scriptPubKey"]["hex"] in ours for p in prevs)


def test_cln_to_lnd_channel_funded_from_the_multisig(setup: tuple[Network, Path, Path]) -> None:
    net, config, _ = setup
    lnd = net.lnd[0]
    s = ok(config, "channel", "open", "cln-0", peer(lnd), "600000", "--fee-rate", "2")
    [leg] = s["legs"]
    assert (s["state"], leg["state"], s["signatures"]) == ("secured", "secured", 0)
    entry = cln_entry(net, leg["channel_point"])
    assert entry["state"] == "CHANNELD_AWAITING_LOCKIN" and entry["close_to_addr"] == leg["close_address"]
    assert entry["funding"]["withheld"] is True  # lightningd v25.12: not broadcast by it (yet)
    assert s["txid"] not in mempool(net)

    final = sign_and_confirm(net, config, s)
    assert funding_inputs_are_multisig(net, config, s["txid"])
    assert final["legs"][0]["state"] == "open" and final["legs"][0]["close_address_ok"] is True
    entry = cln_entry(net, leg["channel_point"])
    assert entry["state"] == "CHANNELD_NORMAL" and entry["close_to_addr"] == leg["close_address"]
    assert entry["funding"]["withheld"] is False  # lightningd was handed the signed PSBT
    setup_state["cln_channel"] = leg["channel_point"]


def test_lnd_to_cln_channel_funded_from_the_multisig(setup: tuple[Network, Path, Path]) -> None:
    net, config, _ = setup
    lnd, cln = net.lnd[0], net.cln[0]
    s = ok(config, "channel", "open", "lnd-0", peer(cln), "500000", "--fee-rate", "2")
    [leg] = s["legs"]
    assert leg["channel_point"] in pending_points(lnd) and s["txid"] not in mempool(net)
    final = sign_and_confirm(net, config, s)
    assert final["legs"][0]["state"] == "open" and final["legs"][0]["close_address_ok"] is True
    assert cln_entry(net, leg["channel_point"])["opener"] == "remote"


def test_opens_both_ways_between_the_same_pair_fail_cleanly(setup: tuple[Network, Path, Path]) -> None:
    """lightningd holds one channel negotiation per peer, in either direction: the second leg fails,
    the session unwinds, nothing is broadcast."""
    net, config, d = setup
    lnd, cln = net.lnd[0], net.cln[0]
    batch = d / "both-ways.csv"
    batch.write_text(f"node,peer,amount,private\ncln-0,{peer(lnd)},300000,true\nlnd-0,{peer(cln)},310000,false\n")
    before = set(mempool(net))
    err = fails(config, "channel", "batch", str(batch), "--fee-rate", "2", code=55)
    assert "simulteneous opens" in err["error"] and "nothing was broadcast" in err["error"]
    assert set(mempool(net)) == before and ok(config, "wallet", "balance")["reserved"] == 0
    assert not [e for e in cln.rpc.listpeerchannels(lnd.pubkey)["channels"] if e["state"] == "OPENINGD"]
    # lnd's error made lightningd drop the connection (it takes a few seconds to drain); the next
    # test must not start its negotiation on the dying connection.
    try:
        wait_for(lambda: not is_peer(cln, lnd), 10, what="the dropped connection")
    except WaitTimeout:
        pass
    net.connect(cln, lnd)


def test_a_batch_mixing_cln_and_lnd_in_one_transaction(setup: tuple[Network, Path, Path]) -> None:
    net, config, d = setup
    lnd, other = net.lnd[0], net.cln[1]
    batch = d / "mixed.csv"
    batch.write_text(f"node,peer,amount,private\ncln-0,{peer(lnd)},300000,true\nlnd-0,{peer(other)},310000,false\n")
    s = ok(config, "channel", "batch", str(batch), "--fee-rate", "2")
    legs = s["legs"]
    assert s["state"] == "secured" and [leg["state"] for leg in legs] == ["secured", "secured"]
    assert all(leg["channel_point"].startswith(s["txid"]) for leg in legs)
    assert cln_entry(net, legs[0]["channel_point"])["state"] == "CHANNELD_AWAITING_LOCKIN"
    assert legs[1]["channel_point"] in pending_points(lnd)
    assert s["txid"] not in mempool(net)
    final = sign_and_confirm(net, config, s)
    assert [(leg["state"], leg["close_address_ok"]) for leg in final["legs"]] == [("open", True)] * 2
    assert cln_entry(net, legs[0]["channel_point"])["funding"]["withheld"] is False


def test_cooperative_close_of_the_cln_channel_lands_in_the_multisig(setup: tuple[Network, Path, Path]) -> None:
    net, config, _ = setup
    point = setup_state["cln_channel"]
    before = ok(config, "wallet", "balance")
    closed = ok(config, "channel", "close", point, "--node", "cln-0", "--fee-rate", "2")
    txid = closed.get("closing_txid") or closed.get("record", {}).get("closing_txid")
    assert txid
    wait_in_mempool(net, txid)
    net.mine(1)

    def verified() -> dict[str, Any] | None:
        status = ok(config, "channel", "close-status", point, "--node", "cln-0")
        return status if status["state"] == "verified" else None

    status = wait_for(verified, 90, what="the close verified into the multisig")
    assert status["state"] == "verified"
    after = ok(config, "wallet", "balance")
    assert after["confirmed"] > before["confirmed"]


def test_sweep_moves_the_cln_wallet_into_the_multisig_keeping_the_emergency_reserve(
    setup: tuple[Network, Path, Path],
) -> None:
    net, config, _ = setup
    ok(config, "wallet", "sync")
    before = ok(config, "wallet", "balance")["confirmed"]
    preview = ok(config, "sweep", "cln-0", "--dry-run", "--fee-rate", "2")
    assert preview["kept_sat"] == 25_000 and preview["amount_sat"] > 40_000_000  # the harness's 0.5 BTC

    def miner() -> None:
        wait_for(lambda: len(mempool(net)) > 0, 60, what="the sweep in the mempool")
        net.mine(1)

    import threading

    thread = threading.Thread(target=miner)
    thread.start()
    done = ok(config, "sweep", "cln-0", "--fee-rate", "2", "--wait", "--timeout", "90")
    thread.join()
    assert done["status"]["state"] == "verified" and done["amount_sat"] == preview["amount_sat"]
    tx = net.chain.rpc("getrawtransaction", done["txid"], 1)
    paid = {o["scriptPubKey"].get("address"): round(o["value"] * 1e8) for o in tx["vout"]}
    assert paid[done["address"]] == done["amount_sat"]  # bitcoind: the sweep pays the multisig
    ok(config, "wallet", "sync")
    assert ok(config, "wallet", "balance")["confirmed"] == before + done["amount_sat"]
    outputs = net.cln[0].rpc.listfunds()["outputs"]
    assert sum(o["amount_msat"] for o in outputs if o["status"] == "confirmed") // 1000 == 25_000


setup_state: dict[str, str] = {}
