"""`l2custody watch` and `report` on real lnd + btcd: one channel's whole life.

A real `l2custody watch` process follows lnd-0 ("ours"; lnd-1 is the peer,
someone else's node) while a channel is opened from the 2-of-3 multisig
through a funding session, used for a payment, and force closed by the
peer. The oracles are lnd (channel states, local balances, limbo, wallet
balance, VerifyChanBackup) and btcd (mempool, transactions); the alert
webhook is a local HTTP server. Along the way: lnd-0 stops (unreachable
alert) and comes back (event stream resubscribed); watch is SIGKILLed
before the peer's force close and reconciles on restart (the transition
and its alert are not lost); auto-sweep brings the matured proceeds into
the multisig; SIGTERM stops it cleanly. Finally `report` flags channels
opened with lnd's own wallet (foreign close address, none committed) and
exits non-zero.

One fault is simulated, named as such: a process dying between saving a
session as BROADCASTING and sending the transaction (watch must
rebroadcast it).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from regtest import Network, confirmed_balance, wait_for
from regtest.lightning import find_channel, pay
from regtest.lightning import open_channel as lnd_open_channel
from regtest.lnd import RPC_TIMEOUT, LndNode
from tests.support.cli_runner import L2CUSTODY, ok, run
from tests.support.funding import fund, wait_in_mempool
from tests.support.lnd_custody import make_setup, open_channel, tx_outputs
from tests.support.watch_lnd import Hook, Watch, audit, set_keys, transitions

pytestmark = pytest.mark.integration


def lnd_wallet(node: LndNode) -> int:
    from lndgrpc.compiled import lightning_pb2 as ln

    return int(node.ln.WalletBalance(ln.WalletBalanceRequest(), timeout=RPC_TIMEOUT).total_balance)


def lnd_pending(node: LndNode, cp: str) -> Any:
    from lndgrpc.compiled import lightning_pb2 as ln

    resp = node.ln.PendingChannels(ln.PendingChannelsRequest(), timeout=RPC_TIMEOUT)
    for group in (resp.pending_open_channels, resp.waiting_close_channels, resp.pending_force_closing_channels):
        for p in group:
            if p.channel.channel_point == cp:
                return p
    return None


def lnd_force_closing(node: LndNode, cp: str) -> Any:
    from lndgrpc.compiled import lightning_pb2 as ln

    resp = node.ln.PendingChannels(ln.PendingChannelsRequest(), timeout=RPC_TIMEOUT)
    return next((p for p in resp.pending_force_closing_channels if p.channel.channel_point == cp), None)


def multisig_total(config: Path) -> int:
    b = ok(config, "wallet", "balance")
    return int(b["confirmed"] + b["unconfirmed"])


# --- the world ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Any:
    net = network
    d = tmp_path_factory.mktemp("watch")
    setup = make_setup(net, d)
    config = setup.config
    fund(net, config, (3_000_000, 2_000_000))
    hook = Hook()
    set_keys(
        config,
        {
            "poll_seconds": "2",
            "auto_sweep": "true",
            "sweep_threshold_sat": "100000",
            "sweep_keep_sat": "50000",
            "sweep_fee_rate": "2",
            "backup_dir": json.dumps(str(d / "backups")),
            "unreachable_alert_seconds": "2",
            "webhook_url": json.dumps(hook.url),
        },
    )
    # lnd-0's wallet starts with 1 BTC: sweep it down to 50,000 sat first, so that what watch
    # sweeps later is the force-close proceeds
    lnd0 = net.lnd[0]
    swept = ok(config, "sweep", lnd0.name, "--keep", "50000", "--fee-rate", "2")
    wait_in_mempool(net, swept["txid"])
    net.mine(1)
    wait_for(lambda: lnd_wallet(lnd0) == swept["kept_sat"], 30, what="lnd-0 to keep 50,000 sat")
    ok(config, "wallet", "sync")
    watch = Watch(config, d / "watch.log")
    state: dict[str, Any] = {
        "net": net,
        "config": config,
        "dir": d,
        "hook": hook,
        "watch": watch,
        "kept": swept["kept_sat"],
    }
    yield state
    if watch.proc is not None and watch.proc.poll() is None:
        watch.proc.kill()
    hook.server.shutdown()


# --- the life of a channel -------------------------------------------------------------------------
def test_watch_starts_and_reports_the_balances(world: Any) -> None:
    net, config, watch = world["net"], world["config"], world["watch"]
    lnd0 = net.lnd[0]
    watch.start()
    assert "watching wallet treasury and 1 node(s) lnd-0" in watch.text() and "auto-sweep ON" in watch.text()
    m = watch.metrics()
    assert m['l2custody_node_up{node="lnd-0"}'] == 1 and m["l2custody_custody_violations"] == 0
    assert watch.place("multisig") == multisig_total(config) > 5_000_000  # the coins + lnd-0's first sweep
    assert watch.place("hot_wallet") == lnd_wallet(lnd0) == world["kept"] >= 50_000
    assert watch.place("channels_local") == 0 and watch.place("limbo") == 0
    [baseline] = audit(config, "watch-baseline")
    assert baseline.subject == "node lnd-0" and baseline.details["channels"] == 0


def test_a_channel_opened_from_the_multisig_is_followed_and_its_broadcast_resumed(world: Any) -> None:
    net, config, watch, d = world["net"], world["config"], world["watch"], world["dir"]
    lnd0, lnd1 = net.lnd[:2]
    s = ok(config, "channel", "open", lnd0.name, f"{lnd1.pubkey}@{lnd1.p2p_host}", "500000", "--fee-rate", "2")
    sid, cp = s["id"], s["legs"][0]["channel_point"]
    world["cp"], world["sid"] = cp, sid
    wait_for(
        lambda: (cp, None, "pending_open") in [t[:3] for t in transitions(config, cp)],
        30,
        what="watch to record the pending open",
    )
    wait_for(
        lambda: watch.place("pending_open") == lnd_pending(lnd0, cp).channel.local_balance,
        30,
        what="the pending_open balance to match lnd",
    )
    report = ok(config, "report")
    [pending] = report["nodes"][0]["pending_opens"]
    assert pending["session_id"] == sid and pending["blocks_left"] == s["blocks_left"] - (
        net.chain.height() - s["tip_height"]
    )

    ok(config, "session", "sign", sid, "--signer", "alice", "--no-broadcast")
    assert ok(config, "session", "sign", sid, "--signer", "bob", "--no-broadcast")["complete"]
    _simulate_crash_before_the_broadcast(config, sid)
    net.mine(1)  # a new block: watch follows the sessions and finds the transaction nowhere
    wait_in_mempool(net, s["txid"])
    rebroadcast = [e for e in audit(config, "funding-broadcasting") if e.subject == sid]
    assert rebroadcast[-1].actor == "watch" and rebroadcast[-1].details["rebroadcast"] is True
    net.mine(1)

    wait_for(lambda: (find_channel(lnd0, cp) or _Inactive()).active, 60, what="the channel to be active")
    wait_for(
        lambda: ok(config, "session", "show", sid)["legs"][0]["state"] == "open",
        60,
        what="watch to follow the session to open",
    )
    assert ok(config, "session", "show", sid)["legs"][0]["close_address_ok"] is True
    wait_for(
        lambda: watch.place("channels_local") == find_channel(lnd0, cp).local_balance,
        30,
        what="channels_local to match lnd",
    )
    ok(config, "wallet", "sync")
    wait_for(lambda: watch.place("multisig") == multisig_total(config), 30, what="the multisig balance")
    assert [t[1:3] for t in transitions(config, cp)] == [(None, "pending_open"), ("pending_open", "open")]
    assert watch.metrics()['l2custody_channels{node="lnd-0",state="open"}'] == 1
    # the backup lnd exported after the open: written 0600, and lnd itself accepts it
    backup = d / "backups" / f"{lnd0.name}.channel-backup"
    wait_for(
        lambda: any(e.details.get("path") == str(backup) for e in audit(config, "backup-written")[1:]),
        30,
        what="a backup written after the open",
    )
    assert backup.stat().st_mode & 0o777 == 0o600
    _verify_backup(lnd0, backup.read_bytes())
    assert ok(config, "report")["ok"] is True


class _Inactive:
    active = False


def _simulate_crash_before_the_broadcast(config: Path, sid: str) -> None:
    """SIMULATED FAULT: what `session broadcast` writes before it sends the transaction,
    as if the process died right after (the broadcast never happened)."""
    from l2custody.config import load_config
    from l2custody.custody.funding.records import load_session, save_session
    from l2custody.custody.funding.session import SessionState
    from l2custody.store import Store

    with Store.open(load_config(config).store_path) as store:
        session = load_session(store, sid)
        tip = store.scanned_tip()
        with store.transaction():
            save_session(store, session.with_state(SessionState.BROADCASTING, broadcast_height=tip[0] if tip else 0))
            store.audit("test", "simulated-crash", sid, {"what": "died after saving BROADCASTING, before sending"})


def _verify_backup(node: LndNode, data: bytes) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    node.ln.VerifyChanBackup(
        ln.ChanBackupSnapshot(multi_chan_backup=ln.MultiChanBackup(multi_chan_backup=data)), timeout=RPC_TIMEOUT
    )


def test_a_payment_moves_the_local_balance(world: Any) -> None:
    net, watch, cp = world["net"], world["watch"], world["cp"]
    lnd0, lnd1 = net.lnd[:2]
    before = find_channel(lnd0, cp).local_balance
    wait_for(lambda: pay(lnd0, lnd1, 20_000).status == "SUCCEEDED", 60, what="a payment over the channel")
    after = find_channel(lnd0, cp).local_balance
    assert after < before - 20_000 + 1
    wait_for(lambda: watch.place("channels_local") == after, 30, what="channels_local to follow the payment")


def test_an_unreachable_node_alerts_and_the_event_stream_comes_back(world: Any) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    net, config, watch, hook, cp = world["net"], world["config"], world["watch"], world["hook"], world["cp"]
    lnd0, lnd1 = net.lnd[:2]
    local_before = watch.place("channels_local")
    lnd0.stop()
    wait_for(lambda: hook.of("node-unreachable"), 60, what="the node-unreachable alert")
    alert = hook.of("node-unreachable")[0]
    assert alert["node"] == "lnd-0" and "l2custody node check lnd-0" in alert["message"], watch.tail()
    assert watch.metrics()['l2custody_node_up{node="lnd-0"}'] == 0, watch.tail()
    assert watch.place("channels_local") == local_before, watch.tail()  # the last figures read
    lnd0.launch(new_ports=False)
    lnd0.wait_ready()
    wait_for(lambda: watch.metrics()['l2custody_node_up{node="lnd-0"}'] == 1, 60, what="lnd-0 read again")
    assert {e.subject for e in audit(config, "node-reachable")} == {"node lnd-0"}, watch.tail()
    assert "channel events of lnd-0" in watch.text() and "reconnecting in" in watch.text(), watch.tail()
    # the event stream is followed again: a peer disconnection is an event lnd sends at once
    wait_for(lambda: "following channel events again" in watch.text(), 120, what="the event stream to be resubscribed")
    poked = time.time()

    def event_reached_watch() -> bool:
        if watch.metrics()['l2custody_node_last_event_timestamp_seconds{node="lnd-0"}'] > poked:
            return True
        if (find_channel(lnd0, cp) or _Inactive()).active:  # lnd reconnects its channel peers by itself
            lnd1.ln.DisconnectPeer(ln.DisconnectPeerRequest(pub_key=lnd0.pubkey), timeout=RPC_TIMEOUT)
        return False

    wait_for(event_reached_watch, 60, what="lnd-0's channel event (peer disconnected) to reach watch")
    wait_for(lambda: (find_channel(lnd0, cp) or _Inactive()).active, 60, what="the channel active again")
    wait_for(lambda: _activity(config, cp)[-1:] == [("inactive", "active")], 30, what="watch to see it active")


def _activity(config: Path, cp: str) -> list[tuple[str, str]]:
    return [(e.details["from"], e.details["to"]) for e in audit(config, "channel-activity") if e.subject == cp]


def test_a_force_close_while_watch_is_killed_is_reconciled_and_alerted(world: Any) -> None:
    net, config, watch, hook, cp = world["net"], world["config"], world["watch"], world["hook"], world["cp"]
    lnd0, lnd1 = net.lnd[:2]
    watch.kill()
    closing_txid = _peer_force_closes(lnd1, cp)
    wait_in_mempool(net, closing_txid)
    net.mine(1)  # the commitment confirms: lnd-0 sees the peer's force close while watch is down
    wait_for(
        lambda: lnd_force_closing(lnd0, cp) is not None, 60, what="lnd-0 to see the force close with funds in limbo"
    )
    watch.start()
    moves = transitions(config, cp)
    after_kill = [m for m in moves if m[3] == "start"]
    assert after_kill and after_kill[0][1] == "open" and after_kill[0][2] in ("force_closing", "closed"), moves
    wait_for(lambda: hook.of("force-close"), 30, what="the force-close alert at the webhook")
    [alert] = hook.of("force-close")
    assert alert["subject"] == cp and alert["severity"] == "critical" and closing_txid in alert["message"]
    assert alert["details"]["closing_txid"] == closing_txid
    # nothing mined since: still time-locked, and the limbo metric is lnd's figure
    limbo = lnd_force_closing(lnd0, cp).limbo_balance
    assert limbo > 300_000
    wait_for(lambda: watch.place("limbo") == limbo, 30, what="limbo = lnd's figure")
    assert watch.place("channels_local") == 0
    # report: the pending close with lnd's limbo and maturity
    force = lnd_force_closing(lnd0, cp)
    shown = json.loads(run(config, "report", json_out=True).stdout)
    [pending] = shown["nodes"][0]["pending_closes"]
    assert (pending["channel_point"], pending["state"], pending["closing_txid"]) == (cp, "force_closing", closing_txid)
    assert pending["limbo_sat"] == force.limbo_balance
    assert pending["maturity_height"] == (force.maturity_height or None)
    assert pending["blocks_til_maturity"] == force.blocks_til_maturity
    # no transition recorded twice
    pairs = [m[1:3] for m in transitions(config, cp)]
    assert len(pairs) == len(set(pairs)), pairs


def _peer_force_closes(node: LndNode, cp: str) -> str:
    from lndgrpc.compiled import lightning_pb2 as ln

    txid, index = cp.split(":")
    updates = node.ln.CloseChannel(
        ln.CloseChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)), force=True
        ),
        timeout=RPC_TIMEOUT,
    )
    for update in updates:
        if update.HasField("close_pending"):
            updates.cancel()
            return update.close_pending.txid[::-1].hex()
    raise AssertionError("no close_pending from the peer")


def test_auto_sweep_moves_the_matured_proceeds_to_the_multisig(world: Any) -> None:
    net, config, watch, hook, cp = world["net"], world["config"], world["watch"], world["hook"], world["cp"]
    lnd0 = net.lnd[0]

    def resolved() -> bool:
        if hook.of("auto-sweep"):
            return True
        if lnd_pending(lnd0, cp) is not None or confirmed_balance(lnd0) <= world["kept"]:
            net.mine(1)  # lnd's sweep of our output into its wallet, then its confirmation
        return False

    wait_for(resolved, 120, what="watch to sweep the proceeds")
    [alert] = hook.of("auto-sweep")
    sweep = alert["details"]
    paid = dict(tx_outputs(net, sweep["txid"]))
    assert paid[sweep["address"]] == sweep["amount_sat"] > 300_000  # btcd: the sweep pays the multisig
    assert sweep["kept_sat"] >= 50_000
    net.mine(1)
    wait_for(
        lambda: ok(config, "sweep-status", lnd0.name)[-1]["state"] == "verified",
        60,
        what="the sweep to be verified by the wallet",
    )
    wait_for(lambda: watch.place("hot_wallet") == lnd_wallet(lnd0), 30, what="hot_wallet = lnd's wallet")
    wait_for(lambda: watch.place("multisig") == multisig_total(config), 30, what="multisig = the wallet")
    assert lnd_wallet(lnd0) == sweep["kept_sat"]
    assert watch.place("limbo") == 0 and watch.place("channels_local") == 0
    wait_for(
        lambda: transitions(config, cp)[-1][1:3] == ("force_closing", "closed"),
        30,
        what="watch to record the channel closed",
    )
    m = watch.metrics()
    assert m['l2custody_channels{node="lnd-0",state="closed"}'] == 1 and m["l2custody_custody_violations"] == 0


def test_every_transition_is_in_the_audit_log_and_sigterm_stops_cleanly(world: Any) -> None:
    config, watch, cp = world["config"], world["watch"], world["cp"]
    assert [m[1:3] for m in transitions(config, cp)] == [
        (None, "pending_open"),
        ("pending_open", "open"),
        ("open", "force_closing"),
        ("force_closing", "closed"),
    ]
    activity = _activity(config, cp)
    assert ("active", "inactive") in activity and ("inactive", "active") in activity  # lnd-0 down, the peer away
    assert any(m[3] == "event" for m in transitions(config)), "no transition was woken by an lnd event"
    entries = [e for e in audit(config, "channel-state") if e.subject == cp]
    for e in entries:  # the node's own identifiers, with a timestamp
        assert e.ts > 0 and e.details["node"] == "lnd-0" and e.details["peer"] == world["net"].lnd[1].pubkey
    assert entries[-1].details["short_channel_id"] and entries[-1].details["close_type"] == "remote_force"
    assert watch.terminate() == 0
    assert watch.text().rstrip().endswith("stopped") and "received SIGTERM" in watch.text()


# --- report: channels opened outside l2custody -------------------------------------------------------
def test_report_flags_channels_opened_outside_l2custody(world: Any) -> None:
    net, config, hook = world["net"], world["config"], world["hook"]
    lnd0, lnd1 = net.lnd[:2]
    clean = run(config, "report")
    assert clean.exit_code == 0, clean.output
    assert "All checks passed." in clean.stdout
    net.fund_node(lnd0, 2_000_000)
    foreign_cp = open_channel(net, lnd0, lnd1, 400_000, close_address=lnd0.new_address())
    bare_cp = lnd_open_channel(net, lnd0, lnd1, 300_000)
    human = run(config, "report", "--channels")
    assert human.exit_code == 1, human.output
    assert "FAIL  close-address (2)" in human.stdout and "FAIL  funding-source (2)" in human.stdout
    assert f"FOREIGN {find_channel(lnd0, foreign_cp).close_address}" in human.stdout
    assert "NONE COMMITTED" in human.stdout
    out = run(config, "report", json_out=True)
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    found = {(f["check"], f["kind"], f["subject"]) for f in data["findings"]}
    assert ("close-address", "foreign", foreign_cp) in found and ("close-address", "missing", bare_cp) in found
    assert ("funding-source", "foreign", foreign_cp) in found and ("funding-source", "foreign", bare_cp) in found
    # watch --once alerts on them (once)
    once = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "watch", "--once"], capture_output=True, text=True, timeout=120
    )
    assert once.returncode == 0, once.stderr
    assert {"foreign-close-address", "no-close-address", "foreign-funding"} <= set(hook.kinds())
    [foreign] = hook.of("foreign-close-address")
    assert foreign["subject"] == foreign_cp
