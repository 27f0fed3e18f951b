"""Wallet imports and exports: descriptor text, Bitcoin Core, BSMS (BIP-129), Caravan, Coldcard/Sparrow."""

from __future__ import annotations

import json

import pytest

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.descriptor import descriptor_checksum
from l2custody.wallet.formats import (
    EXPORT_FORMATS,
    export_bsms,
    export_core,
    export_wallet,
    import_wallet,
)
from tests.support.wallet import VECTORS, WALLET, descriptor

KEYS = WALLET["keys"]


def with_apostrophes(desc: str) -> str:
    body = desc.split("#")[0].replace("h/", "'/").replace("h]", "']")
    return f"{body}#{descriptor_checksum(body)}"


# --- descriptor text ---------------------------------------------------------------
def test_imports_a_plain_descriptor() -> None:
    got = import_wallet(WALLET["descriptor"], network="regtest")
    assert got.source == "descriptor" and got.descriptor == descriptor()


def test_imports_a_sparrow_output_descriptor_export() -> None:
    text = (
        "# Receive and change descriptor (BIP389):\n"
        f"{WALLET['descriptor']}\n\n\n"
        "# Receive descriptor (Bitcoin Core):\n"
        f"{WALLET['descriptor_receive']}\n\n"
        "# Change descriptor (Bitcoin Core):\n"
        f"{WALLET['descriptor_change']}\n"
    )
    assert import_wallet(text, network="regtest").descriptor == descriptor()


def test_refuses_a_sparrow_export_whose_parts_disagree() -> None:
    other = WALLET["descriptor_change"].split("#")[0].replace("sortedmulti(2", "sortedmulti(3")
    text = f"{WALLET['descriptor']}\n{WALLET['descriptor_receive']}\n{other}\n"
    with pytest.raises(DescriptorError, match="different keys or thresholds"):
        import_wallet(text, network="regtest")


def test_imports_a_receive_and_change_pair() -> None:
    text = f"{WALLET['descriptor_receive']}\n{WALLET['descriptor_change']}\n"
    assert import_wallet(text, network="regtest").descriptor == descriptor()


# --- Bitcoin Core --------------------------------------------------------------------
def core_listdescriptors() -> dict:
    """Shaped like `bitcoin-cli listdescriptors` of a watch-only multisig wallet (older Core writes ')."""
    return {
        "wallet_name": "treasury",
        "descriptors": [
            {
                "desc": "wpkh([d34db33f/84'/1'/0']tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp/0/*)#qwlqgth7",
                "timestamp": 1700000000,
                "active": True,
                "internal": False,
                "range": [0, 999],
                "next": 0,
            },
            {
                "desc": with_apostrophes(WALLET["descriptor_receive"]),
                "timestamp": 1700000500,
                "active": True,
                "internal": False,
                "range": [0, 999],
                "next": 3,
            },
            {
                "desc": with_apostrophes(WALLET["descriptor_change"]),
                "timestamp": 1700000500,
                "active": True,
                "internal": True,
                "range": [0, 999],
                "next": 1,
            },
        ],
    }


def test_imports_core_listdescriptors_skipping_other_descriptors() -> None:
    got = import_wallet(json.dumps(core_listdescriptors()), network="regtest")
    assert got.source == "core"
    assert got.descriptor == descriptor()
    assert got.name == "treasury" and got.timestamp == 1700000500


def test_core_export_round_trips_through_import() -> None:
    text = export_core(descriptor(), timestamp=1700000000, range_end=99)
    entries = json.loads(text)
    assert [e["internal"] for e in entries] == [False, True]
    assert entries[0]["desc"] == WALLET["descriptor_receive"]
    assert entries[1]["desc"] == WALLET["descriptor_change"]
    assert entries[0]["range"] == [0, 99] and entries[0]["active"] is True
    assert import_wallet(text, network="regtest").descriptor == descriptor()


def test_refuses_core_export_without_change_descriptor() -> None:
    data = core_listdescriptors()
    data["descriptors"] = [d for d in data["descriptors"] if not d["internal"]]
    with pytest.raises(DescriptorError, match="internal: true"):
        import_wallet(json.dumps(data), network="regtest")


def test_refuses_json_that_is_no_known_export() -> None:
    with pytest.raises(DescriptorError, match="listdescriptors"):
        import_wallet('{"hello": "world"}', network="regtest")


# --- BSMS ----------------------------------------------------------------------------
def test_imports_the_bip129_test_vector_record() -> None:
    got = import_wallet((VECTORS / "bip129_2of2.bsms").read_text())
    assert got.source == "bsms"
    assert got.descriptor.threshold == 2 and got.descriptor.network == "main"
    assert got.descriptor.first_address() == "bc1qrgc6p3kylfztu06ysl752gwwuekhvtfh9vr7zg43jvu60mutamcsv948ej"


