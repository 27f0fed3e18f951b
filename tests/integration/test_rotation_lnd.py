"""Rotating the keys while channels stay open (issue 12), on real lnd + btcd, through the CLI.

Generation 1 (alice, bob, carol; 2-of-3) funds three channels lnd-0 -> lnd-1 in one batch:
each commits its cooperative close to a generation-1 address. `wallet rotate` replaces
carol with dave (generation 2). A channel opened from the multisig afterwards, and one
the peer opens that `node guard` accepts, commit generation-2 addresses (lnd says so).
One generation-1 channel closes cooperatively: the coin lands in generation 1, `watch`
recognises it, prepares the migration PSBT and alerts; alice and bob (generation 1's
quorum) sign it and it lands in generation 2. `report` then shows generation 1's
remaining exposure (two channels) and generation 2's balance; a restart of lnd and new
l2custody processes show the same. The oracles are lnd (committed close addresses),
btcd (the closing and migration transactions) and the wallet's own chain scan.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from regtest import Network, wait_for
from regtest.lightning import channel_point_str, find_channel
from regtest.lnd import RPC_TIMEOUT
from tests.support.cli_runner import L2CUSTODY, ok, run
from tests.support.funding import fund, wait_in_mempool
from tests.support.lnd_custody import make_setup, probe, tx_outputs
from tests.support.watch_lnd import Hook, audit, set_keys

pytestmark = pytest.mark.integration


def new_signer(directory: Path, name: str) -> tuple[Path, str]:
    """A new cosigner: a fresh seed in a key file (0600) and its account key."""
    from embit import bip32
    from embit.networks import NETWORKS

    root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS["regtest"]["xprv"])
    path = directory / f"{name}.key"
    path.write_text(root.to_base58() + "\n")
    path.chmod(0o600)
    account = root.derive("m/48h/1h/0h/2h").to_public()
    return path, f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}"


def report(config: Path) -> dict[str, Any]:
    """`report --json` (it exits 1 while a check fails: the exposure is one)."""
    result = run(config, "report", json_out=True)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def generations(config: Path) -> dict[int, dict[str, Any]]:
    return {g["generation"]: g for g in report(config)["generations"]}


def views(config: Path) -> dict[str, dict[str, Any]]:
    return {v["channel_point"]: v for v in ok(config, "channel", "list", "--no-closed")}


def watch_once(config: Path) -> subprocess.CompletedProcess[str]:
    """One `l2custody watch --once` round in a new process."""
    done = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "watch", "--once"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def migrations(config: Path) -> list[dict[str, Any]]:
    return [p for p in ok(config, "psbt", "list") if p["kind"] == "migrate"]


@pytest.fixture(scope="module")
def world(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Any:
    net = network
    d = tmp_path_factory.mktemp("rotation")
    setup = make_setup(net, d)  # alice, bob, carol: 2-of-3; lnd-0 registered
    hook = Hook()
    set_keys(setup.config, {"sweep_fee_rate": "2", "webhook_url": json.dumps(hook.url)})
    fund(net, setup.config, (1_000_000,))
    net.connect(net.lnd[0], net.lnd[1])
    state: dict[str, Any] = {"net": net, "config": setup.config, "dir": d, "hook": hook}
    yield state
    hook.server.shutdown()


def test_three_channels_commit_to_generation_1_and_the_keys_rotate(world: Any) -> None:
    net, config, d = world["net"], world["config"], world["dir"]
    lnd0, lnd1 = net.lnd[:2]
    batch = d / "batch.csv"
    peer = f"{lnd1.pubkey}@{lnd1.p2p_host}"
    batch.write_text(
        f"node,peer,amount,private\nlnd-0,{peer},200000,no\nlnd-0,{peer},210000,no\nlnd-0,{peer},220000,no\n"
    )
    s = ok(config, "channel", "batch", str(batch), "--fee-rate", "2")
    ok(config, "session", "sign", s["id"], "--signer", "alice")
    ok(config, "session", "sign", s["id"], "--signer", "carol")
    wait_in_mempool(net, s["txid"])
    net.mine(1)
    final = ok(config, "session", "status", s["id"], "--wait", "--timeout", "120")
    assert [(leg["state"], leg["close_address_ok"]) for leg in final["legs"]] == [("open", True)] * 3
    old = [leg["channel_point"] for leg in final["legs"]]
    world["old"] = old

    dave_file, dave = new_signer(d, "dave")
    out = ok(config, "wallet", "rotate", "--remove", "carol", "--add", dave, "--reason", "carol left", "--yes")
    assert out["generation"] == 2
    ok(config, "signer", "add", "dave", "--software", str(dave_file))
    listed = views(config)
    for cp in old:  # lnd reports the address each channel committed: generation 1's, now old
        assert listed[cp]["close_address"] == find_channel(lnd0, cp).close_address
        assert (listed[cp]["close_generation"], listed[cp]["close_generation_current"]) == (1, False)
    human = run(config, "channel", "list", "--no-closed").stdout
    assert human.count("1 (old)") == 3 and "older wallet generation" in human

    # generation 1's change moves to generation 2 by hand (`wallet migrate`, its own quorum signs)
    [move] = ok(config, "wallet", "migrate", "--fee-rate", "2", "--out-dir", str(d))
    assert (move["from_generation"], move["to_generation"]) == (1, 2)
    for signer in ("alice", "bob"):
        ok(config, "psbt", "sign", move["file"], "--signer", signer)
    txid = ok(config, "psbt", "broadcast", move["file"])["txid"]
    wait_in_mempool(net, txid)
    net.mine(1)
    ok(config, "wallet", "sync")
    one, two = generations(config).values()
    assert (one["coins"], one["channels"], two["coins"], two["channels"]) == (0, 3, 1, 0)
    assert one["signers"] == ["alice", "bob"] and set(two["signers"]) == {"alice", "bob", "dave"}


def test_new_channels_commit_to_generation_2_outbound_and_inbound(world: Any) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    net, config = world["net"], world["config"]
    lnd0, lnd1 = net.lnd[:2]
    s = ok(config, "channel", "open", lnd0.name, f"{lnd1.pubkey}@{lnd1.p2p_host}", "230000", "--fee-rate", "2")
    ok(config, "session", "sign", s["id"], "--signer", "alice")
    ok(config, "session", "sign", s["id"], "--signer", "dave")  # generation 2's key
    wait_in_mempool(net, s["txid"])
    net.mine(1)
    final = ok(config, "session", "status", s["id"], "--wait", "--timeout", "120")
    outbound = final["legs"][0]["channel_point"]
    assert final["legs"][0]["state"] == "open"

    guard = subprocess.Popen(
        [str(L2CUSTODY), "--config", str(config), "node", "guard", lnd0.name, "--min-size", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: "channel too small" in (probe(lnd1, lnd0, 50_000) or ""), 60, what="the guard to answer")
        point = lnd1.ln.OpenChannelSync(
            ln.OpenChannelRequest(
                node_pubkey=bytes.fromhex(lnd0.pubkey), local_funding_amount=250_000, push_sat=30_000, sat_per_vbyte=2
            ),
            timeout=RPC_TIMEOUT,
        )
        inbound = channel_point_str(point)
        wait_in_mempool(net, inbound.split(":")[0])
        net.mine(1)
        wait_for(lambda: (c := find_channel(lnd0, inbound)) is not None and c.active, 60, what="the inbound channel")
    finally:
        guard.send_signal(signal.SIGTERM)
        _out, err = guard.communicate(timeout=30)
    assert guard.returncode == 0, err
    listed = views(config)
    for cp in (outbound, inbound):  # the upfront shutdown address lnd reports is a generation-2 address
        assert listed[cp]["close_address"] == find_channel(lnd0, cp).close_address
        assert (listed[cp]["close_generation"], listed[cp]["close_generation_current"]) == (2, True)
    assert listed[inbound]["initiator"] == "remote"
    world["new"] = [outbound, inbound]


def test_a_cooperative_close_lands_in_generation_1_and_watch_prepares_its_migration(world: Any) -> None:
    net, config, hook = world["net"], world["config"], world["hook"]
    cp = world["old"][0]
    closed = ok(config, "channel", "close", cp, "--fee-rate", "2")
    assert closed["address_source"] == "upfront"
    wait_in_mempool(net, closed["closing_txid"])
    net.mine(1)
    status = ok(config, "channel", "close-status", cp)
    assert status["state"] == "verified", status
    coin, value = status["wallet_utxo"], status["value"]
    assert dict(tx_outputs(net, closed["closing_txid"]))[closed["record"]["expected_address"]] == value
    assert generations(config)[1]["coins"] == 1  # in generation 1: the address the channel committed

    done = watch_once(config)
    assert "ALERT migration-psbt" in done.stderr
    [alert] = hook.of("migration-psbt")
    details = alert["details"]
    assert (details["from_generation"], details["to_generation"], details["coins"]) == (1, 2, [coin])
    assert details["amount_sat"] == value and details["signers"] == ["alice", "bob"] and details["threshold"] == 2
    file = Path(details["file"])
    assert file.parent == world["dir"] / "data" / "migrations" and file.stat().st_mode & 0o777 == 0o600
    assert details["session"] in alert["message"] and str(file) in alert["message"]
    [seen] = [e for e in audit(config, "old-generation-coin") if e.subject == coin]
    assert seen.actor == "watch" and seen.details["session"] == details["session"]

    watch_once(config)  # a new process again: the same coin gets no second session
    assert [m["id"] for m in migrations(config) if m["state"] == "verified"] == [details["session"]]
    assert len(hook.of("migration-psbt")) == 1
    world["migration"] = details


def test_generation_1s_quorum_signs_and_the_coin_reaches_generation_2(world: Any) -> None:
    net, config, m = world["net"], world["config"], world["migration"]
    before = generations(config)[2]["balance_sat"]
    ok(config, "psbt", "sign", m["file"], "--signer", "alice")
    assert "holds none of the keys" in run(config, "psbt", "sign", m["file"], "--signer", "dave", json_out=True).stdout
    ok(config, "psbt", "sign", m["file"], "--signer", "bob")
    txid = ok(config, "psbt", "broadcast", m["file"])["txid"]
    wait_in_mempool(net, txid)
    paid = dict(tx_outputs(net, txid))
    assert paid == {m["address"]: m["amount_sat"] - m["fee_sat"]}  # btcd: all of it to generation 2
    net.mine(1)
    ok(config, "wallet", "sync")

    one, two = generations(config).values()
    assert (one["channels"], one["coins"], one["balance_sat"], one["exposed"]) == (2, 0, 0, True)
    assert one["channel_local_sat"] == sum(find_channel(net.lnd[0], cp).local_balance for cp in world["old"][1:])
    assert (two["channels"], two["balance_sat"]) == (2, before + m["amount_sat"] - m["fee_sat"])
    assert two["balance_sat"] == ok(config, "wallet", "balance")["confirmed"]
    out = report(config)
    kinds = {f["kind"] for f in out["findings"] if f["check"] == "generation-exposure"}
    assert kinds == {"channels"}  # no coins left in generation 1, two channels still pay it
    assert [m2["state"] for m2 in migrations(config) if m2["id"] == m["session"]] == ["confirmed"]


def test_the_exposure_survives_a_restart_of_lnd_and_of_l2custody(world: Any) -> None:
    net, config = world["net"], world["config"]
    lnd0, lnd1 = net.lnd[:2]
    fields = ("state", "capacity_sat", "local_balance_sat", "close_address", "close_generation")
    before_gens, before_views = generations(config), views(config)
    lnd0.restart()
    net.connect(lnd0, lnd1)
    live = world["old"][1:] + world["new"]
    wait_for(lambda: all((c := find_channel(lnd0, cp)) is not None and c.active for cp in live), 90, what="channels")
    watch_once(config)  # new processes from here on: nothing in memory survives
    after_views = views(config)
    assert {cp: [v[f] for f in fields] for cp, v in after_views.items()} == {
        cp: [v[f] for f in fields] for cp, v in before_views.items()
    }
    assert generations(config) == before_gens
    assert len(migrations(config)) == 2 and len(world["hook"].of("migration-psbt")) == 1
