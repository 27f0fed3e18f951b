"""Bitcoin Core judges what the wallet-file readers produce: 17-20 keys, ``/<1;0>/*``, every tool's fixture.

Starts its own ``bitcoind -regtest``; skipped, naming what is missing, when
bitcoind is not installed. Core's ``deriveaddresses`` on the receive and
change descriptors must give the addresses we derive (Core writes regtest
addresses, so the fixtures are imported on regtest; mainnet fixtures are
compared by script, not by address text). Spends from 17- and 20-key
wallets and from a ``/<1;0>/*`` wallet, signed by software signers and
finalized by us, must pass Core's ``testmempoolaccept``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from embit import bip32
from embit.ec import PrivateKey
from embit.networks import NETWORKS

from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.formats import import_wallet
from l2custody.wallet.psbt import TxOut, Utxo, build_psbt, combine, finalize
from l2custody.wallet.signers import SoftwareSigner
from regtest.binaries import find_binary, missing_reason
from regtest.chain import BitcoindNode
from regtest.faucet import Faucet
from tests.support.wallet import WALLET
from tests.unit.test_wallet_descriptor_limits import account_keys

FIXTURES = Path(__file__).resolve().parent.parent / "vectors" / "wallets"
TEST_NETWORK_FIXTURES = [
    "coldcard/export-p2wsh-myself.txt",
    "coldcard/caravan-wc-p2wsh_t.txt",
    "electrum/el-p2wsh-myself.json",
    "caravan/bitcoin-2-of-2-P2WSH_TESTNET.json",
    "specter/coldcard-trezor-1of2.json",
    "specter-diy/addwallet-2of3.txt",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_binary("bitcoind") is None, reason=f"needs {missing_reason('bitcoind')}"),
]


FAUCET = Faucet(PrivateKey(bytes([7]) * 32))


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BitcoindNode]:
    node = BitcoindNode(tmp_path_factory.mktemp("bitcoind"), find_binary("bitcoind"), FAUCET.address)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def core_addresses(core: BitcoindNode, desc: MultisigDescriptor, change: bool, count: int) -> list[str]:
    body = desc.to_string(change=change, checksum=False)
    checked = core.rpc("getdescriptorinfo", body)["descriptor"]
    return core.rpc("deriveaddresses", checked, [0, count - 1])


@pytest.mark.parametrize(("n", "k"), [(16, 16), (17, 2), (17, 17), (20, 1), (20, 20)])
def test_core_derives_our_addresses_for_up_to_twenty_keys(core: BitcoindNode, n: int, k: int) -> None:
    desc = MultisigDescriptor.from_keys(k, account_keys(n), "regtest")
    for change in (False, True):
        assert core_addresses(core, desc, change, 3) == [desc.address(change, i) for i in range(3)]


def test_core_reads_reversed_multipath_as_receive_on_branch_one(core: BitcoindNode) -> None:
    text = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/<1;0>/*")
    desc = MultisigDescriptor.parse(text, "regtest")
    expansion = core.rpc("getdescriptorinfo", text)["multipath_expansion"]
    receive, change = (core.rpc("deriveaddresses", d, [0, 2]) for d in expansion)
    assert receive == [desc.address(False, i) for i in range(3)]
    assert change == [desc.address(True, i) for i in range(3)]


@pytest.mark.parametrize("name", TEST_NETWORK_FIXTURES)
def test_core_derives_what_we_read_from_each_tools_file(core: BitcoindNode, name: str) -> None:
    text = (FIXTURES / name).read_text()
    network = "test" if "TESTNET" in name else "regtest"  # Caravan files name their network
    desc = import_wallet(text, network=network).descriptor
    regtest = MultisigDescriptor(desc.threshold, desc.keys, "regtest", desc.branches)
    for change in (False, True):
        ours = [address_to_script(desc.address(change, i), desc.network) for i in range(2)]
        theirs = [address_to_script(a, "regtest") for a in core_addresses(core, regtest, change, 2)]
        assert ours == theirs


def roots(count: int) -> list[bip32.HDKey]:
    """The master keys behind ``account_keys(count)``."""
    return [bip32.HDKey.from_seed(bytes([i + 1]) * 32, version=NETWORKS["test"]["xprv"]) for i in range(count)]


@pytest.mark.parametrize(
    ("n", "k", "multipath"), [(17, 2, "<0;1>"), (17, 17, "<0;1>"), (20, 20, "<0;1>"), (3, 2, "<1;0>")]
)
def test_core_accepts_our_spend_from_large_and_reversed_wallets(
    core: BitcoindNode, n: int, k: int, multipath: str
) -> None:
    """Funded on regtest, spent with K software signatures: Core's mempool is the judge of the witness."""
    text = MultisigDescriptor.from_keys(k, account_keys(n), "regtest").to_string(checksum=False)
    desc = MultisigDescriptor.parse(text.replace("<0;1>", multipath), "regtest")
    if core.height() < 101:
        core.mine(101)
    FAUCET.scan(core)
    receive = desc.derive(False, 0)
    txid = FAUCET.pay(core, [(receive.address, 200_000)])
    core.mine(1)
    prev = core.rpc("getrawtransaction", txid, 1)
    vout = next(o["n"] for o in prev["vout"] if o["scriptPubKey"].get("address") == receive.address)
    coin = Utxo(txid, vout, 200_000, receive.script_pubkey, False, 0, prev_tx=bytes.fromhex(prev["hex"]))
    out = TxOut.to_address(FAUCET.address, 200_000, "regtest")
    psbt = build_psbt(desc, [coin], [out], None, 2.0, core.height(), subtract_fee_from=0)
    signed = combine([SoftwareSigner(root).sign(psbt) for root in roots(n)[:k]])
    raw = finalize(signed, desc)
    [verdict] = core.rpc("testmempoolaccept", [raw.hex()])
    assert verdict["allowed"], verdict
