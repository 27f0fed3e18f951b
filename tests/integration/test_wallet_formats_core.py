"""Bitcoin Core judges what the wallet-file readers produce: 17-20 keys, ``/<1;0>/*``, every tool's fixture.

Starts its own ``bitcoind -regtest``; skipped, naming what is missing, when
bitcoind is not installed. Core's ``deriveaddresses`` on the receive and
change descriptors must give the addresses we derive (Core writes regtest
addresses, so the fixtures are imported on regtest; mainnet fixtures are
compared by script, not by address text).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.formats import import_wallet
from regtest.binaries import find_binary, missing_reason
from regtest.chain import BitcoindNode
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


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BitcoindNode]:
    node = BitcoindNode(tmp_path_factory.mktemp("bitcoind"), find_binary("bitcoind"), WALLET["regtest_receive"][0])
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
