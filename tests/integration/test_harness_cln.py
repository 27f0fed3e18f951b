"""Core Lightning joins the network where lightningd + bitcoind exist; skipped, naming what is
missing, elsewhere."""

from __future__ import annotations

import pytest

from regtest import Network, confirmed_balance, is_peer

pytestmark = [pytest.mark.integration, pytest.mark.cln]


def test_cln_and_lnd_share_a_bitcoind_chain_and_peer(cln_network: Network) -> None:
    net = cln_network
    assert net.chain.kind == "bitcoind" and net.chain.rpc_cert is None
    lnd, cln = net.lnd[0], net.cln[0]
    assert cln.rpc_file.exists()
    assert cln.block_height() == lnd.info().block_height == net.chain.height()
    assert confirmed_balance(cln) >= 50_000_000
    net.connect(cln, lnd)
    assert is_peer(lnd, cln) and is_peer(cln, lnd)
