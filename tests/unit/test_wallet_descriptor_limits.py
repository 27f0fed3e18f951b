"""Descriptor limits and branch forms: 20 keys in P2WSH, /{0,1}/* and /<1;0>/* multipath."""

from __future__ import annotations

import pytest
from embit import bip32
from embit.networks import NETWORKS

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.size import multisig_witness_script_size
from tests.support.wallet import WALLET, descriptor


def account_keys(count: int) -> list[str]:
    keys = []
    for i in range(count):
        root = bip32.HDKey.from_seed(bytes([i + 1]) * 32, version=NETWORKS["test"]["xprv"])
        account = root.derive("m/48h/1h/0h/2h").to_public()
        keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{account.to_base58()}")
    return keys


@pytest.mark.parametrize(
    ("n", "tail"), [(16, bytes([0x60, 0xAE])), (17, bytes([1, 17, 0xAE])), (20, bytes([1, 20, 0xAE]))]
)
def test_p2wsh_takes_up_to_twenty_keys_with_the_count_pushed_as_a_number(n: int, tail: bytes) -> None:
    desc = MultisigDescriptor.from_keys(2, account_keys(n), "regtest")
    script = desc.derive(False, 0).witness_script
    assert script[0] == 0x52 and script.endswith(tail)
    assert len(script) == multisig_witness_script_size(n, 2)


def test_seventeen_keys_push_seventeen_as_a_one_byte_number() -> None:
    desc = MultisigDescriptor.from_keys(17, account_keys(17), "regtest")
    script = desc.derive(False, 0).witness_script
    assert script[:2] == bytes([1, 17]) and script[-3:] == bytes([1, 17, 0xAE])
    assert len(script) == multisig_witness_script_size(17, 17) == 2 + 17 * 34 + 2 + 1


def test_twenty_one_keys_are_refused_with_the_p2wsh_limit() -> None:
    with pytest.raises(DescriptorError, match="at most 20"):
        MultisigDescriptor.from_keys(2, account_keys(21), "regtest")


def test_the_legacy_brace_multipath_is_the_same_wallet() -> None:
    text = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/{0,1}/*")
    assert MultisigDescriptor.parse(text, "regtest") == descriptor()


def test_reversed_multipath_receives_on_branch_one() -> None:
    text = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/<1;0>/*")
    reversed_ = MultisigDescriptor.parse(text, "regtest")
    assert reversed_ != descriptor() and reversed_.branches == (1, 0)
    assert reversed_.address(False, 0) == WALLET["regtest_change"][0]
    assert reversed_.address(True, 0) == WALLET["regtest_receive"][0]
    assert "/<1;0>/*" in reversed_.to_string()
    assert MultisigDescriptor.parse(reversed_.to_string(), "regtest") == reversed_
    fp = reversed_.keys[0].fingerprint_bytes
    assert reversed_.match_derivation(fp, [*reversed_.keys[0].indexes, 1, 7]) == (False, 7)
    assert reversed_.descriptor_id != descriptor().descriptor_id


def test_other_branch_numbers_are_refused() -> None:
    text = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/<0;2>/*")
    with pytest.raises(DescriptorError, match="standard branches"):
        MultisigDescriptor.parse(text, "regtest")


def test_a_single_public_key_is_refused_as_not_derivable() -> None:
    key = "[59865f44/48'/0'/0'/2']026d15412460ba0d881c21837bb999233896085a9ed4e5445bd637c10e579768ba"
    with pytest.raises(DescriptorError, match="single public key"):
        MultisigDescriptor.parse(f"wsh(sortedmulti(1,{key}))", "main")
