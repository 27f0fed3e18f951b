"""The harness's chain side on a real btcd: faucet payments, reorgs, and start-up faults."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from embit.ec import PrivateKey
from embit.script import Script, p2tr, p2wpkh, p2wsh

import regtest.chain
import regtest.lnd
import regtest.util
from regtest import DaemonStartError, FaucetError, Network
from regtest.binaries import ensure
from regtest.chain import BtcdNode
from regtest.faucet import REGTEST

pytestmark = pytest.mark.integration

PUB = PrivateKey(bytes.fromhex("33" * 32)).get_public_key()
ADDRESSES = [p2wpkh(PUB).address(REGTEST), p2wsh(Script(b"\x51")).address(REGTEST), p2tr(PUB).address(REGTEST)]


def _sats(btc: float) -> int:
    return round(btc * 100_000_000)


def test_faucet_pays_every_address_type_and_the_chain_confirms_it(chain_network: Network) -> None:
    net = chain_network
    outputs = [(address, 10_000 + i) for i, address in enumerate(ADDRESSES)]
    txid = net.fund_addresses(outputs)
    assert txid in net.chain.rpc("getrawmempool")
    [block] = net.mine(1)
    tx = net.chain.rpc("getrawtransaction", txid, 1)
    assert tx["confirmations"] == 1 and tx["blockhash"] == block
    for vout, (address, sats) in enumerate(outputs):
        out = net.chain.rpc("gettxout", txid, vout)
        assert _sats(out["value"]) == sats and out["scriptPubKey"]["addresses"] == [address]


def test_several_payments_between_two_blocks_spend_different_coins(chain_network: Network) -> None:
    net = chain_network
    txids = [net.fund_address(ADDRESSES[0], 20_000) for _ in range(3)]
    assert len(set(txids)) == 3
    assert set(txids) <= set(net.chain.rpc("getrawmempool"))
    net.mine(1)
    assert net.chain.rpc("getrawmempool") == []


def test_faucet_refuses_what_it_cannot_pay_and_loses_nothing(chain_network: Network) -> None:
    net = chain_network
    before = net.faucet.balance(net.chain)
    with pytest.raises(FaucetError, match="mine more blocks"):
        net.fund_address(ADDRESSES[0], before + 1)
    with pytest.raises(FaucetError, match="not a regtest address"):
        net.fund_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", 10_000)
    assert net.faucet.balance(net.chain) == before


def test_invalidate_and_reconsider_make_a_reorg(chain_network: Network) -> None:
    net = chain_network
    txid = net.fund_address(ADDRESSES[1], 30_000)
    [old] = net.mine(1)
    height = net.chain.height()

    net.invalidate_block(old)
    assert net.chain.height() == height - 1
    assert txid in net.chain.rpc("getrawmempool")  # back from the disconnected block

    branch = net.mine(2)
    assert old not in branch and net.chain.height() == height + 1
    assert net.chain.rpc("getrawtransaction", txid, 1)["blockhash"] in branch

    net.reconsider_block(old)  # valid again, but on the shorter branch: the tip stays
    assert net.chain.rpc("getbestblockhash") == branch[-1]
    # The faucet noticed the reorg (it rescans) and still pays.
    net.fund_address(ADDRESSES[0], 15_000)
    net.mine(1)


def test_lnd_that_dies_at_start_up_fails_fast_with_its_log_tail(chain_network: Network) -> None:
    with pytest.raises(DaemonStartError) as err:
        chain_network.add_lnd(extra_args=("--no-such-flag",))
    message = err.value.message
    assert "lnd-0 exited" in message and "unknown flag" in message
    assert str(chain_network.workdir / "lnd-0" / "daemon.log") in message
    assert chain_network.lnd == []  # not reported again at teardown


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _first_port(monkeypatch: pytest.MonkeyPatch, module: object, port: int) -> None:
    """Fault injection: the first reserved port is one another process holds (the race a
    real collision needs cannot be caused on demand)."""
    real = regtest.util.reserve_port
    handed = iter([port])
    monkeypatch.setattr(module, "reserve_port", lambda: next(handed, None) or real())


def test_btcd_port_conflict_is_retried_on_fresh_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        _first_port(monkeypatch, regtest.chain, port)
        node = BtcdNode(tmp_path / "btcd", ensure("btcd"), ADDRESSES[0])
        try:
            node.start()
            assert node.start_attempts == 2 and port not in (node.rpc_port, node.p2p_port)
            assert node.height() == 0
            log = node.log_path.read_text()
            assert "address already in use" in log and "retrying on fresh ports" in log
        finally:
            assert node.stop() is None


def test_lnd_port_conflict_is_retried_on_fresh_ports(chain_network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        _first_port(monkeypatch, regtest.lnd, port)
        node = chain_network.add_lnd(name="lnd-conflict")
        assert node.start_attempts == 2 and port not in (node.grpc_port, node.p2p_port)
        assert node.info().synced_to_chain
        assert "retrying on fresh ports" in node.log_path.read_text()
