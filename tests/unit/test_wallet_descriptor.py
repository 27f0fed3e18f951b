"""The multisig descriptor: what it accepts, what it refuses, and the addresses it derives.

Address vectors live in tests/vectors/wallet_2of3.json. They were computed
once by this code; the tests here re-derive them by hand from the BIP-39
mnemonics with embit's low-level primitives (BIP-32 child derivation,
sha256, bech32) and with embit's own descriptor parser, so the descriptor
code is never checked against itself. The BIP-129 test vector (a 2-of-2 on
mainnet with its first address) is an outside reference.
"""

from __future__ import annotations

import hashlib

import pytest
from embit import bech32, bip32, bip39
from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.descriptor import (
    KeyOrigin,
    MultisigDescriptor,
    descriptor_checksum,
    parse_path,
)
from tests.support.wallet import WALLET, descriptor, signers

KEYS = WALLET["keys"]
HRP = {"regtest": "bcrt", "test": "tb"}


def hand_address(change: int, index: int, network: str) -> str:
    """Derive a vector address from the mnemonics without l2custody code."""
    pubkeys = []
    for mnemonic in WALLET["mnemonics"]:
        root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
        key = root.derive("m/48h/1h/0h/2h").child(change).child(index)
        pubkeys.append(key.sec())
    pubkeys.sort()  # BIP-67
    script = bytes([0x52]) + b"".join(bytes([33]) + pk for pk in pubkeys) + bytes([0x53, 0xAE])
    return bech32.encode(HRP[network], 0, hashlib.sha256(script).digest())


# --- addresses -------------------------------------------------------------------
@pytest.mark.parametrize("network", ["regtest", "test"])
def test_addresses_equal_the_checked_in_vectors(network: str) -> None:
    desc = descriptor(network)
    assert [desc.address(False, i) for i in range(10)] == WALLET[f"{network}_receive"]
    assert [desc.address(True, i) for i in range(5)] == WALLET[f"{network}_change"]


@pytest.mark.parametrize("network", ["regtest", "test"])
def test_vectors_match_a_hand_derivation_from_the_mnemonics(network: str) -> None:
    assert [hand_address(0, i, network) for i in range(10)] == WALLET[f"{network}_receive"]
    assert [hand_address(1, i, network) for i in range(5)] == WALLET[f"{network}_change"]


def test_vectors_match_embits_descriptor_parser() -> None:
    for branch, key in (("descriptor_receive", "regtest_receive"), ("descriptor_change", "regtest_change")):
        other = Descriptor.from_string(WALLET[branch])
        got = [other.derive(i).address(NETWORKS["regtest"]) for i in range(len(WALLET[key]))]
        assert got == WALLET[key]


def test_the_software_signers_produce_the_vector_keys() -> None:
    assert [s.account_key("48h/1h/0h/2h", "regtest").to_string() for s in signers()] == KEYS


def test_bip129_test_vector_first_address() -> None:
    # From BIP-129 "Test Vectors", mode NO_ENCRYPTION, round 2 (2-of-2 on mainnet).
    text = (
        "wsh(sortedmulti(2,[1cf0bf7e/48'/0'/0'/2']xpub6FL8FhxNNUVnG64YurPd16AfGyvFLhh7S2uSsDqR3Qfcm6o9jtcMYwh6Dvm"
        "cBF9qozxNQmTCVvWtxLpKTnhVLN3Pgnu2D3pAoXYFgVyd8Yz/<0;1>/*,[4fc1dd4a/48'/0'/0'/2']xpub6EebMbEps7ZcV3FYEnd"
        "dRsvrFWDrt2tiPmCeM7pPXQEmphvq9ZfJ1LWFUDjf3vxCeBuPrfyGrMazWUsYsetrnHatQZVLJH7LsgCjtMqdzgj/<0;1>/*))"
    )
    desc = MultisigDescriptor.parse(text)
    assert desc.network == "main"
    assert desc.first_address() == "bc1qrgc6p3kylfztu06ysl752gwwuekhvtfh9vr7zg43jvu60mutamcsv948ej"


def test_derived_carries_script_and_bip32_origin_of_every_key() -> None:
    d = descriptor().derive(True, 3)
    assert d.change and d.index == 3
    assert d.script_pubkey == b"\x00\x20" + hashlib.sha256(d.witness_script).digest()
    assert d.address == WALLET["regtest_change"][3]
    assert list(d.pubkeys) == sorted(d.pubkeys)
    assert d.witness_script[0] == 0x52 and d.witness_script[-2:] == bytes([0x53, 0xAE])
    fps = sorted(fp.hex() for fp, _ in d.bip32.values())
    assert fps == sorted(k[1:9] for k in KEYS)
    for _fp, path in d.bip32.values():
        assert path == parse_path("48h/1h/0h/2h") + [1, 3]


