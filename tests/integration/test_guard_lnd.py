"""`node guard` on real lnd: inbound channels get a multisig close address, or are refused.

lnd[1] (the peer) opens channels to lnd[0] (ours) while the guard answers
lnd[0]'s ChannelAcceptor. The oracles are lnd itself: lnd[0]'s
Channel.close_address, and the error lnd[1] gets back.

Whether the guard's stream is registered in lnd cannot be observed directly,
so tests first wait for a *probe* to be refused: lnd[1] starts a PSBT-funded
open (no coins are ever committed) that the policy rejects; if the guard was
not yet listening, lnd accepts it and the probe cancels the negotiation.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator

import grpc
import pytest

from l2custody.config import load_config
from l2custody.custody.context import open_custody
from l2custody.custody.guard import GuardEvent, GuardPolicy, GuardSummary, run_guard
from regtest import Network, wait_for
from regtest.lightning import channel_point_str, find_channel
from regtest.lnd import RPC_TIMEOUT
from tests.support.cli_runner import L2CUSTODY, ok
from tests.support.lnd_custody import (
    Setup,
    audit_actions,
    channel_json,
    make_setup,
    probe,
    tx_outputs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    s = make_setup(network, tmp_path_factory.mktemp("guard"))
    network.connect(network.lnd[1], network.lnd[0])
    return s


def wait_guarded(setup: Setup, sats: int, refusal: str) -> None:
    a, b = setup.net.lnd
    wait_for(lambda: refusal in (probe(b, a, sats) or ""), 60, what=f"the guard on {a.name} to refuse a probe")


class GuardThread:
    """run_guard (the library call behind `node guard`) in a thread, with its event log."""

    def __init__(self, setup: Setup, policy: GuardPolicy) -> None:
        self.events: list[GuardEvent] = []
        self.stop = threading.Event()
        self.summary: GuardSummary | None = None
        self.error: BaseException | None = None

        def body() -> None:
            try:
                with open_custody(load_config(setup.config)) as custody:
                    backend = custody.node(setup.net.lnd[0].name)
                    self.summary = run_guard(
                        backend, custody.wallet, policy, self.stop, log=self.events.append, reconnect_delay=0.5
                    )
            except BaseException as exc:  # reported by finish()
                self.error = exc

        self.thread = threading.Thread(target=body, name="guard")
        self.thread.start()

    def finish(self) -> GuardSummary:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the guard did not stop"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.fixture(scope="module")
def guard(setup: Setup) -> Iterator[GuardThread]:
    g = GuardThread(setup, GuardPolicy.build(min_channel_sat=100_000))
    try:
        wait_guarded(setup, 50_000, "channel too small")
        yield g
    finally:
        g.stop.set()


def test_a_channel_the_policy_refuses_fails_at_the_peer_with_our_reason(setup: Setup, guard: GuardThread) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    a, b = setup.net.lnd
    with pytest.raises(grpc.RpcError) as refused:
        b.ln.OpenChannelSync(
            ln.OpenChannelRequest(node_pubkey=bytes.fromhex(a.pubkey), local_funding_amount=60_000, sat_per_vbyte=2),
            timeout=RPC_TIMEOUT,
        )
    assert "channel too small: 60000 sat, the minimum is 100000 sat" in (refused.value.details() or "")
    pending = a.ln.PendingChannels(ln.PendingChannelsRequest(), timeout=RPC_TIMEOUT).pending_open_channels
    assert not pending  # nothing half-opened on our side
    rejected = [e for e in guard.events if e.kind == "rejected" and e.funding_sat == 60_000]
    assert rejected and rejected[0].peer == b.pubkey
    entries = [d for act, d in audit_actions(setup, f"node {a.name}") if act == "inbound-rejected"]
    assert any(d["funding_sat"] == 60_000 and "too small" in d["reason"] for d in entries)


def test_an_inbound_channel_commits_its_close_to_a_fresh_multisig_address(setup: Setup, guard: GuardThread) -> None:
    from lndgrpc.compiled import lightning_pb2 as ln

    net, (a, b) = setup.net, setup.net.lnd
    point = b.ln.OpenChannelSync(
        ln.OpenChannelRequest(
            node_pubkey=bytes.fromhex(a.pubkey), local_funding_amount=250_000, push_sat=20_000, sat_per_vbyte=2
        ),
        timeout=RPC_TIMEOUT,
    )
    cp = channel_point_str(point)
    wait_for(lambda: cp.split(":")[0] in net.chain.rpc("getrawmempool"), 30, what="the funding tx")
    net.mine(1)
    wait_for(lambda: (c := find_channel(a, cp)) is not None and c.active, 60, what=f"{cp} active on {a.name}")
    [accepted] = [e for e in guard.events if e.kind == "accepted"]
    assert accepted.peer == b.pubkey and accepted.funding_sat == 250_000
    assert find_channel(a, cp).close_address == accepted.close_address  # lnd committed it
    entries = [d for act, d in audit_actions(setup, f"node {a.name}") if act == "inbound-accepted"]
    assert entries[-1]["close_address"] == accepted.close_address and entries[-1]["push_sat"] == 20_000
    view = channel_json(setup, cp)
    assert view["close_address_ours"] is True and view["initiator"] == "remote" and view["funding"] == "foreign"

    # invariant 3 -> 4: our cooperative close of the inbound channel lands in the multisig
    closed = ok(setup.config, "channel", "close", cp, "--fee-rate", "2")
    assert closed["address_source"] == "upfront"
    wait_for(lambda: closed["closing_txid"] in net.chain.rpc("getrawmempool"), 30, what="the closing tx")
    net.mine(1)
    status = ok(setup.config, "channel", "close-status", cp)
    assert status["state"] == "verified", status
    # exactly the pushed amount: the funder (the peer) pays the closing fee
    assert dict(tx_outputs(net, closed["closing_txid"]))[accepted.close_address] == status["value"] == 20_000


def test_the_guard_reconnects_after_lnd_restarts_and_stops_cleanly(setup: Setup, guard: GuardThread) -> None:
    a = setup.net.lnd[0]
    a.restart()
    setup.net.connect(setup.net.lnd[1], a)
    wait_guarded(setup, 50_000, "channel too small")
    assert "disconnected" in guard.kinds()
    summary = guard.finish()
    assert summary.accepted == 1 and summary.rejected >= 2
    actions = [x for x, _ in audit_actions(setup, f"node {a.name}")]
    assert actions[0] == "guard-started" and actions[-1] == "guard-stopped"


def test_cli_guard_refuses_a_denied_peer_and_exits_cleanly_on_sigterm(setup: Setup) -> None:
    a, b = setup.net.lnd
    proc = subprocess.Popen(
        [str(L2CUSTODY), "--config", str(setup.config), "node", "guard", a.name, "--deny-peer", b.pubkey],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_guarded(setup, 200_000, "this node does not accept channels from you")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"rejected 200,000 sat channel from {b.pubkey}: this node does not accept channels from you" in out
    assert f"guard for {a.name} stopped" in out and "0 accepted" in out
