"""A recovery wallet in and out: ``--recovery`` specs, imports (text, Core, Liana backup), exports.

The Liana backup is written here in the shape liana-gui's ``src/backup.rs``
serializes (name, accounts[].descriptor/timestamp, network), over this
suite's keys.
"""

from __future__ import annotations

import json

import pytest

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.descriptor import KeyOrigin
from l2custody.wallet.formats import export_wallet, import_wallet
from l2custody.wallet.miniscript import RecoveryDescriptor, RecoveryPath
from tests.support import miniscript as ms

A, B, C, R1, R2, R3, R4 = ms.keys()
ACCOUNT = [k.removesuffix(ms.SUFFIX) for k in ms.keys()]


# --- KEY@BLOCKS ------------------------------------------------------------------------------
def test_a_recovery_spec_is_a_key_or_k_of_keys_at_a_delay() -> None:
    one = RecoveryPath.parse(f"{ACCOUNT[3]}@52560")
    assert (one.delay, one.threshold, one.keys) == (52560, 1, (KeyOrigin.parse(ACCOUNT[3]),))
    two = RecoveryPath.parse(f"2:{R2},{ACCOUNT[5]},{R4}@65000")
    assert (two.delay, two.threshold, [k.fingerprint for k in two.keys]) == (65000, 2, [R2[1:9], R3[1:9], R4[1:9]])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ACCOUNT[3], "must be KEY@BLOCKS, or K:KEY1,KEY2,...@BLOCKS"),
        (f"{ACCOUNT[3]}@a year", "'a year' is not a number of blocks"),
        (f"{ACCOUNT[3]}@0", "older(0) would open the recovery path at once"),
        (f"{ACCOUNT[3]}@70000", "at most 65535"),
        (f"{ACCOUNT[3]},{ACCOUNT[4]}@100", "lists 2 keys: say how many must sign, e.g. 2:KEY1,KEY2,...@100"),
        (f"{ACCOUNT[3]}/0/*@100", "give the account key with /<0;1>/* or no suffix"),
        (f"{ACCOUNT[3][10:]}@100", "has no origin"),
    ],
)
def test_bad_recovery_specs_say_how_to_write_them(spec: str, message: str) -> None:
    with pytest.raises(DescriptorError) as err:
        RecoveryPath.parse(spec)
    assert message in err.value.message


def test_from_keys_builds_liana_shapes() -> None:
    desc = RecoveryDescriptor.from_keys(
        2, ACCOUNT[:3], [f"2:{ACCOUNT[4]},{ACCOUNT[5]}@20", f"{ACCOUNT[3]}@10"], "regtest"
    )
    assert desc.to_string(checksum=False) == (
        f"wsh(or_i(and_v(v:multi(2,{R2},{R3}),older(20)),or_d(multi(2,{A},{B},{C}),and_v(v:pkh({R1}),older(10)))))"
    )
    with pytest.raises(DescriptorError, match="needs 2 signatures from 1 keys"):
        RecoveryDescriptor.from_keys(2, ACCOUNT[:3], [f"2:{ACCOUNT[3]}@10"], "regtest")
    with pytest.raises(DescriptorError, match="keys 1 and 4 come from the same master key"):
        RecoveryDescriptor.from_keys(
            2, ACCOUNT[:3], [f"{ms.signers()[0].account_key('48h/1h/5h/2h').to_string()}@10"], "regtest"
        )


# --- imports ---------------------------------------------------------------------------------
def test_descriptor_text_in_liana_spelling_is_imported() -> None:
    liana = ms.text().replace("h/", "'/").replace("h]", "']")
    got = import_wallet(liana, network="regtest")
    assert got.source == "descriptor" and got.descriptor == ms.descriptor()
    pair = f"{ms.descriptor().to_string(change=False)}\n{ms.descriptor().to_string(change=True)}\n"
    assert import_wallet(pair, network="regtest").descriptor == ms.descriptor()
    sparrow_like = "# a comment\n" + ms.stacked().to_string() + "\n"
    assert import_wallet(sparrow_like, network="regtest").descriptor == ms.stacked()


def test_core_listdescriptors_of_a_recovery_wallet_is_imported() -> None:
    desc = ms.stacked()
    listing = {
        "wallet_name": "heirloom",
        "descriptors": [
            {"desc": desc.to_string(change=False), "active": True, "internal": False, "timestamp": 1700000000},
            {"desc": desc.to_string(change=True), "active": True, "internal": True, "timestamp": 1700000000},
            {
                "desc": "wpkh(tpubD6NzVbkrYhZ4WaWSyoBvQwbpLkojyoTZPRsgXELWz3Popb3qkjcJyJUGLnL4qHHoQvao8ESaAstxYSnhyswJ76uZPStJRJCTKvosUCJZL5B/0/*)",
                "active": False,
            },
        ],
    }
    got = import_wallet(json.dumps(listing), network="regtest")
    assert (got.source, got.name, got.timestamp, got.descriptor) == ("core", "heirloom", 1700000000, desc)


def liana_backup(descriptor: str, network: str = "regtest", accounts: int = 1) -> str:
    account = {"name": "Heir", "descriptor": descriptor, "receive_index": 3, "change_index": 1, "timestamp": 1748013169}
    return json.dumps(
        {"name": "Heir", "accounts": [account] * accounts, "network": network, "date": 1750684434, "version": 0}
    )


def test_a_liana_backup_is_imported() -> None:
    text = ms.text().replace("h/", "'/").replace("h]", "']")
    got = import_wallet(liana_backup(RecoveryDescriptor.parse(text, "regtest").to_string()), network="regtest")
    assert (got.source, got.name, got.timestamp, got.descriptor) == ("liana", "Heir", 1748013169, ms.descriptor())
    with pytest.raises(NetworkMismatch, match="the Liana backup is for signet but this wallet is on regtest"):
        import_wallet(liana_backup(ms.descriptor().to_string(), network="signet"), network="regtest")
    with pytest.raises(DescriptorError, match="holds 2 wallets; l2custody imports one"):
        import_wallet(liana_backup(ms.descriptor().to_string(), accounts=2), network="regtest")
    with pytest.raises(DescriptorError, match="checksum mismatch"):
        import_wallet(liana_backup(ms.descriptor().to_string()[:-1] + "x"), network="regtest")


# --- exports ---------------------------------------------------------------------------------
def test_exports_read_back_and_bsms_is_refused() -> None:
    desc = ms.stacked()
    assert import_wallet(export_wallet(desc, "descriptor"), network="regtest").descriptor == desc
    core = json.loads(export_wallet(desc, "core"))
    assert [(e["internal"], e["desc"]) for e in core] == [
        (False, desc.to_string(change=False)),
        (True, desc.to_string(change=True)),
    ]
    assert import_wallet(json.dumps(core), network="regtest").descriptor == desc
    with pytest.raises(DescriptorError, match="BSMS \\(BIP-129\\) records describe k-of-n multisig wallets"):
        export_wallet(desc, "bsms")