def test_match_derivation_finds_our_paths_only() -> None:
    desc = descriptor()
    fp = bytes.fromhex(KEYS[0][1:9])
    assert desc.match_derivation(fp, parse_path("48h/1h/0h/2h/0/7")) == (False, 7)
    assert desc.match_derivation(fp, parse_path("48h/1h/0h/2h/1/2")) == (True, 2)
    assert desc.match_derivation(fp, parse_path("48h/1h/0h/2h/2/2")) is None
    assert desc.match_derivation(fp, parse_path("48h/1h/1h/2h/0/2")) is None
    assert desc.match_derivation(bytes.fromhex("deadbeef"), parse_path("48h/1h/0h/2h/0/1")) is None
    assert desc.contains_key(KEYS[1][1:9]) and not desc.contains_key("deadbeef")


# --- text forms --------------------------------------------------------------------
def test_bip380_checksum_reference_vector() -> None:
    assert descriptor_checksum("raw(deadbeef)") == "89f8spxm"


def test_externally_checksummed_multipath_descriptor_parses() -> None:
    # A 2-of-3 multipath descriptor with its checksum as published in krux's test suite.
    text = (
        "wsh(sortedmulti(2,[02e8bff2/48h/1h/0h/2h]tpubDESmyzX6RMHRHvzxgLVXymd193CSYYT6C9M9wa4XK649tbAy2WeEvkPwBgoC7i76M"
        "ypQxpuruUazQjqibbCogTZuENJX6YiuZ5Fy8sf7GNi/<0;1>/*,[8cb36b38/48h/1h/0h/2h]tpubDESTVwqbbaSoN2mPq7tcWkPBpRBkaEADr"
        "UzUhRTVnNef6oVn6w2PHL4zoUjUAJSPLJQRBetkgX4sDRcoaCyFHxqHGyWyaiV8REKDkh7zQac/<0;1>/*,[73c5da0a/48h/1h/0h/2h]tpubDF"
        "H9dgzveyD8zTbPUFuLrGmCydNvxehyNdUXKJAQN8x4aZ4j6UZqGfnqFrD4NqyaTVGKbvEW54tsvPTK2UoSbCC1PJY8iCNiwTL3RWZEheQ/<0;1>/*))#jpxgnm0a"
    )
    desc = MultisigDescriptor.parse(text, network="test")
    assert desc.to_string() == text
    assert KEYS[0] in [k.to_string() for k in desc.keys]  # the "abandon ... about" key, derived independently


def test_to_string_round_trips_with_and_without_checksum() -> None:
    desc = descriptor()
    assert desc.to_string() == WALLET["descriptor"]
    assert MultisigDescriptor.parse(desc.to_string(checksum=False), network="regtest") == desc
    assert desc.to_string(change=False) == WALLET["descriptor_receive"]


def test_receive_and_change_pair_is_one_wallet_in_either_order() -> None:
    pair = MultisigDescriptor.parse(f"{WALLET['descriptor_change']}\n{WALLET['descriptor_receive']}", network="regtest")
    assert pair == descriptor()


def test_apostrophe_and_h_hardened_markers_are_the_same_wallet() -> None:
    text = WALLET["descriptor"].split("#")[0].replace("h/", "'/").replace("h]", "']")
    assert "'" in text
    assert MultisigDescriptor.parse(text, network="regtest") == descriptor()


def test_key_order_does_not_change_addresses() -> None:
    reordered = MultisigDescriptor.from_keys(2, list(reversed(KEYS)), "regtest")
    assert reordered == descriptor()
    assert reordered.descriptor_id == descriptor().descriptor_id
    assert reordered.address(False, 4) == WALLET["regtest_receive"][4]


def test_network_defaults_to_key_family_and_is_checked() -> None:
    assert MultisigDescriptor.parse(WALLET["descriptor"]).network == "test"
    with pytest.raises(NetworkMismatch, match="mainnet"):
        MultisigDescriptor.parse(WALLET["descriptor"], network="main")


def test_bip48_coin_type_mismatch_is_a_warning() -> None:
    assert descriptor().warnings() == []
    mainnet_path = signers()[0].account_key("48h/0h/0h/2h", "regtest")
    desc = MultisigDescriptor.from_keys(2, [mainnet_path, KEYS[1], KEYS[2]], "regtest")
    assert desc.warnings() == ["key 1 path 48h/0h/0h/2h uses coin type 0h; BIP-48 uses 1h on regtest"]


