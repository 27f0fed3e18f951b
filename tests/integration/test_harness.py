"""The harness on real btcd + 2 lnd: a channel opened, paid across and closed, judged by
the chain."""

from __future__ import annotations

from typing import Any

import pytest
from lndgrpc.compiled import lightning_pb2 as ln
from lndgrpc.compiled import walletkit_pb2 as wk

from regtest import Network, confirmed_balance, wait_for
from regtest.lightning import close_channel, find_channel, open_channel, pay
from regtest.lnd import LndNode

pytestmark = pytest.mark.integration

CAPACITY = 1_000_000
PAYMENT = 25_000


def _sats(btc: float) -> int:
    return round(btc * 100_000_000)


def _unspent(node: LndNode) -> list[Any]:
    return list(node.walletkit.ListUnspent(wk.ListUnspentRequest(min_confs=1), timeout=30).utxos)


def test_two_synced_lnd_nodes_with_funded_wallets(network: Network) -> None:
    chain = network.chain
    assert (chain.kind, chain.network) == ("btcd", "regtest")
    assert chain.rpc_url.startswith("https://127.0.0.1:")
    assert chain.rpc_cert is not None and chain.rpc_cert.exists()
    a, b = network.lnd
    assert a.pubkey != b.pubkey
    for node in network.lnd:
        assert node.tls_cert.exists() and node.admin_macaroon.exists()
        info = node.info()
        assert info.synced_to_chain and info.block_height == chain.height()
        assert sorted(u.amount_sat for u in _unspent(node)) == [25_000_000] * 4


def test_channel_open_pay_and_cooperative_close_settle_on_chain(network: Network) -> None:
    alice, bob = network.lnd
    bob_wallet_before = confirmed_balance(bob)

    chan_point = open_channel(network, alice, bob, CAPACITY)
    funding_txid, index = chan_point.split(":")
    funding = network.chain.rpc("getrawtransaction", funding_txid, 1)
    assert funding["confirmations"] >= 1
    assert _sats(funding["vout"][int(index)]["value"]) == CAPACITY

    result = pay(alice, bob, PAYMENT, memo="harness test")
    assert result.status == "SUCCEEDED", result.failure_reason
    invoice = bob.ln.LookupInvoice(ln.PaymentHash(r_hash=bytes.fromhex(result.payment_hash)), timeout=30)
    assert invoice.state == ln.Invoice.SETTLED and invoice.amt_paid_sat == PAYMENT
    assert find_channel(bob, chan_point).local_balance == PAYMENT  # type: ignore[union-attr]

    closing_txid = close_channel(network, alice, chan_point)
    closing = network.chain.rpc("getrawtransaction", closing_txid, 1)
    assert closing["confirmations"] >= 1
    assert [(i["txid"], i["vout"]) for i in closing["vin"]] == [(funding_txid, int(index))]
    assert network.chain.rpc("gettxout", funding_txid, int(index)) is None  # spent on chain
    values = sorted(_sats(o["value"]) for o in closing["vout"])
    assert PAYMENT in values  # bob's share, whole: the initiator pays the closing fee
    assert 0 < CAPACITY - sum(values) < 5_000

    # Both shares are back in the wallets, as confirmed coins of the closing transaction.
    wait_for(
        lambda: confirmed_balance(bob) == bob_wallet_before + PAYMENT, 60, what="bob's share of the close in his wallet"
    )
    for node in (alice, bob):
        assert any(u.outpoint.txid_str == closing_txid for u in _unspent(node))
    assert find_channel(alice, chan_point) is None and find_channel(bob, chan_point) is None


def test_restart_keeps_identity_wallet_and_peers_reconnect(network: Network) -> None:
    alice, bob = network.lnd
    pubkey, balance = bob.pubkey, confirmed_balance(bob)
    bob.restart()
    assert bob.info().identity_pubkey == pubkey
    assert confirmed_balance(bob) == balance
    network.connect(alice, bob)


def test_mined_blocks_reach_every_node(network: Network) -> None:
    hashes = network.mine(3)
    assert len(set(hashes)) == 3 and network.chain.rpc("getbestblockhash") == hashes[-1]
    assert {n.info().block_hash for n in network.lnd} == {hashes[-1]}


def test_a_node_stopped_on_purpose_is_not_waited_for_and_comes_back(network: Network) -> None:
    bob = network.lnd[1]
    assert bob.stop() is None and not bob.alive()
    network.mine(1)  # returns although bob cannot follow: a stopped node is not waited for
    bob.restart()
    network.sync_all()
    assert bob.info().block_height == network.chain.height()
