"""`node enforce` on real lnd 0.20.1: lnd asks l2custody before it runs a caveat macaroon's request.

lnd-0 runs with rpcmiddleware.enable (the harness default). l2custody
registers it twice: as ``lnd-0`` with admin.macaroon (the break-glass key the
enforcer registers with) and as ``ops`` with a macaroon from `node macaroon`
(caveat ``lnd-custom l2custody ops``), which every custody flow here uses.

- enforcer down: lnd refuses the caveat macaroon outright (CloseChannel,
  SendCoins, PublishTransaction); with rpcmiddleware.addmandatory it refuses
  every request, admin's too.
- enforcer up: foreign destinations are refused with the rule in lnd's error;
  the custody flows (open funded by the multisig with our close address,
  cooperative close to it, sweep of the node wallet to the multisig) pass.
- admin.macaroon spends are audited and alerted (webhook), never refused.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from l2custody.custody.enforce.service import EnforceEvent
from regtest import Network, wait_for
from regtest.lnd import RPC_TIMEOUT, LndNode
from tests.support.cli_runner import L2CUSTODY, ok, run
from tests.support.enforced import ENFORCE
from tests.support.funding import fund, wait_in_mempool
from tests.support.lnd_custody import Setup, audit_actions, make_setup, open_channel, tx_outputs
from tests.support.watch_lnd import Hook, set_keys

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ENFORCE, reason="runs its own enforcer; L2C_ENFORCE=1 puts the other suites under one"),
]

TALLY: dict[str, int] = {"attempts": 0, "refused": 0, "bypasses": 0, "false_refusals": 0}


def stubs(node: LndNode, macaroon: Path) -> tuple[Any, Any, Any, Any]:
    """Lightning and WalletKit stubs speaking with ``macaroon``."""
    from lndgrpc.compiled import lightning_pb2, lightning_pb2_grpc, walletkit_pb2, walletkit_pb2_grpc

    mac = macaroon.read_bytes().hex()
    auth = grpc.metadata_call_credentials(lambda _ctx, cb: cb((("macaroon", mac),), None))
    creds = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(node.tls_cert.read_bytes()), auth)
    ch = grpc.secure_channel(node.grpc_host, creds)
    return lightning_pb2, lightning_pb2_grpc.LightningStub(ch), walletkit_pb2, walletkit_pb2_grpc.WalletKitStub(ch)


def refused(call: Any, *needles: str) -> str:
    """Run ``call``; it must fail with lnd's error carrying every needle. Returns the details."""
    TALLY["attempts"] += 1
    with pytest.raises(grpc.RpcError) as err:
        result = call()
        if hasattr(result, "__next__"):  # server stream: the error comes with the first message
            next(result)
        TALLY["bypasses"] += 1
    details = err.value.details() or ""
    for needle in needles:
        assert needle in details, details
    TALLY["refused"] += 1
    return details


class Enforcer:
    """`node enforce` in a thread of the test process (api.enforce_node, as the CLI calls it)."""

    def __init__(self, config: Path, node: str, macaroon: Path) -> None:
        from l2custody import api

        self.events: list[EnforceEvent] = []
        self.stop = threading.Event()
        self.summary: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.summary = api.enforce_node(config, node, self.stop, macaroon=macaroon, log=self.events.append)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        wait_for(
            lambda: sum(e.kind == "registered" for e in self.events) >= 2 or self.error is not None,
            60,
            what="the enforcer and the auditor to register with lnd",
        )
        assert self.error is None, self.error

    def of(self, kind: str) -> list[EnforceEvent]:
        return [e for e in self.events if e.kind == kind]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert self.error is None, self.error


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    d = tmp_path_factory.mktemp("enforce")
    s = make_setup(network, d)
    fund(network, s.config, (3_000_000, 2_000_000))
    yield s
    print(f"\nenforce tally: {json.dumps(TALLY)}")  # noqa: T201 - the closing note's figures


@pytest.fixture(scope="module")
def hook(setup: Setup) -> Hook:
    h = Hook()
    set_keys(setup.config, {"webhook_url": json.dumps(h.url)})
    return h


@pytest.fixture(scope="module")
def caveat_mac(setup: Setup) -> Path:
    a = setup.net.lnd[0]
    out = setup.dir / "ops.macaroon"
    baked = ok(setup.config, "node", "macaroon", a.name, "--out", str(out), "--holder", "ops")
    assert baked["caveat"] == "l2custody" and "macaroon:generate" not in baked["permissions"]
    assert out.stat().st_mode & 0o777 == 0o600
    ok(
        setup.config,
        "node",
        "add",
        "ops",
        "--lnd",
        "--host",
        a.grpc_host,
        "--tls-cert",
        str(a.tls_cert),
        "--macaroon",
        str(out),
    )
    return out