# --- refusals ----------------------------------------------------------------------
def test_refuses_keys_without_origin_and_explains_why() -> None:
    bare = KEYS[0].split("]")[1]
    with pytest.raises(DescriptorError, match="hardware and air-gapped signers") as exc:
        MultisigDescriptor.from_keys(2, [bare, KEYS[1], KEYS[2]], "regtest")
    assert "key 1" in exc.value.message and "fingerprint" in exc.value.message


def test_refuses_threshold_above_number_of_keys() -> None:
    with pytest.raises(DescriptorError, match="K=4 is more than the 3 keys"):
        MultisigDescriptor.from_keys(4, KEYS, "regtest")


def test_refuses_threshold_below_one() -> None:
    with pytest.raises(DescriptorError, match="at least 1"):
        MultisigDescriptor.from_keys(0, KEYS, "regtest")


def test_refuses_the_same_key_twice() -> None:
    with pytest.raises(DescriptorError, match="key 3 is the same key as key 1"):
        MultisigDescriptor.from_keys(2, [KEYS[0], KEYS[1], KEYS[0]], "regtest")


def test_refuses_two_keys_from_one_seed() -> None:
    other_account = signers()[0].account_key("48h/1h/1h/2h", "regtest")
    with pytest.raises(DescriptorError, match="same master key"):
        MultisigDescriptor.from_keys(2, [KEYS[0], KEYS[1], other_account], "regtest")


def test_refuses_mixed_networks() -> None:
    main_key = signers()[2].account_key("48h/0h/0h/2h", "main")
    with pytest.raises(NetworkMismatch, match="mixed networks"):
        MultisigDescriptor.from_keys(2, [KEYS[0], KEYS[1], main_key], "regtest")


def test_refuses_bad_checksum() -> None:
    text = WALLET["descriptor"][:-1] + ("q" if WALLET["descriptor"][-1] != "q" else "p")
    with pytest.raises(DescriptorError, match="checksum mismatch"):
        MultisigDescriptor.parse(text, network="regtest")


def test_refuses_a_tampered_body_under_a_valid_checksum() -> None:
    body, checksum = WALLET["descriptor"].split("#")
    with pytest.raises(DescriptorError, match="checksum mismatch"):
        MultisigDescriptor.parse(body.replace("sortedmulti(2", "sortedmulti(1") + "#" + checksum, network="regtest")


def test_refuses_unsorted_multi_and_nested_segwit() -> None:
    body = WALLET["descriptor"].split("#")[0]
    with pytest.raises(DescriptorError, match="sortedmulti"):
        MultisigDescriptor.parse(body.replace("sortedmulti", "multi"), network="regtest")
    with pytest.raises(DescriptorError, match="nested"):
        MultisigDescriptor.parse(f"sh({body})", network="regtest")


def test_refuses_private_keys_in_the_descriptor() -> None:
    xprv = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(WALLET["mnemonics"][0]), version=NETWORKS["test"]["xprv"])
    with pytest.raises(DescriptorError, match="private extended key"):
        KeyOrigin(xprv.my_fingerprint.hex(), "", xprv.to_base58())


def test_refuses_origin_that_does_not_fit_the_key_depth() -> None:
    fp, rest = KEYS[0][1:].split("/", 1)
    with pytest.raises(DescriptorError, match="depth 4"):
        KeyOrigin.parse(f"[{fp}/48h/1h/0h]{rest.split(']')[1]}")


def test_refuses_a_single_branch_descriptor() -> None:
    with pytest.raises(DescriptorError, match="only the receive"):
        MultisigDescriptor.parse(WALLET["descriptor_receive"], network="regtest")


def test_refuses_unusual_branches() -> None:
    body = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/<0;2>/*")
    with pytest.raises(DescriptorError, match="standard branches"):
        MultisigDescriptor.parse(body, network="regtest")


def test_refuses_more_than_twenty_keys_the_p2wsh_checkmultisig_limit() -> None:
    keys = []
    for i in range(21):
        root = bip32.HDKey.from_seed(bytes([i + 1]) * 32, version=NETWORKS["test"]["xprv"])
        acct = root.derive("m/48h/1h/0h/2h").to_public()
        keys.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{acct.to_base58()}")
    with pytest.raises(DescriptorError, match="at most 20"):
        MultisigDescriptor.from_keys(2, keys, "regtest")
    assert MultisigDescriptor.from_keys(2, keys[:20], "regtest").n == 20


def test_refuses_garbage() -> None:
    with pytest.raises(DescriptorError):
        MultisigDescriptor.parse("wpkh([73c5da0a/84h/1h/0h]tpubD6NzVbkrYhZ4...)", network="regtest")
    with pytest.raises(DescriptorError, match="not a valid extended key"):
        KeyOrigin.parse(KEYS[0][:-1] + ("R" if KEYS[0][-1] != "R" else "S"))
