"""The Core Lightning backend on a real lightningd (bitcoind regtest, 1 lnd, 2 CLN).

cln-0 is the node under test; its peers are lnd-0 (upfront shutdown scripts
supported) and cln-noupfront, a lightningd that does not offer
option_upfront_shutdown_script (``--dev-force-features=-5``).

The funding PSBTs are funded and signed by a bitcoind wallet (segwit inputs,
so the txid is fixed before signing): multisig funding is the session layer's
job. bitcoind is the oracle: its mempool for "nothing broadcast", its blocks
for where closes and sweeps paid.

The tests of this module build on each other (one network per module, in file order).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from l2custody.backends.base import (
    Capability,
    ChannelState,
    CloseType,
    FundingIntent,
    OpenRequest,
)
from l2custody.backends.cln.backend import ClnBackend
from l2custody.backends.cln.convert import (
    MIN_CLN_VERSION,
    parse_version,
    supports_withhold,
)
from l2custody.backends.node_check import check_node
from l2custody.backends.node_registry import NodeRecord
from l2custody.errors import (
    BroadcastRejected,
    PeerRefused,
    PsbtError,
    UpfrontShutdownRefused,
    UsageError,
)
from regtest import Network, wait_for
from regtest.cln import ClnNode
from regtest.rpc import JsonRpc

pytestmark = [pytest.mark.integration, pytest.mark.cln]
STRANGER = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # a valid key nobody runs


# --- helpers -----------------------------------------------------------------------------------
class Wallet:
    """A bitcoind wallet that funds and signs the funding PSBTs (and receives closes and sweeps)."""

    def __init__(self, net: Network, name: str = "funder") -> None:
        chain = net.chain
        chain.rpc("createwallet", name)
        self.rpc = JsonRpc(f"{chain.rpc_url}/wallet/{name}", chain.rpc_user, chain.rpc_password, None)
        self.net = net

    def address(self) -> str:
        return str(self.rpc.call("getnewaddress", "", "bech32"))

    def psbt_paying(self, *outputs: tuple[str, int]) -> bytes:
        """An unsigned PSBT (inputs locked in the wallet) paying ``outputs``."""
        outs = [{addr: sats / 1e8} for addr, sats in outputs]
        created = self.rpc.call("walletcreatefundedpsbt", [], outs, 0, {"fee_rate": 2, "lockUnspents": True})
        return base64.b64decode(created["psbt"])

    def sign(self, psbt: bytes) -> bytes:
        """The finalized PSBT (all inputs are this wallet's)."""
        processed = self.rpc.call("walletprocesspsbt", base64.b64encode(psbt).decode())
        assert processed["complete"]
        return base64.b64decode(processed["psbt"])

    def raw(self, signed_psbt: bytes) -> str:
        return str(self.rpc.call("finalizepsbt", base64.b64encode(signed_psbt).decode(), True)["hex"])

    def received(self, txid: str, address: str) -> int:
        tx = self.net.chain.rpc("getrawtransaction", txid, True)
        return sum(round(o["value"] * 1e8) for o in tx["vout"] if o["scriptPubKey"].get("address") == address)


def in_mempool(net: Network, txid: str) -> bool:
    return txid in net.chain.rpc("getrawmempool")


def lpc(node: ClnNode, point: str) -> dict[str, Any]:
    """cln-0's own listpeerchannels entry of a channel (raw, for the facts we check)."""
    txid, vout = point.split(":")
    for e in node.rpc.listpeerchannels()["channels"]:
        if e.get("funding_txid") == txid and e.get("funding_outnum") == int(vout):
            return dict(e)
    raise AssertionError(f"{point} not listed")


def state_of(backend: ClnBackend, point: str) -> ChannelState | None:
    return next((c.state for c in backend.list_channels() if c.channel_point == point), None)


def open_secured(
    backend: ClnBackend, wallet: Wallet, peer: str, amount: int, **kw: Any
) -> tuple[FundingIntent, bytes, str]:
    intent = backend.open_start(OpenRequest(peer, amount, **kw))
    psbt = wallet.psbt_paying((intent.funding_address, intent.amount_sat))
    return intent, psbt, backend.open_secure(intent, psbt)


# --- the network ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def net(cln_network: Network) -> Iterator[Network]:
    cln_network.add_cln(extra_args=("--dev-force-features=-5",), name="cln-noupfront")
    cln_network.connect(cln_network.cln[0], cln_network.lnd[0])
    cln_network.connect(cln_network.cln[0], cln_network.cln[1])
    yield cln_network


@pytest.fixture(scope="module")
def cln(net: Network) -> ClnBackend:
    return ClnBackend("cln-0", net.cln[0].rpc_file, timeout=30)


@pytest.fixture(scope="module")
def wallet(net: Network) -> Wallet:
    w = Wallet(net)
    net.fund_address(w.address(), 3_000_000)
    net.fund_address(w.address(), 3_000_000)
    net.mine(1)
    return w


@pytest.fixture(scope="module")
def shared() -> dict[str, Any]:
    """State the ordered tests hand on (channel points, addresses)."""
    return {}


# --- identity -----------------------------------------------------------------------------------
def test_info_network_version_and_node_check(net: Network, cln: ClnBackend) -> None:
    info = cln.info()
    assert info.kind == "cln" and info.pubkey == net.cln[0].pubkey and info.network == "regtest"
    assert info.synced_to_chain and info.block_height == net.chain.height()
    assert parse_version(info.version) >= (*MIN_CLN_VERSION, 0)
    assert cln.supports(Capability.PUBLISH_PSBT) and cln.supports(Capability.SECURE_BEFORE_SIGN)
    record = NodeRecord("cln-0", "cln", rpc_file=net.cln[0].rpc_file)
    check = check_node(record, "regtest", cln)
    assert check.ok, check.items
    assert [i.name for i in check.items] == [
        "reachable",
        "synced",
        "network",
        "version",
        "permissions",
        "anchor reserve",
    ]
    wrong = check_node(record, "main", cln)
    assert not wrong.ok and "node is on regtest" in next(i.detail for i in wrong.items if i.name == "network")


def test_connect_peer(net: Network, cln: ClnBackend) -> None:
    lnd = net.lnd[0]
    assert cln.is_connected(lnd.pubkey)
    cln.connect_peer(lnd.pubkey, lnd.p2p_host)  # already connected: fine
    with pytest.raises(PeerRefused, match="Check the peer's address"):
        cln.connect_peer(STRANGER, "127.0.0.1:1")


# --- funding --------------------------------------------------------------------------------------
def test_open_secured_with_an_unsigned_psbt_broadcasts_nothing(
    net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]
) -> None:
    lnd = net.lnd[0]
    close_to = wallet.address()
    intent = cln.open_start(OpenRequest(lnd.pubkey, 600_000, private=True, close_address=close_to))
    assert intent.kind == "cln" and intent.intent_id == lnd.pubkey and intent.close_address == close_to
    with pytest.raises(UsageError, match="one pending open per peer"):
        cln.open_start(OpenRequest(lnd.pubkey, 300_000))
    psbt = wallet.psbt_paying((intent.funding_address, intent.amount_sat))
    tampered = wallet.psbt_paying((intent.funding_address, intent.amount_sat - 1))
    with pytest.raises(PsbtError, match="the node negotiated 600000 sat"):
        cln.open_secure(intent, tampered)
    point = cln.open_secure(intent, psbt)
    txid = point.split(":")[0]
    assert not in_mempool(net, txid)
    entry = lpc(net.cln[0], point)
    assert entry["state"] == "CHANNELD_AWAITING_LOCKIN"
    assert entry["funding"]["withheld"] is supports_withhold(cln.version())
    ch = next(c for c in cln.list_channels() if c.channel_point == point)
    assert ch.state is ChannelState.PENDING_OPEN and ch.close_address == close_to and ch.initiator == "local"
    assert cln.open_secure(intent, psbt) == point  # a retry finds it secured
    with pytest.raises(UsageError, match="already secured"):
        cln.open_cancel(intent)
    with pytest.raises(UsageError, match="unconfirmed channel"):  # one pending open per peer, also after securing
        cln.open_start(OpenRequest(lnd.pubkey, 300_000))
    assert not in_mempool(net, txid)
    shared.update(point=point, psbt=psbt, close_to=close_to)


