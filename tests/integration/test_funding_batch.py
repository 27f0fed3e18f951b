"""Batches, failed negotiations and crashes of funding sessions on real lnd + btcd.

- Three channels to two peers from two nodes in ONE funding transaction.
- A peer refusing one channel (below its --minchansize) cancels the batch:
  nothing broadcast, the other negotiations cancelled, coins released.
- A peer dropping out while the channels are being secured: the channels
  already counter-signed are abandoned on their nodes.
- The l2custody process is killed (SIGKILL) after securing, both lnd nodes
  restart, and the session is signed, broadcast and opened afterwards.
- A process killed in the middle of a negotiation leaves a session that
  `session status` explains and `session abort` cleans up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from regtest import Network, wait_for
from tests.support.cli_runner import fails, ok
from tests.support.funding import mempool, pending_points, wait_in_mempool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory, make_funded_wallet: Callable[..., Path]):
    """lnd-0, lnd-1 (funded), lnd-2 (plain peer), lnd-3 (refuses channels under 500,000 sat)."""
    net = network
    net.add_lnd()
    net.add_lnd(("--minchansize=500000",))
    d = tmp_path_factory.mktemp("funding-batch")
    config = make_funded_wallet(net, d, coins=(2_000_000, 2_000_000, 1_000_000, 1_000_000))
    return net, config, d


def reserved(config: Path) -> int:
    return ok(config, "wallet", "balance")["reserved"]


def test_three_channels_to_two_peers_in_one_transaction(setup) -> None:
    net, config, d = setup
    lnd0, lnd1, lnd2 = net.lnd[:3]
    batch = d / "batch.csv"
    batch.write_text(
        "node,peer,amount,private\n"
        f"lnd-0,{lnd1.pubkey}@{lnd1.p2p_host},200000,false\n"
        f"lnd-0,{lnd2.pubkey}@{lnd2.p2p_host},210000,true\n"
        f"lnd-1,{lnd2.pubkey}@{lnd2.p2p_host},0.0022btc,yes\n"
    )
    s = ok(config, "channel", "batch", str(batch), "--fee-rate", "2")
    txid, legs = s["txid"], s["legs"]
    assert s["state"] == "secured" and [leg["state"] for leg in legs] == ["secured"] * 3
    assert len({leg["output_index"] for leg in legs}) == 3
    assert all(leg["channel_point"].startswith(txid) for leg in legs)
    assert {legs[0]["channel_point"], legs[1]["channel_point"]} <= pending_points(lnd0)
    assert legs[2]["channel_point"] in pending_points(lnd1)
    assert len({leg["close_address"] for leg in legs}) == 3  # a fresh multisig address each

    ok(config, "session", "sign", s["id"], "--signer", "carol")
    assert ok(config, "session", "sign", s["id"], "--signer", "alice")["broadcast_txid"] == txid
    wait_in_mempool(net, txid)
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    paid = {o["n"]: round(o["value"] * 1e8) for o in tx["vout"]}
    assert [paid[leg["output_index"]] for leg in legs] == [200_000, 210_000, 220_000]
    net.mine(1)
    final = ok(config, "session", "status", s["id"], "--wait", "--timeout", "120")
    assert final["state"] == "confirmed"
    assert [(leg["state"], leg["close_address_ok"]) for leg in final["legs"]] == [("open", True)] * 3


def test_a_channel_refused_by_its_peer_cancels_the_whole_batch(setup) -> None:
    net, config, d = setup
    lnd1, lnd2, lnd3 = net.lnd[1:4]
    batch = d / "refused.json"
    batch.write_text(
        json.dumps(
            [
                {"node": "lnd-0", "peer": f"{lnd1.pubkey}@{lnd1.p2p_host}", "amount": 230_000},
                {"node": "lnd-0", "peer": f"{lnd2.pubkey}@{lnd2.p2p_host}", "amount": "240000sat", "private": True},
                {"node": "lnd-1", "peer": f"{lnd3.pubkey}@{lnd3.p2p_host}", "amount": 250_000, "private": True},
            ]
        )
    )
    before = set(mempool(net))
    err = fails(config, "channel", "batch", str(batch), "--fee-rate", "2", code=55)
    assert "below min chan size" in err["error"] and "nothing was broadcast" in err["error"]
    [failed] = [x for x in ok(config, "session", "list", "--all") if x["state"] == "failed"]
    assert [leg["state"] for leg in failed["legs"]] == ["cancelled"] * 3
    assert set(mempool(net)) == before and reserved(config) == 0


def test_a_peer_dropping_out_while_securing_gets_the_secured_channels_abandoned(setup) -> None:
    """Library level: the fault (lnd-1 loses lnd-2 between two securing steps) is caused for real."""
    from lndgrpc.compiled import lightning_pb2 as ln

    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.negotiate import open_channels
    from l2custody.custody.funding.records import list_sessions
    from l2custody.custody.funding.requests import channel_request
    from l2custody.errors import L2CustodyError

    net, config, d = setup
    lnd0, lnd1, lnd2 = net.lnd[:3]

    def progress(message: str) -> None:
        if message.startswith("securing lnd-1"):
            lnd1.ln.DisconnectPeer(ln.DisconnectPeerRequest(pub_key=lnd2.pubkey), timeout=30)

    requests = [
        channel_request("lnd-0", f"{lnd1.pubkey}@{lnd1.p2p_host}", 260_000, private=True),
        channel_request("lnd-0", f"{lnd2.pubkey}@{lnd2.p2p_host}", 270_000, private=True),
        channel_request("lnd-1", f"{lnd2.pubkey}@{lnd2.p2p_host}", 280_000, private=True),
    ]
    with open_custody(config, progress=progress) as ctx:
        with pytest.raises(L2CustodyError, match="nothing was broadcast"):
            open_channels(ctx, requests, fee_rate=2)
        session = list_sessions(ctx.store)[-1]
    net.connect(lnd1, lnd2)
    assert session.state.value == "failed"
    assert [leg.state.value for leg in session.legs] == ["abandoned", "abandoned", "cancelled"]
    # Each opening node forgot its channels (a peer keeps its responder-side record until it
    # times out the unfunded channel: its business, and nothing is at stake).
    opener = {"lnd-0": lnd0, "lnd-1": lnd1}
    for leg in session.legs:
        assert f"{session.txid}:{leg.output_index}" not in pending_points(opener[leg.request.node])
    assert session.txid not in mempool(net) and reserved(config) == 0


CHILD = textwrap.dedent("""
    import sys, time
    from l2custody.custody.funding.requests import channel_request
    from l2custody.custody.context import open_custody
    from l2custody.custody.funding.negotiate import open_channels

    config, peer, amount, pause_at = sys.argv[1:5]

    def progress(message):
        print(message, flush=True)
        if pause_at and message.startswith(pause_at):
            print("PAUSED", flush=True)
            time.sleep(3600)

    with open_custody(config, progress=progress) as ctx:
        session = open_channels(ctx, [channel_request("lnd-0", peer, int(amount), private=True)], fee_rate=2)
        print("SECURED", session.id, flush=True)
        time.sleep(3600)
