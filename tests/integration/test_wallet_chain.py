"""JsonRpcChain and the scanner against a real btcd: answers, errors, reorgs.

The reorg tests use the harness's invalidateblock/reconsiderblock: the block
holding our funding leaves the best chain and the wallet's balance follows,
then comes back.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh

from l2custody.chain.base import ChainSource
from l2custody.chain.rpc import JsonRpcChain
from l2custody.config import init_config
from l2custody.errors import (
    BroadcastRejected,
    ChainError,
    ChainUnreachable,
    NetworkMismatch,
)
from l2custody.wallet.service import Wallet
from l2custody.wallet.signers import (
    SoftwareSigner,
    generate_mnemonic,
    write_secret_file,
)
from regtest import Network

pytestmark = pytest.mark.integration


def rpc(net: Network, **overrides: object) -> JsonRpcChain:
    args = dict(user=net.chain.rpc_user, password=net.chain.rpc_password, cert=net.chain.rpc_cert)
    args.update(overrides)
    return JsonRpcChain(net.chain.rpc_url, **args)  # type: ignore[arg-type]


def outside_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


# --- the RPC client ----------------------------------------------------------------


def test_btcd_answers_are_normalised(chain_network: Network) -> None:
    net = chain_network
    chain = rpc(net)
    assert isinstance(chain, ChainSource)
    info = chain.check_network("regtest")
    assert (info.network, info.kind) == ("regtest", "btcd")
    assert info.height == chain.tip_height() == net.chain.height()
    assert info.best_hash == chain.block_hash(info.height)


def test_batched_blocks_equal_single_calls(chain_network: Network) -> None:
    chain = rpc(chain_network)
    tip = chain.tip_height()
    hashes = chain.block_hashes(tip - 60, 61)  # more than one batch
    assert hashes == [chain.block_hash(h) for h in range(tip - 60, tip + 1)]
    blocks = chain.raw_blocks(hashes[-3:])
    assert blocks == [chain.raw_block(h) for h in hashes[-3:]]
    from l2custody.chain.memory import block_hash

    assert [block_hash(b) for b in blocks] == hashes[-3:]


def test_mempool_transactions_are_readable(chain_network: Network) -> None:
    net = chain_network
    txid = net.fund_address(outside_address(), 50_000)
    chain = rpc(net)
    assert txid in chain.mempool_txids()
    raw = chain.raw_transaction(txid)
    from embit.transaction import Transaction

    assert Transaction.parse(raw).txid().hex() == txid
    accept = chain.test_accept(raw)  # already in the mempool: not acceptable twice
    assert accept is not None and accept.allowed is False
    net.mine(1)


def test_rejected_broadcast_says_nothing_was_sent(chain_network: Network) -> None:
    with pytest.raises(BroadcastRejected, match="nothing was broadcast"):
        rpc(chain_network).broadcast(bytes.fromhex("02000000000000000000"))


def test_wrong_network_is_refused(chain_network: Network) -> None:
    chain = rpc(chain_network)
    with pytest.raises(NetworkMismatch) as exc:
        chain.check_network("main")
    assert chain_network.chain.rpc_url in exc.value.message and "regtest" in exc.value.message


def test_bad_credentials_and_bad_tls_are_explained(chain_network: Network, tmp_path: Path) -> None:
    net = chain_network
    with pytest.raises(ChainUnreachable, match="refused our credentials"):
        rpc(net, password="wrong").tip_height()
    with pytest.raises(ChainUnreachable, match="TLS"):
        rpc(net, cert=None).tip_height()  # the system CAs do not know btcd's self-signed cert
    plain = net.chain.rpc_url.replace("https://", "http://")
    with pytest.raises(ChainError):
        JsonRpcChain(plain, user=net.chain.rpc_user, password=net.chain.rpc_password, timeout=5).tip_height()


def test_rpc_error_keeps_the_node_message(chain_network: Network) -> None:
    with pytest.raises(ChainError, match="out of range"):
        rpc(chain_network).block_hash(10**7)


def test_btcd_has_no_fee_estimate_yet(chain_network: Network) -> None:
    rate = rpc(chain_network).estimate_fee_rate()
    assert rate is None or rate > 0


# --- reorgs through a wallet ---------------------------------------------------------------


@pytest.fixture(scope="module")
def wallet(chain_network: Network, tmp_path_factory: pytest.TempPathFactory):
    net = chain_network
    d = tmp_path_factory.mktemp("reorg")
    cfg = init_config(
        d / "config.toml",
        "regtest",
        data_dir=d / "data",
        chain_url=net.chain.rpc_url,
        chain_user=net.chain.rpc_user,
        chain_password=net.chain.rpc_password,
        chain_cert=net.chain.rpc_cert,
        birthday=net.chain.height(),
    )
    keys = []
    for n in range(3):
        write_secret_file(d / f"k{n}", generate_mnemonic(12))
        keys.append(SoftwareSigner.from_file(d / f"k{n}").account_key().to_string())
    w = Wallet.create(cfg, 2, keys)
    yield w
    w.close()


def test_funding_block_invalidated_then_reconsidered(chain_network: Network, wallet: Wallet) -> None:
    net = chain_network
    address = wallet.next_address().address
    txid = net.fund_address(address, 250_000)
    [block] = net.mine(1)
    wallet.sync()
    assert wallet.balance().confirmed == 250_000
    [u] = wallet.utxos()
    assert (u.txid, u.height) == (txid, net.chain.height())

    net.invalidate_block(block)  # the funding block leaves the best chain
    result = wallet.sync()
    assert result.reorg_fork == net.chain.height()
    assert txid in net.chain.rpc("getrawmempool")  # btcd put the transaction back
    bal = wallet.balance()
    assert (bal.confirmed, bal.unconfirmed) == (0, 250_000)
    assert "reorg" in [e.action for e in wallet.store.audit_log()]

    net.reconsider_block(block)  # valid again: btcd returns to it
    assert net.chain.rpc("getbestblockhash") == block
    wallet.sync()
    [u] = wallet.utxos()
    assert u.txid == txid
    assert wallet.store.utxo(txid, u.vout).block_hash == block  # type: ignore[union-attr]
    assert wallet.balance().confirmed == 250_000


def test_funding_replaced_on_a_longer_branch_disappears(chain_network: Network, wallet: Wallet) -> None:
    """The funding block is orphaned by a longer branch where the payment was double-spent."""
    from regtest.faucet import Coin

    net = chain_network
    before = wallet.balance().confirmed
    address = wallet.next_address().address
    txid = net.fund_address(address, 111_000)
    funding = net.chain.rpc("getrawtransaction", txid, 1)
    [block] = net.mine(1)
    wallet.sync()
    assert wallet.balance().confirmed == before + 111_000

    net.invalidate_block(block)
    coins = []
    for vin in funding["vin"]:
        prev = net.chain.rpc("getrawtransaction", vin["txid"], 1)
        value = round(prev["vout"][vin["vout"]]["value"] * 100_000_000)
        coins.append(Coin(vin["txid"], vin["vout"], value, 0, False))
    double_spend = net.faucet.build(coins, [(outside_address(), 100_000)], fee_rate=50)
    replacement = net.chain.rpc("sendrawtransaction", double_spend.serialize().hex())  # RBF
    assert txid not in net.chain.rpc("getrawmempool")
    net.mine(2)
    net.reconsider_block(block)  # the old branch is shorter: btcd stays on the new one
    assert net.chain.rpc("getrawtransaction", replacement, 1)["confirmations"] == 2

    result = wallet.sync()
    assert result.reorg_fork is not None
    bal = wallet.balance()
    assert (bal.confirmed, bal.unconfirmed) == (before, 0)
    assert wallet.store.utxo(txid, 0) is None and wallet.store.utxo(txid, 1) is None
    assert all(u.txid != txid for u in wallet.utxos())
