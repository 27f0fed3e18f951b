"""Funding sessions on real lnd + btcd, driven through the CLI.

A 2-of-3 multisig opens channels from lnd-0 to lnd-1: negotiated and
counter-signed with no signer present, signed later by a software key and
an "air-gapped" file signer, broadcast, confirmed, with the committed close
address read back from lnd and a payment over the channel. Tampered PSBTs
are refused before any signature, a broadcast past the deadline margin is
refused, and the classic interactive flow lets lnd publish. btcd and lnd are
the oracles (mempool, blocks, PendingChannels, ListChannels).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from embit.script import Script

from l2custody.wallet.psbt import load_psbt
from regtest import Network, wait_for
from regtest.lightning import find_channel, pay
from tests.support.cli_runner import L2CUSTODY, fails, ok
from tests.support.funding import (
    mempool,
    multisig_scripts,
    pending_points,
    sign_offline,
    wait_in_mempool,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(network: Network, tmp_path_factory: pytest.TempPathFactory, make_funded_wallet: Callable[..., Path]):
    """lnd-0 and lnd-1 (wallets funded: anchor reserve), lnd-2 with an empty wallet, the 2-of-3."""
    net = network
    net.add_lnd()
    d = tmp_path_factory.mktemp("funding")
    config = make_funded_wallet(net, d)
    return net, config, d


def peer(node) -> str:  # type: ignore[no-untyped-def]
    return f"{node.pubkey}@{node.p2p_host}"


def reserved(config: Path) -> int:
    return ok(config, "wallet", "balance")["reserved"]


def test_preflight_refusals_start_nothing(setup) -> None:
    net, config, d = setup
    lnd0, lnd1, lnd2 = net.lnd[:3]
    err = fails(config, "channel", "open", "lnd-2", peer(lnd1), "300000", "--fee-rate", "2", code=22)
    assert "anchor reserve" in err["error"] and "Send at least 10,000 sat to bcrt1" in err["error"]
    err = fails(config, "channel", "open", "lnd-0", peer(lnd1), "0.5btc", "--fee-rate", "2", code=22)
    assert "the multisig has 6,500,000 sat" in err["error"]
    err = fails(config, "channel", "open", "lnd-0", lnd2.pubkey, "300000", "--fee-rate", "2", code=55)
    assert "@HOST:PORT" in err["error"]
    err = fails(config, "channel", "open", "lnd-0", peer(lnd1), "10000", "--fee-rate", "2", code=10)
    assert "below the smallest channel" in err["error"]
    err = fails(config, "channel", "open", "nowhere", peer(lnd1), "300000", "--fee-rate", "2", code=53)
    assert "node add" in err["error"]
    assert ok(config, "session", "list", "--all") == [] and reserved(config) == 0


def test_a_channel_is_secured_without_signers_then_signed_broadcast_and_opened(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    s = ok(config, "channel", "open", "lnd-0", peer(lnd1), "500000", "--fee-rate", "2")
    sid, txid, [leg] = s["id"], s["txid"], s["legs"]
    assert (s["state"], leg["state"], s["signatures"], s["threshold"]) == ("secured", "secured", 0, 2)
    # lnd holds the channel as pending, counter-signed; nothing is on the network yet
    assert leg["channel_point"] == f"{txid}:{leg['output_index']}"
    assert leg["channel_point"] in pending_points(lnd0)
    assert txid not in mempool(net) and reserved(config) > 0

    one = ok(config, "session", "sign", sid, "--signer", "alice")
    assert (one["added"], one["complete"], one["broadcast_txid"]) == (1, False, None)
    exported = ok(config, "session", "sign", sid, "--signer", "bob-usb")["exported"]
    assert exported and Path(exported[0]).name == f"{sid}.psbt"
    (d / "usb" / f"{sid}-signed.psbt").write_bytes(sign_offline(d, exported).serialize())
    done = ok(config, "session", "sign", sid, "--signer", "bob-usb")
    assert done["complete"] and done["broadcast_txid"] == txid and done["state"] == "broadcast"
    wait_in_mempool(net, txid)

    tx = net.chain.rpc("getrawtransaction", txid, 1)
    ours = multisig_scripts(config)
    for vin in tx["vin"]:  # funding inputs: multisig coins only
        prev = net.chain.rpc("getrawtransaction", vin["txid"], 1)["vout"][vin["vout"]]
        assert prev["scriptPubKey"]["hex"] in ours
    funding = tx["vout"][leg["output_index"]]
    assert round(funding["value"] * 1e8) == 500_000 and funding["scriptPubKey"]["hex"] not in ours
    assert all(o["scriptPubKey"]["hex"] in ours for i, o in enumerate(tx["vout"]) if i != leg["output_index"])
    err = fails(config, "session", "abort", sid, code=60)
    assert "channel close" in err["error"]

    net.mine(1)
    final = ok(config, "session", "status", sid, "--wait", "--timeout", "90")
    assert final["state"] == "confirmed" and final["confirmations"] >= 1
    assert final["legs"][0]["state"] == "open" and final["legs"][0]["close_address_ok"] is True
    channel = find_channel(lnd0, leg["channel_point"])
    assert channel is not None and channel.close_address == leg["close_address"]  # lnd's own word
    assert leg["close_address"] in {a["address"] for a in ok(config, "wallet", "addresses")}
    assert reserved(config) == 0

    def paid() -> bool:
        return pay(lnd0, lnd1, 20_000).status == "SUCCEEDED"

    wait_for(paid, 60, what="a payment over the multisig-funded channel")
    from l2custody.config import load_config
    from l2custody.store import Store

    with Store.open(load_config(config).store_path) as store:
        actions = [e.action for e in store.audit_log(subject=sid)]
    for step in (
        "funding-started",
        "channel-negotiated",
        "funding-psbt-built",
        "channel-secured",
        "funding-secured",
        "funding-signed",
        "funding-broadcast",
        "funding-confirmed",
        "channel-open",
    ):
        assert step in actions, (step, actions)


def _tamper_output(psbt_b64: str, index: int) -> str:
    psbt = load_psbt(psbt_b64)
    psbt.outputs[index].script_pubkey = Script(b"\x00\x14" + os.urandom(20))
    return psbt.to_base64()


def test_tampered_psbts_are_refused_before_signing_and_abort_loses_nothing(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    s = ok(config, "channel", "open", "lnd-0", peer(lnd1), "300000", "--private", "--fee-rate", "2")
    sid, index, point = s["id"], s["legs"][0]["output_index"], s["legs"][0]["channel_point"]

    # an air-gapped signer hands back a PSBT whose funding output pays someone else
    exported = ok(config, "session", "sign", sid, "--signer", "bob-usb")["exported"]
    evil = load_psbt(_tamper_output(Path(exported[1]).read_text(), index))
    from l2custody.wallet.signers import SoftwareSigner

    signed_evil = SoftwareSigner.from_file(d / "bob.key").sign(evil)
    dropped = d / "usb" / f"{sid}-signed.psbt"
    dropped.write_bytes(signed_evil.serialize())
    err = fails(config, "session", "sign", sid, "--signer", "bob-usb", code=31)
    assert "not made from the exported PSBT" in err["error"]
    dropped.unlink()
    assert ok(config, "session", "show", sid)["signatures"] == 0

    # the stored session PSBT itself is changed behind our back
    from l2custody.config import load_config

    db = sqlite3.connect(load_config(config).store_path)
    [(stored,)] = db.execute("SELECT psbt FROM psbts WHERE id = ?", (sid,)).fetchall()
    db.execute("UPDATE psbts SET psbt = ? WHERE id = ?", (_tamper_output(stored, index), sid))
    db.commit()
    err = fails(config, "session", "sign", sid, "--signer", "alice", code=31)
    assert sid in err["error"]
    err = fails(config, "session", "broadcast", sid)
    assert err["code"] in (30, 31)  # refused: not the counter-signed transaction
    db.execute("UPDATE psbts SET psbt = ? WHERE id = ?", (stored, sid))
    db.commit()
    db.close()

    aborted = ok(config, "session", "abort", sid, "--reason", "tampering drill")
    assert aborted["state"] == "aborted" and aborted["legs"][0]["state"] == "abandoned"
    assert point not in pending_points(lnd0) and reserved(config) == 0
    assert s["txid"] not in mempool(net)
    assert fails(config, "session", "sign", sid, "--signer", "alice", code=60)


def test_broadcast_after_the_deadline_margin_is_refused(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    original = config.read_text()
    config.write_text(original.replace("deadline_margin_blocks = 144", "deadline_margin_blocks = 2015"))
    try:
        s = ok(config, "channel", "open", "lnd-0", peer(lnd1), "250000", "--private", "--fee-rate", "2")
        sid = s["id"]
        assert s["blocks_left"] == 1
        ok(config, "session", "sign", sid, "--signer", "alice")
        assert ok(config, "session", "sign", sid, "--signer", "carol", "--no-broadcast")["complete"]
        net.mine(2)
        err = fails(config, "session", "broadcast", sid, code=62)
        assert "past the safety margin" in err["error"] and f"session abort {sid}" in err["error"]
        assert s["txid"] not in mempool(net)
    finally:
        config.write_text(original)
    assert ok(config, "session", "abort", sid)["state"] == "aborted"
    assert s["legs"][0]["channel_point"] not in pending_points(lnd0) and reserved(config) == 0


def test_interactive_open_signs_at_once_and_lnd_publishes(setup) -> None:
    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    s = ok(
        config,
        "channel",
        "open",
        "lnd-0",
        peer(lnd1),
        "260000",
        "--private",
        "--fee-rate",
        "2",
        "--interactive",
        "--signer",
        "alice",
        "--signer",
        "carol",
    )
    assert s["state"] == "broadcast" and s["signatures"] == 2
    wait_in_mempool(net, s["txid"])  # published by lnd itself
    net.mine(1)
    final = ok(config, "session", "status", s["id"], "--wait", "--timeout", "90")
    assert final["state"] == "confirmed" and final["legs"][0]["close_address_ok"] is True
    err = fails(config, "channel", "open", "lnd-0", peer(lnd1), "260000", "--interactive", "--fee-rate", "2", code=10)
    assert "--signer" in err["error"]


class LostAnswerChain:
    """MOCK of one fault we cannot cause on demand: the chain source's broadcast RPC times out.
    With ``sends`` the transaction reached btcd before the answer was lost; without, it did not."""

    def __init__(self, real, sends: bool) -> None:  # type: ignore[no-untyped-def]
        self.real, self.sends = real, sends

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)

    def broadcast(self, raw: bytes) -> str:
        from l2custody.errors import BroadcastUnknown

        if self.sends:
            self.real.broadcast(raw)
        raise BroadcastUnknown("sendrawtransaction timed out after 30s (simulated): it may or may not have gone out")


class ForeignCloseAddressNode:
    """MOCK of a fault lnd never commits on its own: a node reporting another close address
    than the one l2custody reserved (everything else is the real lnd backend)."""

    def __init__(self, real, address: str) -> None:  # type: ignore[no-untyped-def]
        self.real, self.address = real, address

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)

    def list_channels(self, **kw):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        return [replace(c, close_address=self.address) if c.close_address else c for c in self.real.list_channels(**kw)]


def _context(config: Path, chain=None, wrap=None):  # type: ignore[no-untyped-def]
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.config import load_config
    from l2custody.custody.context import Custody
    from l2custody.wallet.service import Wallet

    cfg = load_config(config)
    wallet = Wallet.open(cfg, chain=chain)
    registry = NodeRegistry(wallet.store, cfg.data_dir)
    resolve = registry.backend if wrap is None else (lambda name: wrap(registry.backend(name)))
    return Custody(wallet, resolve, owns_wallet=True)


def test_an_unknown_broadcast_outcome_stays_pending_and_a_foreign_close_address_is_a_violation(setup) -> None:
    from l2custody.chain.rpc import JsonRpcChain
    from l2custody.config import load_config
    from l2custody.custody.funding.lifecycle import broadcast_session, refresh
    from l2custody.custody.funding.session import LegState
    from l2custody.errors import BroadcastUnknown
    from l2custody.store import Store

    net, config, d = setup
    lnd0, lnd1 = net.lnd[:2]
    s = ok(config, "channel", "open", "lnd-0", peer(lnd1), "240000", "--private", "--fee-rate", "2")
    sid, txid = s["id"], s["txid"]
    ok(config, "session", "sign", sid, "--signer", "alice")
    ok(config, "session", "sign", sid, "--signer", "carol", "--no-broadcast")
    real = JsonRpcChain.from_config(load_config(config).chain)

    with _context(config, chain=LostAnswerChain(real, sends=False)) as ctx:
        with pytest.raises(BroadcastUnknown, match="stays broadcast-pending"):
            broadcast_session(ctx, sid)
    assert ok(config, "session", "show", sid)["state"] == "broadcasting" and txid not in mempool(net)
    err = fails(config, "session", "abort", sid, code=60)
    assert "unknown outcome" in err["error"] and "--force" in err["error"]
    status = ok(config, "session", "status", sid)
    assert status["state"] == "broadcasting" and any("broadcast" in n and "again" in n for n in status["notes"])

    with _context(config, chain=LostAnswerChain(real, sends=True)) as ctx:
        with pytest.raises(BroadcastUnknown):
            broadcast_session(ctx, sid)  # a rebroadcast is allowed; this time it went out
    wait_in_mempool(net, txid)
    assert ok(config, "session", "status", sid)["state"] == "broadcast"
    net.mine(1)

    outside = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
    with _context(config, wrap=lambda b: ForeignCloseAddressNode(b, outside)) as ctx:
        wait_for(lambda: refresh(ctx, sid).session.legs[0].state is LegState.OPEN, 60, what="the channel to open")
        view = refresh(ctx, sid)
    assert view.session.legs[0].close_address_ok is False
    assert any("CUSTODY VIOLATION" in n for n in view.notes)
    with Store.open(load_config(config).store_path) as store:
        [violation] = [e for e in store.audit_log(subject=sid) if e.action == "custody-violation"]
    assert violation.details["committed"] == outside and violation.details["reserved"] == s["legs"][0]["close_address"]


class NoUpfrontShutdownPeer:
    """MOCK of a peer lnd cannot play: one without option_upfront_shutdown_script (every lnd
    supports it). It refuses a close address; without one the real lnd negotiates as usual."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self.real = real

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.real, name)

    def open_start(self, request):  # type: ignore[no-untyped-def]
        from dataclasses import replace

        from l2custody.errors import UpfrontShutdownRefused

        if not request.allow_no_upfront_shutdown:
            raise UpfrontShutdownRefused(f"peer {request.peer_pubkey} cannot commit an upfront shutdown address")
        return self.real.open_start(replace(request, close_address=None))


