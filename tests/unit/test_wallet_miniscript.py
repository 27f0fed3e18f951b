"""The recovery wallet's descriptor: the shapes it reads, what it refuses, what it derives.

The script of the issue's example (2-of-3, then R alone after 10 blocks) is
written out here byte by byte from the miniscript spec, over keys derived
from the mnemonics with embit's BIP-32 alone. Every other shape is checked
against embit's own miniscript implementation.
"""

from __future__ import annotations

import hashlib

import pytest
from embit import bip32, bip39, hashes
from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.descriptor import KeyOrigin, MultisigDescriptor, descriptor_checksum, parse_path
from l2custody.wallet.descriptors import is_miniscript, parse_wallet_descriptor
from l2custody.wallet.miniscript import RecoveryDescriptor, RecoveryPath
from tests.support import miniscript as ms
from tests.support.wallet import WALLET

A, B, C, R1, R2, R3, R4 = ms.keys()


def parse(text: str, network: str = "regtest") -> RecoveryDescriptor:
    return RecoveryDescriptor.parse(text, network=network)


def refused(text: str, network: str = "regtest") -> str:
    with pytest.raises(DescriptorError) as err:
        parse(text, network)
    return err.value.message


def embit_script(text: str, change: int, index: int) -> bytes:
    return Descriptor.from_string(text).derive(index, branch_index=change).witness_script().data


def fp(key: str) -> str:
    return key[1:9]


# --- the example, by hand -----------------------------------------------------------
def hand_pubkey(mnemonic: str, change: int, index: int) -> bytes:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic))
    return root.derive("m/48h/1h/0h/2h").child(change).child(index).sec()


@pytest.mark.parametrize(("change", "index"), [(0, 0), (0, 7), (1, 3)])
def test_the_example_script_is_the_miniscript_spec_written_out(change: int, index: int) -> None:
    a, b, c = (hand_pubkey(m, change, index) for m in WALLET["mnemonics"])
    r = hand_pubkey(ms.recovery_mnemonics()[0], change, index)
    script = (
        bytes([0x52, 33]) + a + bytes([33]) + b + bytes([33]) + c + bytes([0x53, 0xAE])  # 2 A B C 3 CHECKMULTISIG
        + bytes([0x73, 0x64])  # IFDUP NOTIF
        + bytes([0x76, 0xA9, 20]) + hashes.hash160(r) + bytes([0x88, 0xAD])  # DUP HASH160 <h(R)> EQUALVERIFY CHECKSIGVERIFY
        + bytes([0x5A, 0xB2])  # 10 CHECKSEQUENCEVERIFY
        + bytes([0x68])  # ENDIF
    )  # fmt: skip
    derived = ms.descriptor().derive(bool(change), index)
    assert derived.witness_script == script
    assert derived.script_pubkey == b"\x00\x20" + hashlib.sha256(script).digest()
    assert derived.pubkeys == (a, b, c)  # the primary keys, in the order multi() lists them
    assert derived.threshold == 2


def test_the_descriptor_of_one_address_is_that_address() -> None:
    desc = ms.stacked()
    one = desc.address_descriptor(True, 7)
    assert "/1/7)" in one and "<0;1>" not in one
    # embit applies a key's fixed /1/7 steps on derive(); the index 0 is then unused (no wildcard)
    assert Descriptor.from_string(one.split("#")[0]).derive(0).address(NETWORKS["regtest"]) == desc.address(True, 7)
    assert one.split("#")[1] == descriptor_checksum(one.split("#")[0])


def test_derived_names_the_origin_of_every_key_recovery_keys_too() -> None:
    derived = ms.descriptor().derive(True, 4)
    assert sorted(f.hex() for f, _ in derived.bip32.values()) == sorted(fp(k) for k in (A, B, C, R1))
    for _fp, path in derived.bip32.values():
        assert path == parse_path("48h/1h/0h/2h") + [1, 4]