def test_publish_psbt_then_confirm_opens_with_our_close_address(
    net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]
) -> None:
    point = shared["point"]
    with pytest.raises(PsbtError, match="signatures are missing"):
        cln.publish_psbt(shared["psbt"])  # nothing sent
    assert not in_mempool(net, point.split(":")[0])
    signed = wallet.sign(shared["psbt"])
    txid = cln.publish_psbt(signed)
    assert f"{txid}:{point.split(':')[1]}" == point and in_mempool(net, txid)
    assert lpc(net.cln[0], point)["funding"]["withheld"] is False
    assert cln.publish_psbt(signed) == txid  # again: harmless
    net.mine(1)
    wait_for(lambda: state_of(cln, point) is ChannelState.OPEN, 60, what="the channel to lock in")
    ch = next(c for c in cln.list_channels() if c.channel_point == point)
    assert ch.close_address == shared["close_to"] and ch.close_address_known and ch.private
    assert ch.capacity_sat == 600_000 == ch.local_balance_sat and ch.short_channel_id
    wait_for(lambda: next(c for c in cln.list_channels() if c.channel_point == point).active, 30, what="active")


def test_funding_broadcast_elsewhere_is_recorded_on_request(
    net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]
) -> None:
    """The safety net: a withheld channel whose funding confirmed without sendpsbt gets repaired."""
    if not supports_withhold(cln.version()):
        pytest.skip(f"{cln.version()} has no withheld channels")
    peer = net.cln[1]
    intent, psbt, point = open_secured(
        cln, wallet, peer.pubkey, 400_000, allow_no_upfront_shutdown=True, close_address=wallet.address()
    )
    assert intent.close_address is None  # this peer cannot commit one
    raw = wallet.raw(wallet.sign(psbt))
    net.chain.rpc("sendrawtransaction", raw)  # not through lightningd
    net.mine(1)
    assert lpc(net.cln[0], point)["funding"]["withheld"] is True
    wait_for(lambda: state_of(cln, point) is ChannelState.OPEN, 60, what="the channel to lock in")
    assert lpc(net.cln[0], point)["funding"]["withheld"] is True  # listing channels publishes nothing
    assert point in cln.record_withheld_funding()
    assert lpc(net.cln[0], point)["funding"]["withheld"] is False  # lightningd was handed the PSBT
    shared["no_upfront_point"] = point