@pytest.fixture(scope="module")
def enforcer(setup: Setup, caveat_mac: Path, hook: Hook) -> Iterator[Enforcer]:
    e = Enforcer(setup.config, "lnd-0", setup.net.lnd[0].admin_macaroon)
    yield e
    e.close()


def _foreign_tx(a: LndNode, b: LndNode) -> tuple[bytes, list[Any]]:
    """A transaction lnd-0's wallet signed (with the admin key) paying lnd-1, and its leases."""
    ln, _, wk, wkstub = stubs(a, a.admin_macaroon)
    funded = wkstub.FundPsbt(
        wk.FundPsbtRequest(raw=wk.TxTemplate(outputs={b.new_address(): 40_000}), sat_per_vbyte=2), timeout=RPC_TIMEOUT
    )
    final = wkstub.FinalizePsbt(wk.FinalizePsbtRequest(funded_psbt=funded.funded_psbt), timeout=RPC_TIMEOUT)
    return final.raw_final_tx, list(funded.locked_utxos)


def _release(a: LndNode, leases: list[Any]) -> None:
    _, _, wk, wkstub = stubs(a, a.admin_macaroon)
    for lease in leases:
        wkstub.ReleaseOutput(wk.ReleaseOutputRequest(id=lease.id, outpoint=lease.outpoint), timeout=RPC_TIMEOUT)


# --- enforcer down ------------------------------------------------------------------------------------
def test_with_the_enforcer_down_lnd_refuses_the_caveat_macaroon(setup: Setup, caveat_mac: Path) -> None:
    a, b = setup.net.lnd[:2]
    ln, stub, wk, wkstub = stubs(a, caveat_mac)
    cp = ln.ChannelPoint(funding_txid_str="00" * 32, output_index=0)
    raw_tx, leases = _foreign_tx(a, b)
    try:
        for call in (
            lambda: stub.CloseChannel(ln.CloseChannelRequest(channel_point=cp), timeout=RPC_TIMEOUT),
            lambda: stub.SendCoins(ln.SendCoinsRequest(addr=b.new_address(), amount=10_000), timeout=RPC_TIMEOUT),
            lambda: wkstub.PublishTransaction(wk.Transaction(tx_hex=raw_tx), timeout=RPC_TIMEOUT),
            lambda: stub.GetInfo(ln.GetInfoRequest(), timeout=RPC_TIMEOUT),
        ):
            refused(call, "l2custody")  # lnd: no middleware registered for custom caveat "l2custody"
    finally:
        _release(a, leases)
    # lnd honours a refusal from a read-only middleware too (it only ignores a read-only *replacement*),
    # so the auditor must answer "allow" to everything
    from l2custody.backends.lnd.backend import LndBackend
    from l2custody.backends.rpc_calls import CallVerdict

    probe = LndBackend.from_paths("probe", a.grpc_host, a.tls_cert, a.admin_macaroon).rpc_middleware()
    stop, up = threading.Event(), threading.Event()

    def refuse_getinfo(call: Any) -> CallVerdict:
        if call.method.endswith("/GetInfo") and call.phase == "request":
            return CallVerdict.refuse("probe", "read-only probe refuses GetInfo")
        return CallVerdict.ok("probe")

    t = threading.Thread(
        target=probe.intercept,
        args=("l2custody-probe", None, refuse_getinfo, stop),
        kwargs={"own_caveat": "l2custody", "on_registered": up.set},
        daemon=True,
    )
    t.start()
    try:
        assert up.wait(30)
        _, admin, _, _ = stubs(a, a.admin_macaroon)
        refused(lambda: admin.GetInfo(ln.GetInfoRequest(), timeout=RPC_TIMEOUT), "read-only probe refuses GetInfo")
        TALLY["attempts"] -= 1  # a probe of lnd's semantics, not a custody attempt
        TALLY["refused"] -= 1
    finally:
        stop.set()
        t.join(30)
        probe.close()
    # the CLI says so too, with the node named
    check = run(setup.config, "node", "check", "ops", json_out=True)
    assert check.exit_code != 0 and "l2custody" in check.stdout, check.output