# --- shapes read --------------------------------------------------------------------------------
LIANA_SHAPES = {
    "one recovery key": ms.text(),
    "one primary key": f"wsh(or_d(pk({A}),and_v(v:pkh({R1}),older(10))))",
    "recovery threshold as multi": f"wsh(or_d(multi(2,{A},{B},{C}),and_v(v:multi(2,{R1},{R2}),older(1000))))",
    "recovery threshold as thresh": (
        f"wsh(or_d(multi(2,{A},{B},{C}),and_v(v:thresh(2,pkh({R1}),a:pkh({R2}),a:pkh({R3})),older(52596))))"
    ),
    "recovery key as pk": f"wsh(or_d(multi(2,{A},{B},{C}),and_v(v:pk({R1}),older(144))))",
    "two stacked paths": ms.stacked_text(),
    "three stacked paths": (
        f"wsh(or_i(and_v(v:pkh({R4}),older(1678)),or_i(and_v(v:thresh(2,pkh({R2}),a:pkh({R3})),older(43)),"
        f"or_d(multi(2,{A},{B},{C}),and_v(v:pkh({R1}),older(42))))))"
    ),
    "recovery paths under or_d": (
        f"wsh(or_d(multi(2,{A},{B},{C}),or_i(and_v(v:pkh({R1}),older(10)),and_v(v:pkh({R2}),older(20)))))"
    ),
}


@pytest.mark.parametrize("name", sorted(LIANA_SHAPES))
def test_liana_shapes_are_read_and_derive_what_embit_derives(name: str) -> None:
    text = LIANA_SHAPES[name]
    desc = parse(text)
    assert desc.kind == "miniscript"
    assert desc.to_string(checksum=False) == text
    for change in (0, 1):
        for index in (0, 5):
            assert desc.derive(bool(change), index).witness_script == embit_script(text, change, index)
    assert desc.address(False, 5) == Descriptor.from_string(text).derive(5).address(NETWORKS["regtest"])


def test_the_policy_is_read_back() -> None:
    desc = parse(LIANA_SHAPES["three stacked paths"])
    assert (desc.threshold, desc.n) == (2, 3)
    assert [k.fingerprint for k in desc.primary_keys] == [fp(A), fp(B), fp(C)]
    assert [(p.delay, p.threshold, [k.fingerprint for k in p.keys]) for p in desc.recovery_paths] == [
        (42, 1, [fp(R1)]),
        (43, 2, [fp(R2), fp(R3)]),
        (1678, 1, [fp(R4)]),
    ]
    assert [k.fingerprint for k in desc.keys] == [fp(k) for k in (A, B, C, R1, R2, R3, R4)]
    assert desc.recovery_path(43).threshold == 2
    with pytest.raises(DescriptorError, match="no recovery path after 44 blocks; its paths open after 42, 43, 1678"):
        desc.recovery_path(44)


def test_checksum_and_the_receive_change_pair() -> None:
    desc = ms.descriptor()
    full = desc.to_string()
    assert full.endswith("#" + descriptor_checksum(full.split("#")[0]))
    assert parse(full) == desc
    assert parse(f"{desc.to_string(change=True)}\n{desc.to_string(change=False)}") == desc
    assert "/0/*" in desc.to_string(change=False) and "/1/*" in desc.to_string(change=True)
    assert "checksum mismatch" in refused(full[:-1] + ("q" if full[-1] != "q" else "p"))


def test_apostrophes_and_h_are_the_same_wallet() -> None:
    text = ms.text().replace("h/", "'/").replace("h]", "']")
    assert "'" in text
    assert parse(text) == ms.descriptor()


def test_build_writes_what_liana_writes() -> None:
    origins = [KeyOrigin.parse(k.removesuffix(ms.SUFFIX)) for k in (A, B, C, R1, R2, R3)]
    built = RecoveryDescriptor.build(
        2,
        origins[:3],
        [RecoveryPath(20, 2, tuple(origins[4:6])), RecoveryPath(10, 1, (origins[3],))],
        "regtest",
    )
    assert built.to_string(checksum=False) == (
        f"wsh(or_i(and_v(v:multi(2,{R2},{R3}),older(20)),or_d(multi(2,{A},{B},{C}),and_v(v:pkh({R1}),older(10)))))"
    )
    single = RecoveryDescriptor.build(1, origins[:1], [RecoveryPath(10, 1, (origins[3],))], "regtest")
    assert single.to_string(checksum=False) == LIANA_SHAPES["one primary key"]