def test_abandon_a_secured_channel_that_was_never_broadcast(net: Network, cln: ClnBackend, wallet: Wallet) -> None:
    lnd = net.lnd[0]
    intent, psbt, point = open_secured(cln, wallet, lnd.pubkey, 250_000, close_address=wallet.address())
    with pytest.raises(UsageError, match="only pending channels we opened"):
        cln.abandon_pending(next(c.channel_point for c in cln.list_channels() if c.state is ChannelState.OPEN))
    cln.abandon_pending(point)
    closed = next(c for c in cln.list_channels() if c.channel_point == point)
    assert closed.state is ChannelState.CLOSED and closed.close_type in (
        CloseType.ABANDONED,
        CloseType.FUNDING_CANCELED,
    )
    assert closed.closing_txid is None and not in_mempool(net, point.split(":")[0])
    wallet.rpc.call("lockunspent", True)  # the funder's coins are free again
    cln.open_cancel(intent)  # nothing left: a no-op


def test_a_secured_channel_survives_a_lightningd_restart_untouched(
    net: Network, cln: ClnBackend, wallet: Wallet
) -> None:
    """lightningd v25.12 signs and sends the funding PSBT of non-withheld pending channels at start-up;
    ours is withheld, so it is left alone, and the session can carry on (or abandon) afterwards."""
    lnd = net.lnd[0]
    intent, psbt, point = open_secured(cln, wallet, lnd.pubkey, 260_000, close_address=wallet.address())
    net.cln[0].restart()
    wait_for(lambda: cln.is_connected(lnd.pubkey), 60, what="lightningd to reconnect to lnd")
    assert state_of(cln, point) is ChannelState.PENDING_OPEN
    assert lpc(net.cln[0], point)["funding"]["withheld"] is supports_withhold(cln.version())
    log = net.cln[0].log_path.read_text()
    assert "for waiting channel" not in log  # spender did not try to sign/send our PSBT
    assert cln.open_secure(intent, psbt) == point  # a session resuming after the restart
    assert not in_mempool(net, point.split(":")[0])
    # lnd sends no channel_reestablish for an unconfirmed channel, so lightningd's fundchannel_cancel
    # waits (for ever); the backend then closes the withheld channel, which lightningd forgets.
    assert "waiting for theirs" in " ".join(lpc(net.cln[0], point)["status"])
    cln.cancel_wait = 3.0
    cln.abandon_pending(point)
    assert state_of(cln, point) is ChannelState.CLOSED and not in_mempool(net, point.split(":")[0])
    wallet.rpc.call("lockunspent", True)