# --- enforcer up: foreign destinations refused -----------------------------------------------------------
def test_foreign_destinations_are_refused(setup: Setup, caveat_mac: Path, enforcer: Enforcer) -> None:
    a, b = setup.net.lnd[:2]
    ln, stub, wk, wkstub = stubs(a, caveat_mac)
    assert stub.GetInfo(ln.GetInfoRequest(), timeout=RPC_TIMEOUT).identity_pubkey == a.pubkey  # reads pass
    foreign = b.new_address()
    refused(
        lambda: stub.SendCoins(ln.SendCoinsRequest(addr=foreign, amount=10_000), timeout=RPC_TIMEOUT),
        "rule spend-destination",
        foreign,
    )
    refused(
        lambda: stub.SendCoins(ln.SendCoinsRequest(addr=foreign, send_all=True), timeout=RPC_TIMEOUT),
        "rule spend-destination",
    )
    refused(
        lambda: stub.SendMany(ln.SendManyRequest(AddrToAmount={foreign: 10_000}), timeout=RPC_TIMEOUT),
        "rule spend-destination",
    )
    refused(
        lambda: wkstub.SendOutputs(
            wk.SendOutputsRequest(sat_per_kw=2500, outputs=[_txout(foreign, 10_000)]), timeout=RPC_TIMEOUT
        ),
        "rule spend-destination",
    )
    refused(
        lambda: wkstub.FundPsbt(
            wk.FundPsbtRequest(raw=wk.TxTemplate(outputs={foreign: 10_000}), sat_per_vbyte=2), timeout=RPC_TIMEOUT
        ),
        "rule spend-destination",
    )
    cp = open_channel(setup.net, a, b, 300_000, close_address=a.new_address())  # lnd's own wallet, admin key
    point = ln.ChannelPoint(funding_txid_str=cp.split(":")[0], output_index=int(cp.split(":")[1]))
    refused(
        lambda: stub.CloseChannel(
            ln.CloseChannelRequest(channel_point=point, delivery_address=foreign), timeout=RPC_TIMEOUT
        ),
        "rule close-destination",
    )
    refused(
        lambda: stub.OpenChannelSync(
            ln.OpenChannelRequest(node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=200_000),
            timeout=RPC_TIMEOUT,
        ),
        "rule close-address",
    )
    refused(
        lambda: stub.OpenChannelSync(
            ln.OpenChannelRequest(
                node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=200_000, close_address=foreign
            ),
            timeout=RPC_TIMEOUT,
        ),
        "rule close-address",
    )
    # the macaroon cannot mint macaroons (lnd: permission denied); a method no rule reads is refused
    refused(
        lambda: stub.BakeMacaroon(
            ln.BakeMacaroonRequest(permissions=[ln.MacaroonPermission(entity="onchain", action="write")]),
            timeout=RPC_TIMEOUT,
        ),
        "permission denied",
    )
    refused(
        lambda: wkstub.ImportPublicKey(
            wk.ImportPublicKeyRequest(public_key=bytes.fromhex(b.pubkey), address_type=wk.WITNESS_PUBKEY_HASH),
            timeout=RPC_TIMEOUT,
        ),
        "rule unchecked-method",
    )
    raw_tx, leases = _foreign_tx(a, b)
    try:
        refused(
            lambda: wkstub.PublishTransaction(wk.Transaction(tx_hex=raw_tx), timeout=RPC_TIMEOUT),
            "rule spend-destination",
        )
        refused(
            lambda: stub.SendCoins(
                ln.SendCoinsRequest(
                    addr=ok(setup.config, "wallet", "address")["address"], amount=10_000, sat_per_vbyte=5000
                ),
                timeout=RPC_TIMEOUT,
            ),
            "rule fee-cap",
        )
    finally:
        _release(a, leases)
    assert len(enforcer.of("refused")) >= 10
    refusals = [d for act, d in audit_actions(setup, f"node {a.name} rpc") if act == "rpc-refused"]
    assert {d["rule"] for d in refusals} >= {
        "spend-destination",
        "close-destination",
        "close-address",
        "unchecked-method",
        "fee-cap",
    }
    assert all(d["holder"] == "ops" for d in refusals)


def _txout(address: str, value: int) -> Any:
    from lndgrpc.compiled import signer_pb2

    from l2custody.wallet.addresses import address_to_script

    return signer_pb2.TxOut(value=value, pk_script=address_to_script(address, "regtest"))


# --- enforcer up: the custody flows pass with the caveat macaroon ----------------------------------------
def _allowed(setup: Setup, step: str, fn: Any) -> Any:
    TALLY["attempts"] += 1
    try:
        return fn()
    except BaseException as exc:
        if "by l2custody" in str(exc):
            TALLY["false_refusals"] += 1
        raise