# --- what the pipeline asks of it ------------------------------------------------------------
def test_key_lookup_covers_the_recovery_keys() -> None:
    desc = ms.descriptor()
    assert desc.contains_key(fp(R1)) and desc.contains_key(bytes.fromhex(fp(A)))
    assert not desc.contains_key(fp(R2))
    assert desc.key_for_fingerprint(fp(R1)) == KeyOrigin.parse(R1.removesuffix(ms.SUFFIX))
    r1 = bytes.fromhex(fp(R1))
    assert desc.match_derivation(r1, parse_path("48h/1h/0h/2h/1/9")) == (True, 9)
    assert desc.match_derivation(r1, parse_path("48h/1h/0h/2h/2/9")) is None
    assert desc.match_derivation(r1, parse_path("48h/1h/1h/2h/0/9")) is None


def test_identity_equality_and_warnings() -> None:
    desc = ms.descriptor()
    assert desc == ms.descriptor() and hash(desc) == hash(ms.descriptor())
    assert desc != ms.descriptor(delay=11)
    assert desc.descriptor_id == ms.descriptor().descriptor_id != ms.descriptor(delay=11).descriptor_id
    assert desc.descriptor_id != parse(ms.text(), "test").descriptor_id
    assert desc.warnings() == []
    main_keys = ms.keys("main")
    mainnet = RecoveryDescriptor.parse(
        f"wsh(or_d(multi(2,{','.join(main_keys[:3])}),and_v(v:pkh({main_keys[3]}),older(10))))", "main"
    )
    assert any("coin type 1h" in w for w in mainnet.warnings())
    assert any("less than a day" in w for w in mainnet.warnings())
    assert "2-of-3, recovery after 10 blocks" in repr(desc)


def test_the_factory_returns_the_kind_the_text_is() -> None:
    assert isinstance(parse_wallet_descriptor(ms.text(), "regtest"), RecoveryDescriptor)
    multisig = parse_wallet_descriptor(WALLET["descriptor"], "regtest")
    assert isinstance(multisig, MultisigDescriptor) and multisig.kind == "multisig"
    assert multisig == MultisigDescriptor.parse(WALLET["descriptor"], "regtest")
    assert is_miniscript(ms.descriptor().to_string()) and not is_miniscript(WALLET["descriptor"])
    with pytest.raises(DescriptorError, match="wsh\\(multi\\(...\\)\\) keeps keys in the given order"):
        parse_wallet_descriptor(f"wsh(multi(2,{A},{B}))", "regtest")


# --- what it refuses ---------------------------------------------------------------------------
PRIMARY = f"multi(2,{A},{B},{C})"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),after(800000))))", "after() is an absolute timelock"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(4194314))))", "time-based relative lock (bit 22"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(2147483658))))", "disable flag (bit 31)"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(0))))", "older(0) would open the recovery path at once"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(65536))))", "at most 65535"),
        (f"wsh(or_d({PRIMARY},sha256({'00' * 32})))", "hash locks"),
        (f"wsh(or_d({PRIMARY},and_v(v:hash160({'00' * 20}),older(10))))", "hash locks"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(10)),older(5)))", "expected ')'"),
        (f"wsh(or_d({PRIMARY},older(10)))", "older(N) must come with the keys"),
        (f"wsh(or_d(sortedmulti(2,{A},{B},{C}),and_v(v:pkh({R1}),older(10))))", "sortedmulti() inside"),
        (f"wsh(or_d({PRIMARY},and_v(v:multi_a(1,{R1}),older(10))))", "multi_a() is for taproot"),
        (f"wsh(andor(pk({A}),older(10),pk({R1})))", "andor() is not supported"),
        (f"wsh({PRIMARY})", "no recovery path"),
        (f"wsh(or_i({PRIMARY},multi(1,{R1},{R2})))", "2 spending paths without a timelock"),
        (f"wsh(or_d(and_v(v:pkh({R1}),older(10)),{PRIMARY}))", "or_d(X,Z) needs a key check as X"),
        (f"wsh(or_d(pkh({A}),and_v(v:pkh({R1}),older(10))))", "the primary path is pkh()"),
        (
            f"wsh(or_i(and_v(v:pkh({R2}),older(10)),or_d({PRIMARY},and_v(v:pkh({R1}),older(10)))))",
            "same delay (10, 10 blocks)",
        ),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({A}),older(10))))", "key 4 is the same key as key 1"),
        (f"wsh(or_d(multi(4,{A},{B},{C}),and_v(v:pkh({R1}),older(10))))", "needs 4 signatures from 3 keys"),
        (f"wsh(or_d(multi(0,{A},{B},{C}),and_v(v:pkh({R1}),older(10))))", "needs 0 signatures"),
        (f"wsh(or_d({PRIMARY},and_v(v:thresh(3,pkh({R1}),a:pkh({R2})),older(10))))", "needs 3 signatures from 2"),
        (f"wsh(or_d({PRIMARY},and_v(v:thresh(1,pkh({R1}),pkh({R2})),older(10))))", "expected a:pkh("),
        (f"wsh(or_d({PRIMARY},and_v(pkh({R1}),older(10))))", "and_v(v:KEYS,older(N))"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(10)))", "expected ')'"),
        (f"wsh(or_d({PRIMARY},and_v(v:pkh({R1}),older(ten))))", "'ten' is not a number"),
        (f"sh(or_d({PRIMARY},and_v(v:pkh({R1}),older(10))))", "is not a wsh(...) miniscript descriptor"),
        (
            f"wsh(or_d({PRIMARY},and_v(v:pkh({R1.removesuffix(ms.SUFFIX)}),older(10))))",
            "every key needs the derivation suffix /<0;1>/*",
        ),
        (
            f"wsh(or_d({PRIMARY},and_v(v:pkh({R1.replace(ms.SUFFIX, '/0/*')}),older(10))))",
            "all keys must use the same branches",
        ),
        (ms.text().replace(ms.SUFFIX, "/0/*"), "covers only the receive (/0/*) branch"),
        (ms.text().replace(A, A[10:]), "has no origin"),
    ],
)
def test_refusals_say_what_is_wrong(text: str, message: str) -> None:
    assert message in refused(text)