""")


def run_until(config: Path, peer: str, amount: int, pause_at: str, marker: str) -> str:
    """Run the library in a child process, SIGKILL it once it prints ``marker``; return that line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), peer, str(amount), pause_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(marker):
                return line.strip()
        raise AssertionError(f"child ended without {marker!r}: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_session_survives_a_killed_process_and_restarted_nodes(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    line = run_until(config, f"{lnd1.pubkey}@{lnd1.p2p_host}", 290_000, "", "SECURED")
    sid = line.split()[1]
    lnd0.restart()
    lnd1.restart()
    net.connect(lnd0, lnd1)
    s = ok(config, "session", "status", sid)
    assert s["state"] == "secured" and s["legs"][0]["channel_point"] in pending_points(lnd0)
    ok(config, "session", "sign", sid, "--signer", "bob")
    done = ok(config, "session", "sign", sid, "--signer", "alice")
    assert done["broadcast_txid"] == s["txid"]
    wait_in_mempool(net, s["txid"])
    net.mine(1)
    final = ok(config, "session", "status", sid, "--wait", "--timeout", "120")
    assert final["legs"][0]["state"] == "open" and final["legs"][0]["close_address_ok"] is True


def test_a_negotiation_killed_midway_is_explained_and_aborted_cleanly(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    run_until(config, f"{lnd1.pubkey}@{lnd1.p2p_host}", 300_000, "securing", "PAUSED")
    [s] = [x for x in ok(config, "session", "list") if x["state"] == "negotiating"]
    assert reserved(config) > 0
    status = ok(config, "session", "status", s["id"])
    assert status["state"] == "negotiating"
    assert any("interrupted" in n and "session abort" in n for n in status["notes"])
    err = fails(config, "session", "broadcast", s["id"], code=60)
    assert "negotiating" in err["error"]
    aborted = ok(config, "session", "abort", s["id"])
    assert aborted["state"] == "aborted" and aborted["legs"][0]["state"] == "cancelled"
    wait_for(
        lambda: f"{s['txid']}:{s['legs'][0]['output_index']}" not in pending_points(lnd0),
        10,
        what="lnd-0 to hold nothing of the aborted session",
    )
    assert reserved(config) == 0