def test_custody_flows_pass_with_the_caveat_macaroon(setup: Setup, caveat_mac: Path, enforcer: Enforcer) -> None:
    net, config = setup.net, setup.config
    a, b = net.lnd[:2]
    peer = f"{b.pubkey}@{b.p2p_host}"
    allowed_before = len(enforcer.of("allowed"))
    # open: funded by the multisig, committed to our close address (OpenChannel + FundingStateStep as "ops")
    s = _allowed(setup, "open", lambda: ok(config, "channel", "open", "ops", peer, "400000", "--fee-rate", "2"))
    sid, txid, [leg] = s["id"], s["txid"], s["legs"]
    ok(config, "session", "sign", sid, "--signer", "alice")
    done = ok(config, "session", "sign", sid, "--signer", "carol")
    assert done["complete"] and done["broadcast_txid"] == txid
    wait_in_mempool(net, txid)
    net.mine(1)
    final = ok(config, "session", "status", sid, "--wait", "--timeout", "90")
    assert final["legs"][0]["state"] == "open" and final["legs"][0]["close_address_ok"] is True
    cp = leg["channel_point"]
    wait_for(lambda: (c := _channel(a, cp)) is not None and c.active, 60, what=f"{cp} active")
    # cooperative close to the multisig (CloseChannel with our upfront address as "ops")
    closed = _allowed(setup, "close", lambda: ok(config, "channel", "close", cp, "--node", "ops", "--fee-rate", "2"))
    assert closed["closing_txid"]
    wait_in_mempool(net, closed["closing_txid"])
    net.mine(1)
    status = ok(config, "channel", "close-status", cp, "--node", "ops", "--wait", "--timeout", "90")
    assert status["state"] == "verified", status
    # sweep the node wallet to the multisig (FundPsbt + FinalizePsbt + PublishTransaction as "ops")
    swept = _allowed(setup, "sweep", lambda: ok(config, "sweep", "ops", "--keep", "100000", "--fee-rate", "2"))
    wait_in_mempool(net, swept["txid"])
    outputs = dict(tx_outputs(net, swept["txid"]))
    assert outputs[swept["address"]] == swept["amount_sat"]
    published = [
        d
        for act, d in audit_actions(setup, f"node {a.name} rpc")
        if act == "rpc-allowed" and d["method"] == "/walletrpc.WalletKit/PublishTransaction"
    ]
    assert published[-1]["txid"] == swept["txid"] and published[-1]["fee"] == swept["fee_sat"]  # fee cap checked
    net.mine(1)
    assert ok(config, "sweep-status")[0]["state"] in ("broadcast", "verified")
    # a plain send to the multisig with the caveat macaroon
    ln, stub, _, _ = stubs(a, caveat_mac)
    ours = ok(config, "wallet", "address")["address"]
    sent = _allowed(
        setup,
        "sendcoins",
        lambda: stub.SendCoins(ln.SendCoinsRequest(addr=ours, amount=25_000, sat_per_vbyte=2), timeout=RPC_TIMEOUT),
    )
    assert dict(tx_outputs(net, sent.txid))[ours] == 25_000 if sent.txid in net.chain.rpc("getrawmempool") else True
    assert not enforcer.of("refused")[len(enforcer.of("refused")) :]  # nothing of the flows was refused
    methods = {e.method for e in enforcer.of("allowed")[allowed_before:]}
    assert {
        "/lnrpc.Lightning/OpenChannel",
        "/lnrpc.Lightning/CloseChannel",
        "/walletrpc.WalletKit/FundPsbt",
        "/walletrpc.WalletKit/FinalizePsbt",
        "/walletrpc.WalletKit/PublishTransaction",
        "/lnrpc.Lightning/SendCoins",
    } <= methods, methods


def _channel(node: LndNode, cp: str) -> Any:
    from regtest.lightning import find_channel

    return find_channel(node, cp)