def test_one_master_key_in_two_paths_is_refused() -> None:
    other_account = ms.signers()[0].account_key("48h/1h/1h/2h", "regtest").to_string() + ms.SUFFIX
    message = refused(f"wsh(or_d({PRIMARY},and_v(v:pkh({other_account}),older(10))))")
    assert "keys 1 and 4 come from the same master key" in message and "recovery keys included" in message


def test_keys_of_another_network_are_refused() -> None:
    with pytest.raises(NetworkMismatch, match="test-network tpubs but the wallet network is mainnet"):
        parse(ms.text(), network="main")
    mixed = ms.text().replace(R1, ms.keys("main")[3])
    with pytest.raises(NetworkMismatch, match="keys from mixed networks"):
        parse(mixed)


def pool(count: int) -> list[str]:
    """``count`` testnet keys of distinct seeds."""
    out = []
    for i in range(count):
        root = bip32.HDKey.from_seed(bytes([i + 1]) * 32, version=NETWORKS["test"]["xprv"])
        out.append(f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{root.derive('m/48h/1h/0h/2h').to_public()}/<0;1>/*")
    return out


def test_more_than_twenty_keys_in_a_path_is_refused() -> None:
    keys = pool(22)
    message = refused(f"wsh(or_d(multi(2,{','.join(keys[:21])}),and_v(v:pkh({keys[21]}),older(10))))")
    assert "the primary path has 21 keys; multi() takes at most 20" in message


def test_script_size_and_opcode_limits_of_p2wsh_are_kept() -> None:
    keys = pool(120)
    big = [f"and_v(v:multi(1,{','.join(keys[20 * i : 20 * i + 20])}),older({i + 1}))" for i in range(5)]
    tree = f"or_d(multi(1,{','.join(keys[100:120])}),{big[0]})"
    for path in big[1:]:
        tree = f"or_i({path},{tree})"
    assert "P2WSH standardness allows 3600" in refused(f"wsh({tree})")
    many_ops = [f"and_v(v:thresh(1,pkh({keys[20 * i]}),{','.join(f'a:pkh({k})' for k in keys[20 * i + 1 : 20 * i + 16])}),older({i}))" for i in range(1, 3)]  # fmt: skip
    tree = f"or_i({many_ops[1]},or_d(pk({keys[100]}),{many_ops[0]}))"
    assert "P2WSH standardness allows 201" in refused(f"wsh({tree})")