def test_peer_without_upfront_shutdown_is_cancelled_unless_allowed(
    net: Network, cln: ClnBackend, wallet: Wallet
) -> None:
    peer = net.cln[1]
    with pytest.raises(UpfrontShutdownRefused, match="does not offer option_upfront_shutdown_script"):
        cln.open_start(OpenRequest(peer.pubkey, 200_000, close_address=wallet.address()))
    states = [e["state"] for e in net.cln[0].rpc.listpeerchannels(peer.pubkey)["channels"]]
    assert "OPENINGD" not in states  # the negotiation was cancelled
    intent = cln.open_start(
        OpenRequest(peer.pubkey, 200_000, close_address=wallet.address(), allow_no_upfront_shutdown=True)
    )
    assert intent.close_address is None
    cln.open_cancel(intent)
    states = [e["state"] for e in net.cln[0].rpc.listpeerchannels(peer.pubkey)["channels"]]
    assert "OPENINGD" not in states


# --- closes ---------------------------------------------------------------------------------------
def test_cooperative_close_pays_the_committed_address(
    net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]
) -> None:
    point = shared["point"]
    with pytest.raises(UpfrontShutdownRefused, match="can only close it to that address"):
        cln.close_channel(point, delivery_address=wallet.address())
    result = cln.close_channel(point)
    assert result.state is ChannelState.CLOSING and result.closing_txid
    assert result.delivery_address == shared["close_to"]
    wait_for(lambda: in_mempool(net, result.closing_txid or ""), 30, what="the closing tx in the mempool")
    net.mine(1)
    wait_for(lambda: state_of(cln, point) is ChannelState.CLOSED, 60, what="the close to be seen on chain")
    ch = next(c for c in cln.list_channels() if c.channel_point == point)
    assert ch.close_type is CloseType.COOPERATIVE and ch.closing_txid == result.closing_txid
    assert wallet.received(result.closing_txid, shared["close_to"]) == ch.settled_sat > 590_000
    with pytest.raises(UsageError, match="not open"):
        cln.close_channel(point)


def test_close_to_a_destination_when_there_is_no_upfront_script(
    net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]
) -> None:
    point = shared["no_upfront_point"]
    ch = next(c for c in cln.list_channels() if c.channel_point == point)
    assert ch.close_address is None and ch.close_address_known
    destination = wallet.address()
    result = cln.close_channel(point, delivery_address=destination, fee_rate=3)
    assert result.delivery_address == destination and result.closing_txid
    wait_for(lambda: in_mempool(net, result.closing_txid or ""), 30, what="the closing tx in the mempool")
    net.mine(1)
    wait_for(lambda: state_of(cln, point) is ChannelState.CLOSED, 60, what="the close to be seen on chain")
    assert wallet.received(result.closing_txid, destination) > 390_000


def test_channel_events_by_polling(net: Network, cln: ClnBackend, wallet: Wallet, shared: dict[str, Any]) -> None:
    import threading

    peer = net.cln[1]
    events = cln.subscribe_channel_events()  # the baseline: channels as they are now
    seen: list[Any] = []
    first = threading.Thread(target=lambda: seen.append(next(events)), daemon=True)
    first.start()
    intent, psbt, point = open_secured(
        cln, wallet, peer.pubkey, 300_000, allow_no_upfront_shutdown=True, close_address=wallet.address()
    )
    first.join(30)
    assert seen and (seen[0].kind, seen[0].channel_point) == ("pending_open", point)
    cln.publish_psbt(wallet.sign(psbt))
    net.mine(1)
    kinds = []
    while "active" not in kinds:
        event = next(events)
        assert event.channel_point == point
        kinds.append(event.kind)
    events.close()
    assert kinds[0] == "open"
    shared["force_point"] = point


