"""Bitcoin Core as the oracle for the recovery wallet: addresses, checksums, and our transactions.

Starts its own ``bitcoind -regtest`` (the harness's BitcoindNode); skipped,
naming what is missing, when bitcoind is not installed. Core derives the
same addresses as l2custody for Liana's shapes, and its testmempoolaccept
accepts our finalized primary and recovery spends, refusing the recovery
spend of a coin younger than the delay ("non-BIP68-final").

The coins are coinbase outputs mined straight to the wallet's addresses
(matured by 100 more blocks), and the change of a primary spend for the
young coin.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from embit import ec
from embit.networks import NETWORKS
from embit.script import p2wpkh
from embit.transaction import Transaction

from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.psbt import TxOut, Utxo, build_psbt, combine, finalize
from regtest.binaries import find_binary, missing_reason
from regtest.chain import BitcoindNode
from tests.support import miniscript as ms

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_binary("bitcoind") is None, reason=f"needs {missing_reason('bitcoind')}"),
]

N = 6
A, B, C, R1, R2, R3 = ms.signers()[:6]
SHAPES = {
    "one recovery key": ms.text(N),
    "stacked, thresh recovery": ms.stacked_text(),
    "one primary key": f"wsh(or_d(pk({ms.keys()[0]}),and_v(v:pkh({ms.keys()[3]}),older({N}))))",
}


def outside_address() -> str:
    return p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"])


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BitcoindNode]:
    binary = find_binary("bitcoind")
    node = BitcoindNode(tmp_path_factory.mktemp("bitcoind"), binary, outside_address())
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_core_derives_our_addresses_and_checksums(core: BitcoindNode, name: str) -> None:
    desc = RecoveryDescriptor.parse(SHAPES[name], network="regtest")
    for change in (False, True):
        text = desc.to_string(change=change)
        assert core.rpc("deriveaddresses", text, [0, 9]) == [desc.address(change, i) for i in range(10)]
        info = core.rpc("getdescriptorinfo", text.split("#")[0])
        assert info["checksum"] == text.split("#")[1]
        assert info["issolvable"] is True and info["isrange"] is True


def mined_coin(core: BitcoindNode, desc: RecoveryDescriptor, index: int) -> Utxo:
    """A coinbase output paying receive address ``index``."""
    derived = desc.derive(False, index)
    [block_hash] = core.rpc("generatetoaddress", 1, derived.address)
    txid = core.rpc("getblock", block_hash, 1)["tx"][0]
    raw = bytes.fromhex(core.rpc("getrawtransaction", txid))
    tx = Transaction.parse(raw)
    vout = next(i for i, o in enumerate(tx.vout) if o.script_pubkey.data == derived.script_pubkey)
    return Utxo(txid, vout, tx.vout[vout].value, derived.script_pubkey, False, index, core.height(), raw)


def spend(core: BitcoindNode, desc: RecoveryDescriptor, coin: Utxo, signers, recovery: int | None) -> bytes:
    out = TxOut.to_address(outside_address(), coin.value // 2, "regtest")
    psbt = build_psbt(desc, [coin], [out], coin.index, 2.0, core.height(), recovery=recovery)
    return finalize(combine([s.sign(psbt) for s in signers]), desc)


def accept(core: BitcoindNode, raw: bytes) -> dict:
    [result] = core.rpc("testmempoolaccept", [raw.hex()])
    return result


def test_core_accepts_our_primary_and_recovery_spends(core: BitcoindNode) -> None:
    desc = RecoveryDescriptor.parse(SHAPES["one recovery key"], network="regtest")
    old, other = mined_coin(core, desc, 0), mined_coin(core, desc, 1)
    core.mine(100)  # coinbase maturity; both coins are now far older than N blocks
    primary = spend(core, desc, old, (A, C), recovery=None)
    assert accept(core, primary)["allowed"] is True
    recovery = spend(core, desc, other, (R1,), recovery=N)
    assert accept(core, recovery)["allowed"] is True

    # a young coin: the change of the primary spend, one confirmation old
    txid = core.rpc("sendrawtransaction", primary.hex())
    core.mine(1)
    change = desc.derive(True, old.index)
    tx = Transaction.parse(primary)
    vout = next(i for i, o in enumerate(tx.vout) if o.script_pubkey.data == change.script_pubkey)
    young = Utxo(txid, vout, tx.vout[vout].value, change.script_pubkey, True, old.index, core.height(), primary)
    early = spend(core, desc, young, (R1,), recovery=N)
    verdict = accept(core, early)
    assert verdict["allowed"] is False and verdict["reject-reason"] == "non-BIP68-final", verdict
    core.mine(N - 1)
    assert accept(core, early)["allowed"] is True


def test_core_accepts_the_stacked_paths(core: BitcoindNode) -> None:
    desc = RecoveryDescriptor.parse(SHAPES["stacked, thresh recovery"], network="regtest")
    coins = [mined_coin(core, desc, i) for i in range(3)]
    core.mine(100)
    for coin, signers, recovery in ((coins[0], (B, C), None), (coins[1], (R1,), 10), (coins[2], (R2, R3), 20)):
        verdict = accept(core, spend(core, desc, coin, signers, recovery))
        assert verdict["allowed"] is True, (recovery, verdict)