def test_bsms_export_is_a_four_line_record_that_round_trips() -> None:
    text = export_bsms(descriptor())
    lines = text.splitlines()
    assert lines[0] == "BSMS 1.0" and lines[2] == "/0/*,/1/*"
    assert "/**" in lines[1] and "<0;1>" not in lines[1]
    assert lines[3] == WALLET["regtest_receive"][0]
    assert import_wallet(text, network="regtest").descriptor == descriptor()


def test_refuses_a_bsms_record_whose_first_address_differs() -> None:
    lines = export_bsms(descriptor()).splitlines()
    lines[3] = WALLET["regtest_receive"][1]
    with pytest.raises(DescriptorError, match="altered"):
        import_wallet("\n".join(lines), network="regtest")


def test_refuses_other_bsms_versions_and_key_records() -> None:
    lines = export_bsms(descriptor()).splitlines()
    with pytest.raises(DescriptorError, match="version"):
        import_wallet("\n".join(["BSMS 2.0"] + lines[1:]), network="regtest")
    with pytest.raises(DescriptorError, match="4 lines"):
        import_wallet(f"BSMS 1.0\n00\n{KEYS[0]}\nSigner 1 key\nH6DXgqkCb3=", network="regtest")


# --- Caravan -------------------------------------------------------------------------
def caravan(**changes: object) -> dict:
    data = {
        "name": "Treasury",
        "addressType": "P2WSH",
        "network": "regtest",
        "client": {"type": "public"},
        "quorum": {"requiredSigners": 2, "totalSigners": 3},
        "extendedPublicKeys": [
            {"name": f"signer {i}", "bip32Path": "m/48'/1'/0'/2'", "xpub": k.split("]")[1], "xfp": k[1:9]}
            for i, k in enumerate(KEYS)
        ],
        "startingAddressIndex": 0,
    }
    data.update(changes)
    return data


def test_imports_a_caravan_wallet() -> None:
    got = import_wallet(json.dumps(caravan()), network="regtest")
    assert got.source == "caravan" and got.name == "Treasury"
    assert got.descriptor == descriptor()


def test_refuses_caravan_keys_without_fingerprint_or_path() -> None:
    data = caravan()
    data["extendedPublicKeys"][1]["bip32Path"] = "Unknown"
    with pytest.raises(DescriptorError, match="hardware signers need both"):
        import_wallet(json.dumps(data), network="regtest")


def test_refuses_caravan_p2sh_and_other_networks() -> None:
    with pytest.raises(DescriptorError, match="P2SH"):
        import_wallet(json.dumps(caravan(addressType="P2SH")), network="regtest")
    with pytest.raises(NetworkMismatch, match="testnet"):
        import_wallet(json.dumps(caravan(network="testnet")), network="regtest")


# --- Coldcard / Sparrow multisig file ------------------------------------------------
def test_imports_a_coldcard_multisig_file_as_sparrow_writes_it() -> None:
    text = "# Coldcard Multisig setup file (created by Sparrow)\n#\nName: Treasury\nPolicy: 2 of 3\n"
    text += "Derivation: m/48'/1'/0'/2'\nFormat: P2WSH\n\n"
    text += "".join(f"{k[1:9].upper()}: {k.split(']')[1]}\n" for k in KEYS)
    got = import_wallet(text, network="regtest")
    assert got.source == "coldcard" and got.name == "Treasury"
    assert got.descriptor == descriptor()


def test_imports_a_coldcard_file_with_one_derivation_per_key() -> None:
    text = "Name: T\nPolicy: 2 of 3\nFormat: P2WSH\n\n"
    text += "".join(f"# derivation: m/48'/1'/0'/2'\n{k[1:9]}: {k.split(']')[1]}\n\n" for k in KEYS)
    assert import_wallet(text, network="regtest").descriptor == descriptor()


def test_refuses_coldcard_nested_segwit() -> None:
    text = "Policy: 2 of 3\nDerivation: m/48'/1'/0'/1'\nFormat: P2WSH-P2SH\n" + "".join(
        f"{k[1:9]}: {k.split(']')[1]}\n" for k in KEYS
    )
    with pytest.raises(DescriptorError):
        import_wallet(text, network="regtest")


# --- exports ------------------------------------------------------------------------
def test_every_export_format_imports_back_to_the_same_wallet() -> None:
    for fmt in EXPORT_FORMATS:
        assert import_wallet(export_wallet(descriptor(), fmt), network="regtest").descriptor == descriptor()


def test_descriptor_export_is_the_multipath_descriptor_with_checksum() -> None:
    assert export_wallet(descriptor(), "descriptor").strip() == WALLET["descriptor"]


def test_refuses_unknown_export_format() -> None:
    with pytest.raises(DescriptorError, match="descriptor, bsms, core"):
        export_wallet(descriptor(), "electrum")


def test_refuses_empty_input() -> None:
    with pytest.raises(DescriptorError, match="empty"):
        import_wallet("  \n")