def test_a_peer_that_cannot_commit_the_close_address_is_refused_unless_allowed(setup) -> None:
    from l2custody.custody.funding.lifecycle import abort_session, show
    from l2custody.custody.funding.negotiate import open_channels
    from l2custody.custody.funding.requests import channel_request
    from l2custody.errors import UpfrontShutdownRefused

    net, config, d = setup
    lnd1 = net.lnd[1]
    request = channel_request("lnd-0", peer(lnd1), 230_000, private=True)
    with _context(config, wrap=NoUpfrontShutdownPeer) as ctx:
        with pytest.raises(UpfrontShutdownRefused, match="nothing was broadcast"):
            open_channels(ctx, [request], fee_rate=2)
        session = open_channels(ctx, [request], fee_rate=2, allow_no_upfront_shutdown=True)
        assert session.state.value == "secured" and session.legs[0].upfront_shutdown is False
        notes = show(ctx, session.id).notes
        assert any("no upfront shutdown address" in n for n in notes)
        assert abort_session(ctx, session.id).state.value == "aborted"
    assert reserved(config) == 0


def test_installed_command_lists_the_sessions(setup) -> None:
    net, config, d = setup
    env = {**os.environ, "L2CUSTODY_CONFIG": str(config)}
    proc = subprocess.run(
        [str(L2CUSTODY), "--json", "session", "list", "--all"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    states = sorted(s["state"] for s in json.loads(proc.stdout))
    assert states == ["aborted", "aborted", "aborted", "confirmed", "confirmed", "confirmed", "failed"]
    human = subprocess.run([str(L2CUSTODY), "session", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert human.returncode == 0 and "No funding sessions" in human.stdout  # none left open