def test_force_close_with_the_peer_gone_then_the_proceeds_reach_the_node_wallet(
    net: Network, cln: ClnBackend, shared: dict[str, Any]
) -> None:
    point = shared["force_point"]
    net.cln[1].stop()
    wait_for(lambda: not cln.is_connected(net.cln[1].pubkey), 30, what="the peer to be gone")
    with pytest.raises(PeerRefused, match="needs it online"):
        cln.close_channel(point)
    with pytest.raises(UsageError, match="force close uses the fee"):
        cln.close_channel(point, force=True, fee_rate=2)
    before = cln.onchain_balance().total_sat
    result = cln.close_channel(point, force=True)
    assert result.state is ChannelState.FORCE_CLOSING and result.closing_txid and result.delivery_address is None
    wait_for(lambda: in_mempool(net, result.closing_txid or ""), 30, what="our commitment in the mempool")
    net.mine(1)
    ch = wait_for(
        lambda: next(
            (c for c in cln.list_channels() if c.channel_point == point and c.closing_txid and c.limbo_sat), None
        ),
        60,
        what="the force close on chain",
    )
    assert ch.state is ChannelState.FORCE_CLOSING and ch.close_type is CloseType.LOCAL_FORCE
    assert ch.closing_txid == result.closing_txid and ch.limbo_sat > 290_000
    for _ in range(8):  # the peer's to_self_delay, then onchaind's sweep to the wallet
        net.mine(1)
    wait_for(lambda: cln.onchain_balance().total_sat > before + 290_000, 60, what="the proceeds in the node wallet")
    net.mine(1)
    wait_for(lambda: state_of(cln, point) is ChannelState.CLOSED, 60, what="onchaind to resolve every output")
    done = next(c for c in cln.list_channels() if c.channel_point == point)
    assert done.close_type is CloseType.LOCAL_FORCE and done.settled_sat == ch.limbo_sat and done.limbo_sat == 0


# --- the hot wallet ---------------------------------------------------------------------------
def test_publish_a_raw_transaction_through_the_node(net: Network, cln: ClnBackend, wallet: Wallet) -> None:
    psbt = wallet.psbt_paying((wallet.address(), 10_000))
    raw = bytes.fromhex(wallet.raw(wallet.sign(psbt)))
    txid = cln.publish(raw)
    assert in_mempool(net, txid)
    assert cln.publish(raw) == txid  # already in the mempool: fine
    orphan = bytearray(raw)
    orphan[7] ^= 1  # version, segwit marker and flag, input count: then the first prevout txid
    with pytest.raises(BroadcastRejected, match="refused to publish"):
        cln.publish(bytes(orphan))


def test_sweep_keeps_the_emergency_reserve(net: Network, cln: ClnBackend, wallet: Wallet) -> None:
    reserve = cln.anchor_reserve()
    assert reserve.required_sat == 25_000  # lightningd's min-emergency-msat with anchor channels
    balance = cln.onchain_balance()
    assert balance.reserved_anchor_sat == 25_000 and balance.confirmed_sat > 100_000
    address = wallet.address()
    preview = cln.sweep_to(address, dry_run=True)
    assert preview.dry_run and preview.kept_sat == 25_000 and preview.txid is None
    assert preview.amount_sat + preview.fee_sat + preview.kept_sat == balance.confirmed_sat - balance.locked_sat
    assert cln.onchain_balance().locked_sat == balance.locked_sat  # a dry run locks nothing
    keep_more = cln.sweep_to(address, keep_sat=60_000, dry_run=True)
    assert keep_more.kept_sat >= 60_000 and keep_more.amount_sat < preview.amount_sat
    done = cln.sweep_to(address, keep_sat=60_000)
    assert done.txid and in_mempool(net, done.txid) and done.kept_sat >= 60_000
    assert wallet.received(done.txid, address) == done.amount_sat
    net.mine(1)
    wait_for(
        lambda: cln.onchain_balance().confirmed_sat >= 60_000 and cln.onchain_balance().unconfirmed_sat == 0,
        60,
        what="the sweep's change confirmed",
    )
    rest = cln.sweep_to(address)
    assert rest.kept_sat == 25_000 and wallet.received(rest.txid or "", address) == rest.amount_sat


def test_backup_and_new_address(cln: ClnBackend) -> None:
    import json

    backup = json.loads(cln.channel_backup())
    assert backup["format"] == "cln-staticbackup" and backup["scb"]
    assert cln.new_address().startswith("bcrt1q")


def test_node_add_and_check_through_the_cli(net: Network, tmp_path: Path) -> None:
    from tests.support.cli_runner import init_regtest, ok, run

    config = init_regtest(tmp_path)
    added = ok(config, "node", "add", "east", "--cln", "--rpc-file", str(net.cln[0].rpc_file))
    assert added["kind"] == "cln"
    checked = ok(config, "node", "check", "east")
    assert checked["ok"] and {c["name"] for c in checked["checks"]} >= {"reachable", "synced", "network", "version"}
    human = run(config, "node", "check", "east")
    assert human.exit_code == 0 and "all checks passed" in human.stdout