# --- the break-glass key: audited and alerted, never refused ----------------------------------------------
def test_admin_macaroon_spends_are_audited_and_alerted(setup: Setup, enforcer: Enforcer, hook: Hook) -> None:
    a, b = setup.net.lnd[:2]
    setup.net.fund_node(a, 500_000)  # the flows above swept lnd-0's wallet
    ln, stub, _, _ = stubs(a, a.admin_macaroon)
    foreign = b.new_address()
    sent = stub.SendCoins(ln.SendCoinsRequest(addr=foreign, amount=15_000, sat_per_vbyte=2), timeout=RPC_TIMEOUT)
    assert sent.txid  # the break-glass key is not refused

    def send_coins_audits() -> list[dict[str, Any]]:  # audited by the auditor thread, after lnd's answer
        entries = [d for act, d in audit_actions(setup, f"node {a.name} rpc") if act == "rpc-unguarded"]
        return [d for d in entries if d["method"] == "/lnrpc.Lightning/SendCoins" and not d["would_allow"]]

    wait_for(send_coins_audits, 30, what="the audit entry of the unguarded SendCoins")
    [entry] = send_coins_audits()
    assert entry["rule"] == "spend-destination" and foreign in entry["message"]

    def send_coins_alerts() -> list[dict[str, Any]]:  # other admin calls may be alerted first
        return [x for x in hook.of("unguarded-rpc") if x["details"].get("method") == "/lnrpc.Lightning/SendCoins"]

    wait_for(send_coins_alerts, 30, what="the unguarded-rpc alert of SendCoins at the webhook")
    alert = send_coins_alerts()[0]
    assert alert["severity"] == "critical" and "break-glass" in alert["message"]
    assert enforcer.of("unguarded")


# --- inbound channels ----------------------------------------------------------------------------------
def test_the_guard_works_through_the_caveat_macaroon_and_watch_flags_unguarded_inbound_channels(
    setup: Setup, enforcer: Enforcer, hook: Hook
) -> None:
    from l2custody import api
    from regtest.lightning import open_channel as lnd_open_channel

    net, config = setup.net, setup.config
    a, b = net.lnd[:2]
    # while no guard runs, lnd accepts an inbound channel without an upfront script
    bare = lnd_open_channel(net, b, a, 250_000)
    assert _channel(a, bare).close_address == ""
    once = subprocess.run(
        [str(L2CUSTODY), "--config", str(config), "watch", "--once"], capture_output=True, text=True, timeout=180
    )
    assert once.returncode == 0, once.stderr
    wait_for(
        lambda: any(x["subject"] == bare for x in hook.of("no-close-address")), 30, what="the no-close-address alert"
    )
    [alert] = [x for x in hook.of("no-close-address") if x["subject"] == bare and x["node"] == a.name]
    assert f"l2custody node guard {a.name}" in alert["message"]
    # the guard, speaking with the caveat macaroon: its ChannelAcceptor answers pass the enforcer
    stop, events = threading.Event(), []
    guard = threading.Thread(
        target=api.guard_node,
        args=(config, "ops", api.guard_policy(), stop),
        kwargs={"log": events.append},
        daemon=True,
    )
    guard.start()
    try:
        wait_for(lambda: any(e.kind == "listening" for e in events), 30, what="the guard to listen")
        time.sleep(0.5)  # the ChannelAcceptor stream is registered with lnd just after "listening"
        guarded = lnd_open_channel(net, b, a, 260_000)
        [accepted] = [e for e in events if e.kind == "accepted"]
        assert _channel(a, guarded).close_address == accepted.close_address
    finally:
        stop.set()
        guard.join(30)
    assert any(e.method == "/lnrpc.Lightning/ChannelAcceptor" for e in enforcer.of("allowed"))


# --- mandatory middleware: last, it restarts lnd-0 ---------------------------------------------------------
def test_with_the_enforcer_mandatory_lnd_refuses_everything_while_it_is_down(
    setup: Setup, caveat_mac: Path, enforcer: Enforcer
) -> None:
    a = setup.net.lnd[0]
    a.extra_args = (*a.extra_args, "--rpcmiddleware.addmandatory=l2custody-enforce")
    a.restart()  # ready only once the enforcer has re-registered (GetInfo is refused until then)
    wait_for(lambda: sum(e.kind == "registered" for e in enforcer.events) >= 4, 60, what="both registrations again")
    ln, admin, _, _ = stubs(a, a.admin_macaroon)
    assert admin.GetInfo(ln.GetInfoRequest(), timeout=RPC_TIMEOUT).identity_pubkey == a.pubkey
    enforcer.close()
    _, caveat, _, _ = stubs(a, caveat_mac)
    refused(lambda: admin.GetInfo(ln.GetInfoRequest(), timeout=RPC_TIMEOUT), "mandatory middleware 'l2custody-enforce'")
    refused(
        lambda: caveat.SendCoins(
            ln.SendCoinsRequest(addr=setup.net.lnd[1].new_address(), amount=1), timeout=RPC_TIMEOUT
        )
    )
    TALLY["attempts"] -= 1  # lnd's refusal of a read, not a custody attempt
    TALLY["refused"] -= 1
