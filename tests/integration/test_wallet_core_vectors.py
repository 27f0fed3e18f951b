"""Bitcoin Core as the oracle for address derivation and descriptor checksums.

Starts its own ``bitcoind -regtest`` (through the harness's BitcoindNode) in a
temporary directory; skipped, naming what is missing, when bitcoind is not
installed. The same addresses are checked into tests/vectors and re-derived
by hand in tests/unit/test_wallet_descriptor.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2custody.wallet.descriptor import MultisigDescriptor
from regtest.binaries import find_binary, missing_reason
from regtest.chain import BitcoindNode

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
WALLET = json.loads((VECTORS / "wallet_2of3.json").read_text())

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_binary("bitcoind") is None, reason=f"needs {missing_reason('bitcoind')}"),
]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BitcoindNode]:
    binary = find_binary("bitcoind")
    # deriveaddresses needs no wallet and no blocks; the mining address is unused.
    node = BitcoindNode(tmp_path_factory.mktemp("bitcoind"), binary, WALLET["regtest_receive"][0])
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_core_derives_the_vector_addresses(core: BitcoindNode) -> None:
    assert core.rpc("deriveaddresses", WALLET["descriptor_receive"], [0, 9]) == WALLET["regtest_receive"]
    assert core.rpc("deriveaddresses", WALLET["descriptor_change"], [0, 4]) == WALLET["regtest_change"]


def test_core_agrees_with_our_checksums(core: BitcoindNode) -> None:
    desc = MultisigDescriptor.parse(WALLET["descriptor"], network="regtest")
    for change in (False, True):
        text = desc.to_string(change=change)
        info = core.rpc("getdescriptorinfo", text.split("#")[0])
        assert info["checksum"] == text.split("#")[1]
        assert info["issolvable"] is True and info["isrange"] is True
