"""`l2custody watch` following a Core Lightning node (real lightningd + lnd + bitcoind).

cln-0 is ours (registered), lnd-0 is the peer. With auto-sweep off (the
default) watch logs and audits the dry run of the sweep cln-0's funded
wallet is due, and alerts on it; a channel funded from the multisig on
cln-0 is followed from pending to open (the CLN backend polls lightningd),
its static channel backup written 0600; the peer force closes and the
webhook hears it. lightningd's own listings and bitcoind are the oracles.
Skipped, naming what is missing, without lightningd/bitcoind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regtest import Network, wait_for
from tests.support.cli_runner import init_on_chain, ok, run
from tests.support.funding import wait_in_mempool
from tests.support.watch_lnd import Hook, Watch, set_keys, transitions

pytestmark = [pytest.mark.integration, pytest.mark.cln]


@pytest.fixture(scope="module")
def world(cln_network: Network, tmp_path_factory: pytest.TempPathFactory) -> Any:
    net = cln_network
    d = tmp_path_factory.mktemp("watch-cln")
    config = init_on_chain(d, net.chain)
    keys = [
        ok(config, "signer", "add", n, "--software", str(d / f"{n}.key"), "--generate")["key"]
        for n in ("alice", "bob", "carol")
    ]
    ok(config, "wallet", "create", "-k", "2", *sum((["--key", k] for k in keys), []))
    cln = net.cln[0]
    ok(config, "node", "add", cln.name, "--cln", "--rpc-file", str(cln.rpc_file))
    net.fund_addresses([(ok(config, "wallet", "address")["address"], 2_000_000)])
    net.mine(1)
    ok(config, "wallet", "sync")
    hook = Hook()
    set_keys(
        config, {"poll_seconds": "1", "backup_dir": json.dumps(str(d / "backups")), "webhook_url": json.dumps(hook.url)}
    )
    watch = Watch(config, d / "watch.log")
    yield {"net": net, "config": config, "dir": d, "hook": hook, "watch": watch}
    if watch.proc is not None and watch.proc.poll() is None:
        watch.proc.kill()
    hook.server.shutdown()


def cln_channel(net: Network, point: str) -> dict[str, Any] | None:
    txid, vout = point.split(":")
    for e in net.cln[0].rpc.listpeerchannels()["channels"]:
        if e.get("funding_txid") == txid and e.get("funding_outnum") == int(vout):
            return dict(e)
    return None


def cln_wallet(net: Network) -> int:
    outputs = net.cln[0].rpc.listfunds()["outputs"]
    return sum(int(o["amount_msat"]) // 1000 for o in outputs if o["status"] in ("confirmed", "unconfirmed"))


def test_a_due_sweep_is_only_a_logged_dry_run_by_default(world: Any) -> None:
    net, config, watch, hook = world["net"], world["config"], world["watch"], world["hook"]
    before = cln_wallet(net)
    watch.start()
    assert "auto-sweep off (dry run logged)" in watch.text()
    wait_for(lambda: hook.of("hot-wallet"), 30, what="the hot-wallet alert")
    assert "l2custody sweep cln-0" in hook.of("hot-wallet")[0]["message"]
    wait_for(lambda: "dry run: would send" in watch.text(), 30, what="the dry run in the log")
    [dry] = [e for e in _audit(config, "sweep-dry-run")]
    assert dry.subject == "node cln-0" and dry.details["dry_run"] is True
    assert cln_wallet(net) == before and ok(config, "sweep-status") == []  # nothing moved
    assert watch.place("hot_wallet") == before
    report = run(config, "report")
    assert report.exit_code == 1 and "FAIL  hot-wallet (1)" in report.stdout


def test_a_multisig_funded_cln_channel_is_followed_and_backed_up(world: Any) -> None:
    net, config, watch, d = world["net"], world["config"], world["watch"], world["dir"]
    cln, lnd = net.cln[0], net.lnd[0]
    s = ok(config, "channel", "open", cln.name, f"{lnd.pubkey}@{lnd.p2p_host}", "300000", "--fee-rate", "2")
    point = s["legs"][0]["channel_point"]
    world["point"] = point
    # secured and withheld: pending on cln-0 until the signers are done (watch polls lightningd)
    wait_for(lambda: transitions(config, point) != [], 30, what="watch to see the pending channel")
    assert [t[1:3] for t in transitions(config, point)] == [(None, "pending_open")]
    ok(config, "session", "sign", s["id"], "--signer", "alice")
    done = ok(config, "session", "sign", s["id"], "--signer", "carol")
    assert done["broadcast_txid"] == s["txid"]
    wait_in_mempool(net, s["txid"])
    net.mine(1)
    wait_for(
        lambda: [t[1:3] for t in transitions(config, point)][-1:] == [("pending_open", "open")],
        90,
        what="watch to record the CLN channel open",
    )
    assert [t[1:3] for t in transitions(config, point)] == [(None, "pending_open"), ("pending_open", "open")]
    entry = cln_channel(net, point)
    assert entry is not None
    wait_for(
        lambda: watch.place("channels_local") == int(cln_channel(net, point)["to_us_msat"]) // 1000,
        30,
        what="channels_local = lightningd's to_us",
    )
    backup = d / "backups" / "cln-0.channel-backup"
    wait_for(
        lambda: backup.exists() and len(json.loads(backup.read_text())["scb"]) == 1,
        30,
        what="the static backup with the channel",
    )
    assert backup.stat().st_mode & 0o777 == 0o600
    assert json.loads(backup.read_text())["scb"] == cln.rpc.staticbackup()["scb"]  # lightningd's own
    # watch's session upkeep checks the committed close address in its own round, which may
    # come after the round that wrote the backup
    wait_for(
        lambda: ok(config, "session", "show", s["id"])["legs"][0]["close_address_ok"] is not None,
        60,
        what="watch to check the close address lightningd committed",
    )
    assert ok(config, "session", "show", s["id"])["legs"][0]["close_address_ok"] is True


def test_a_force_close_by_the_peer_is_alerted(world: Any) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    from regtest.lnd import RPC_TIMEOUT

    net, config, hook, point = world["net"], world["config"], world["hook"], world["point"]
    lnd = net.lnd[0]
    txid, vout = point.split(":")
    updates = lnd.ln.CloseChannel(
        ln.CloseChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(vout)), force=True
        ),
        timeout=RPC_TIMEOUT,
    )
    closing = next(u for u in updates if u.HasField("close_pending")).close_pending.txid[::-1].hex()
    updates.cancel()
    wait_in_mempool(net, closing)
    net.mine(1)
    wait_for(lambda: hook.of("force-close"), 90, what="the force-close alert")
    [alert] = hook.of("force-close")
    assert alert["subject"] == point and alert["node"] == "cln-0" and alert["severity"] == "critical"
    # the CLN backend names the closing tx of our own commitments only (listpeerchannels' scratch_txid)
    assert alert["details"]["closing_txid"] in (None, closing)
    moves = [t[1:3] for t in transitions(config, point)]
    assert moves[2][0] == "open" and moves[2][1] in ("closing", "force_closing", "closed"), moves
    assert world["watch"].terminate() == 0


def _audit(config: Path, action: str) -> list[Any]:
    from l2custody.config import load_config
    from l2custody.store import Store

    with Store.open(load_config(config).store_path) as store:
        return [e for e in store.audit_log() if e.action == action]
