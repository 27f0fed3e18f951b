"""Wallet files from other tools, read exactly as those tools read them.

Each fixture under tests/vectors/wallets/ is a file from the tool's own
repository (tests/vectors/wallets/README.md names source and commit). The
expected addresses are the ones the tool's tests state, or, where they state
none, the ones Bitcoin Core's ``deriveaddresses`` gives for the tool's keys
(tests/integration/test_wallet_formats_core.py asks Core again).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.formats import import_wallet
from tests.support.cli_runner import fails, init_regtest, ok
from tests.support.wallet import WALLET, descriptor

FIXTURES = Path(__file__).resolve().parent.parent / "vectors" / "wallets"

#: The Coldcard test wallet "CC-2-of-4" (Coldcard firmware testing/data/multisig/*-p2wsh-myself.*):
#: receive 0, 1 and change 0, 1 from Bitcoin Core deriveaddresses on Coldcard's own descriptor file.
CC_2OF4 = (
    [
        "tb1qafdvz3k4sjwn5lmq44yk5tzag4tyfq72mcqq5nzrsqepmsynrt9sue59v2",
        "tb1qme4du64p8q3l8aedn83vdh4exe7a8mxelsdcwvcx67hgyd9jfqesqw34tu",
    ],
    [
        "tb1qejdwr5n4h3uzd0h0yjuqn2jngftlqpp9vh6ftm22ul6tfxgxtrpqlt5rc7",
        "tb1qmmdzm5fmmjpp0akp7ht8s20zn8tq9p67cr3062vsgte9hrz7lrmsn2pqgq",
    ],
)
#: BlueWallet's tests state this first address for Sparrow's Coldcard and Specter exports of one wallet.
SPARROW_2OF3_FIRST = "bc1qtysquqsjqjfqvhd6l2h470hdgwhcahs4nq2ca49cyxftwjnjt9ssh8emel"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def addresses(text: str, network: str | None = None, count: int = 2) -> tuple[list[str], list[str]]:
    desc = import_wallet(text, network=network).descriptor
    return [desc.address(False, i) for i in range(count)], [desc.address(True, i) for i in range(count)]


# --- Coldcard --------------------------------------------------------------------------------
def test_coldcard_setup_file_gives_the_wallet_coldcard_shows() -> None:
    got = import_wallet(read("coldcard/export-p2wsh-myself.txt"), network="test")
    assert (got.source, got.name, got.descriptor.threshold, got.descriptor.n) == ("coldcard", "CC-2-of-4", 2, 4)
    assert addresses(read("coldcard/export-p2wsh-myself.txt"), "test") == CC_2OF4


def test_coldcard_file_without_format_line_is_p2sh_and_refused() -> None:
    with pytest.raises(DescriptorError, match=r"P2SH \(the file has no Format line.*P2WSH only"):
        import_wallet(read("coldcard/export-p2sh-myself.txt"), network="test")
    without_format = read("coldcard/export-p2wsh-myself.txt").replace("Format: P2WSH\n", "")
    with pytest.raises(DescriptorError, match="no Format line"):
        import_wallet(without_format, network="test")


def test_coldcard_policy_must_count_every_key() -> None:
    five = read("coldcard/export-p2wsh-myself.txt").replace("Policy: 2 of 4", "Policy: 2 of 5")
    with pytest.raises(DescriptorError, match="2 of 5 but it lists 4 keys"):
        import_wallet(five, network="test")


def test_coldcard_reads_policy_spellings_and_no_policy_as_all_keys() -> None:
    text = read("coldcard/export-p2wsh-myself.txt")
    assert import_wallet(text.replace("2 of 4", "2/4"), network="test").descriptor.threshold == 2
    all_keys = import_wallet(text.replace("Policy: 2 of 4\n", ""), network="test").descriptor
    assert (all_keys.threshold, all_keys.n) == (4, 4)


def test_caravan_written_coldcard_files() -> None:
    assert import_wallet(read("coldcard/caravan-wc-p2wsh_t.txt"), network="test").descriptor.first_address() == (
        "tb1qhgj3fnwn50pq966rjnj4pg8uz9ktsd8nge32qxd73ffvvg636p5q54g7m0"
    )
    with pytest.raises(DescriptorError, match="is P2SH; l2custody supports native segwit P2WSH only"):
        import_wallet(read("coldcard/caravan-wc-p2sh_t.txt"), network="test")


def test_coldcard_descriptor_export_names_the_receive_branch_and_changes_on_one() -> None:
    receive = read("coldcard/desc-p2wsh-myself.txt").strip()
    pretty = read("coldcard/descriptor-export-p2wsh.txt")
    got = import_wallet(pretty, network="test")
    assert got.source == "coldcard" and addresses(pretty, "test") == CC_2OF4
    with pytest.raises(DescriptorError, match="only the receive"):  # no Coldcard header: which change branch?
        import_wallet(receive, network="test")


def test_coldcard_bitcoin_core_export() -> None:
    text = read("coldcard/bitcoin-core-export-p2wsh.txt")
    got = import_wallet(text, network="test")
    assert got.source == "coldcard" and addresses(text, "test") == CC_2OF4
    with pytest.raises(DescriptorError, match="importdescriptors"):
        import_wallet(text.replace("'[", "["), network="test")


# --- BlueWallet (and the Sparrow / Cobo / Nunchuck files its tests read) ---------------------------
def test_bluewallet_sparrow_coldcard_file() -> None:
    got = import_wallet(read("bluewallet/fromsparrow-coldcard.txt"))
    assert got.descriptor.network == "main" and got.descriptor.first_address() == SPARROW_2OF3_FIRST


def test_bluewallet_cobo_file_with_a_path_per_key() -> None:
    """``# derivation:`` applies to the key after it (BlueWallet's test states these four addresses)."""
    receive, change = addresses(read("bluewallet/cobo-custom-paths.txt"))
    assert receive == [
        "bc1qxzrzh4caw7e3genwtldtxntzj0ktfl7mhf2lh4fj8h7hnkvtvc4salvp85",
        "bc1qvwd2d7r46j7u9qyxpedfhe5p075sxuhzd0n6napuvvhq2u5nrmqs9ex90q",
    ]
    assert change == [
        "bc1qtah0p50d4qlftn049k7lldcwh7cs3zkjy9g8xegv63p308hsh9zsf5567q",
        "bc1qv84pedzkqz2p4sd2dxm9krs0tcfatqcn73nndycaky9qttczj9qq3az9ma",
    ]
    paths = [k.path for k in import_wallet(read("bluewallet/cobo-custom-paths.txt")).descriptor.keys]
    assert paths == ["47h/0h/0h/1h", "46h/0h/0h/1h"]


def test_a_per_key_derivation_does_not_carry_over_to_the_next_key() -> None:
    text = read("coldcard/export-p2wsh-myself.txt").replace("0F056943:", "# derivation: m/48'/1'/7'/2'\n0F056943:")
    paths = [k.path for k in import_wallet(text, network="test").descriptor.keys]
    assert paths == ["48h/1h/7h/2h", "48h/1h/0h/2h", "48h/1h/0h/2h", "48h/1h/0h/2h"]


def test_setup_files_with_seed_words_or_unknown_fingerprints_are_refused_without_echoing() -> None:
    words = "point match rack notable poverty welcome slice stem warfare later skirt dream"
    text = read("bluewallet/fromsparrow-coldcard.txt") + f"\nseed: {words}\n"
    with pytest.raises(DescriptorError, match="seed words") as err:
        import_wallet(text)
    assert "point" not in err.value.message
    placeholder = read("bluewallet/fromsparrow-coldcard.txt").replace("A3909080:", "00000000:")
    with pytest.raises(DescriptorError, match="placeholder fingerprint 00000000"):
        import_wallet(placeholder)
    bare = read("bluewallet/fromsparrow-coldcard.txt").replace("A3909080: ", "")
    with pytest.raises(DescriptorError, match="without its master fingerprint"):
        import_wallet(bare)


def test_bluewallet_caravan_file_with_an_unknown_path_is_refused() -> None:
    with pytest.raises(DescriptorError, match=r"Caravan key 3 \(Unknown\).*bip32Path"):
        import_wallet(read("bluewallet/caravan-multisig.json"), network="main")


def test_mainnet_files_on_a_test_network_are_a_network_mismatch() -> None:
    with pytest.raises(NetworkMismatch):
        import_wallet(read("bluewallet/fromsparrow-coldcard.txt"), network="regtest")
    with pytest.raises(NetworkMismatch):
        import_wallet(read("bluewallet/nunchuck-bsms.txt"), network="test")


# --- BSMS ------------------------------------------------------------------------------------
def test_nunchuck_bsms_record() -> None:
    got = import_wallet(read("bluewallet/nunchuck-bsms.txt"))
    assert got.source == "bsms" and got.descriptor.first_address() == (
        "bc1qjppd555998lvpgdew30kdrvu2qg90n5gg684khrc2u5g7kj8cnuqujvz3p"
    )


def test_bsms_first_address_in_upper_case_is_the_same_address() -> None:
    lines = read("bluewallet/nunchuck-bsms.txt").splitlines()
    lines[3] = lines[3].upper()
    assert import_wallet("\n".join(lines)).descriptor.first_address() == lines[3].lower()
    lines[3] = lines[3][:10] + lines[3][10:].lower()
    with pytest.raises(DescriptorError, match="mixes upper and lower case"):
        import_wallet("\n".join(lines))


def test_bsms_no_path_restrictions_and_blank_restrictions() -> None:
    multipath = WALLET["descriptor"]
    first = WALLET["regtest_receive"][0]
    for restriction in ("No path restrictions", "no path restrictions", ""):
        record = f"BSMS 1.0\n{multipath}\n{restriction}\n{first}\n"
        assert import_wallet(record, network="regtest").descriptor == descriptor()


def test_bsms_template_needs_restrictions_and_reads_them_in_order() -> None:
    template = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/**")
    with pytest.raises(DescriptorError, match="without path restrictions"):
        import_wallet(f"BSMS 1.0\n{template}\nNo path restrictions\n{WALLET['regtest_receive'][0]}", "regtest")
    reversed_ = import_wallet(f"BSMS 1.0\n{template}\n/1/*,/0/*\n{WALLET['regtest_change'][0]}", "regtest")
    assert reversed_.descriptor.branches == (1, 0)


def test_bip129_record_of_single_keys_is_refused_as_not_derivable() -> None:
    with pytest.raises(DescriptorError, match="single public key"):
        import_wallet(read("bsms/bip129-no-path-restrictions.bsms"))


def test_bsms_first_address_of_another_network() -> None:
    lines = read("bluewallet/nunchuck-bsms.txt").splitlines()
    lines[3] = WALLET["test_receive"][0]
    with pytest.raises(NetworkMismatch, match="first address"):
        import_wallet("\n".join(lines))


# --- Specter ---------------------------------------------------------------------------------
def test_specter_desktop_export_written_by_sparrow() -> None:
    got = import_wallet(read("bluewallet/fromsparrow-specter.json"))
    assert (got.source, got.name) == ("specter", "name")
    assert got.descriptor == import_wallet(read("bluewallet/fromsparrow-coldcard.txt")).descriptor
    assert got.descriptor.first_address() == SPARROW_2OF3_FIRST


def test_specter_desktop_wallet_json_with_a_receive_descriptor() -> None:
    got = import_wallet(read("specter/coldcard-trezor-1of2.json"), network="test")
    assert (got.name, got.descriptor.threshold, got.descriptor.n) == ("MyTestMultisig", 1, 2)
    assert addresses(read("specter/coldcard-trezor-1of2.json"), "test", 1) == (
        ["tb1qc4vmgvemzegwq6ynqzmv2c93lxswv7h2xmv2kwk8k43leye5m8nqdgjh64"],
        ["tb1quu46p5xsdgx0c580yx9392k0qxa0nju8xzzlu65pvwf4zpdd4jms67989p"],
    )


def test_specter_desktop_backup_checks_the_addresses_it_states() -> None:
    backup = {
        "name": "Treasury",
        "recv_descriptor": WALLET["descriptor_receive"],
        "change_descriptor": WALLET["descriptor_change"],
        "address_index": 2,
        "address": WALLET["regtest_receive"][2],
        "change_index": 1,
        "change_address": WALLET["regtest_change"][1],
    }
    assert import_wallet(json.dumps(backup), network="regtest").descriptor == descriptor()
    backup["address"] = WALLET["regtest_receive"][3]
    with pytest.raises(DescriptorError, match="altered"):
        import_wallet(json.dumps(backup), network="regtest")
    backup["address"] = WALLET["test_receive"][2]
    with pytest.raises(NetworkMismatch):
        import_wallet(json.dumps(backup), network="regtest")


def test_specter_diy_addwallet_line() -> None:
    got = import_wallet(read("specter-diy/addwallet-2of3.txt"), network="test")
    assert (got.source, got.name, got.descriptor.threshold, got.descriptor.n) == ("specter-diy", "My multisig", 2, 3)
    assert addresses(read("specter-diy/addwallet-2of3.txt"), "test", 1) == (
        ["tb1q48taj8xcqwes9er9xk0mkstyudyzdstxe8seq6gusnkqu9eqdakser2mk7"],
        ["tb1qucpupp5fnn4daa4fafv7u8rtymerfdl25tm4y30lznqgddu9g89s02q23e"],
    )
    braces = re.sub(r"(tpub\w+)", r"\1/{0,1}/*", read("specter-diy/addwallet-2of3.txt"))
    assert import_wallet(braces, network="test").descriptor == got.descriptor


# --- Caravan ---------------------------------------------------------------------------------
def test_caravan_wallet_configuration() -> None:
    got = import_wallet(read("caravan/bitcoin-2-of-2-P2WSH_TESTNET.json"), network="test")
    assert (got.source, got.name) == ("caravan", "P2WSH-T")
    assert got.descriptor == import_wallet(read("coldcard/caravan-wc-p2wsh_t.txt"), network="test").descriptor
    with pytest.raises(NetworkMismatch, match="testnet"):
        import_wallet(read("caravan/bitcoin-2-of-2-P2WSH_TESTNET.json"), network="regtest")
    with pytest.raises(DescriptorError, match="'P2SH' is not supported"):
        import_wallet(read("caravan/bitcoin-2-of-2-P2SH_TESTNET.json"), network="test")


def test_caravan_download_descriptors_json() -> None:
    text = json.dumps({"receive": WALLET["descriptor_receive"], "change": WALLET["descriptor_change"]})
    got = import_wallet(text, network="regtest")
    assert got.source == "caravan" and got.descriptor == descriptor()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["extendedPublicKeys"].__setitem__(0, d["extendedPublicKeys"][0]["xpub"]), "must be a JSON object"),
        (lambda d: d["extendedPublicKeys"][1].pop("xpub"), "has no 'xpub'"),
        (lambda d: d.__setitem__("name", ["Treasury"]), "'name' must be a string, not a list"),
        (lambda d: d["quorum"].__setitem__("requiredSigners", True), "must be a whole number"),
        (lambda d: d.__setitem__("extendedPublicKeys", {"0": 1}), "must be a list"),
    ],
)
def test_caravan_data_of_the_wrong_shape_is_refused(change, needle: str) -> None:  # noqa: ANN001
    data = json.loads(read("caravan/bitcoin-2-of-2-P2WSH_TESTNET.json"))
    change(data)
    with pytest.raises(DescriptorError, match=needle):
        import_wallet(json.dumps(data), network="test")


def test_names_of_the_wrong_type_never_reach_the_store() -> None:
    specter = json.loads(read("bluewallet/fromsparrow-specter.json"))
    specter["label"] = ["a", "list"]
    with pytest.raises(DescriptorError, match="'label' must be a string"):
        import_wallet(json.dumps(specter))
    core = {"wallet_name": {"x": 1}, "descriptors": [{"desc": WALLET["descriptor"]}]}
    with pytest.raises(DescriptorError, match="'wallet_name' must be a string"):
        import_wallet(json.dumps(core), network="regtest")


# --- Electrum --------------------------------------------------------------------------------
def test_electrum_file_written_by_coldcard() -> None:
    got = import_wallet(read("electrum/el-p2wsh-myself.json"), network="test")
    assert got.source == "electrum" and addresses(read("electrum/el-p2wsh-myself.json"), "test") == CC_2OF4
    assert {k.fingerprint for k in got.descriptor.keys} == {"0f056943", "6ba6cfd0", "747b698e", "7bb026be"}


def test_electrum_file_with_seeds_reads_only_the_public_keys() -> None:
    """BlueWallet's test states these addresses for this Electrum 2-of-3 file."""
    receive, change = addresses(read("bluewallet/electrum-multisig-wallet-with-seed.json"))
    assert receive == [
        "bc1qkzg22vej70cqnrlsxcee9nfnstcr70jalvsmjn0c8rjf0klwyydsk8nggs",
        "bc1q2mkhkvx9l7aqksvyf0dwd2x4yn8qx2w3sythjltdkjw70r8hsves2evfg6",
    ]
    assert change == [
        "bc1qqj0zx85x3d2frn4nmdn32fgskq5c2qkvk9sukxp3xsdzuf234mds85w068",
        "bc1qwpxkr4ac7fyp6y8uegfpqa6phyqex3vdf5mwwrfayrp8889adpgszge8m5",
    ]


def test_electrum_p2sh_and_encrypted_files_are_refused() -> None:
    with pytest.raises(DescriptorError, match="tpub... key, which Electrum uses for P2SH"):
        import_wallet(read("electrum/el-p2sh-myself.json"), network="test")
    with pytest.raises(DescriptorError, match="encrypted Electrum wallet"):
        import_wallet("QklFMQNnbm9uc2Vuc2U=", network="test")
    data = json.loads(read("electrum/el-p2wsh-myself.json"))
    del data["x2/"]["ckcc_xfp"]
    with pytest.raises(DescriptorError, match="x2/ has no root_fingerprint"):
        import_wallet(json.dumps(data), network="test")


# --- the command line ----------------------------------------------------------------------
def test_wallet_import_reads_a_tool_file_and_refuses_a_p2sh_one(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    out = ok(config, "wallet", "import", str(FIXTURES / "specter-diy" / "addwallet-2of3.txt"))
    assert out["name"] == "My multisig" and out["threshold"] == 2 and out["first_address"].startswith("bcrt1")
    other = init_regtest(tmp_path / "other")
    err = fails(other, "wallet", "import", str(FIXTURES / "coldcard" / "export-p2sh-myself.txt"), code=20)
    assert "P2WSH only" in err["error"]


def test_json_too_deep_or_with_absurd_numbers_is_a_typed_error() -> None:
    with pytest.raises(DescriptorError, match="nested more than"):
        import_wallet("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DescriptorError, match="not JSON this tool can read"):
        import_wallet('{"quorum": ' + "9" * 5000 + "}")
    with pytest.raises(DescriptorError, match="not valid JSON"):
        import_wallet('{"quorum": ')


def test_a_wallet_file_giving_a_member_twice_is_refused_not_read_as_its_last() -> None:
    with pytest.raises(DescriptorError, match="'quorum' appears twice"):
        import_wallet('{"name": "w", "quorum": {"requiredSigners": 2}, "quorum": {"requiredSigners": 1}}')


# --- /<1;0>/* and multi() across formats ----------------------------------------------------
def test_a_reversed_branch_wallet_round_trips_through_every_export() -> None:
    from l2custody.wallet.formats import EXPORT_FORMATS, export_wallet

    text = WALLET["descriptor"].split("#")[0].replace("/<0;1>/*", "/<1;0>/*")
    reversed_ = import_wallet(text, network="regtest").descriptor
    for fmt in EXPORT_FORMATS:
        again = import_wallet(export_wallet(reversed_, fmt), network="regtest").descriptor
        assert again == reversed_ and again.first_address() == WALLET["regtest_change"][0], fmt


def test_unsorted_multi_is_refused_in_every_format_that_can_carry_it() -> None:
    multi = WALLET["descriptor"].split("#")[0].replace("sortedmulti(", "multi(")
    receive = WALLET["descriptor_receive"].split("#")[0].replace("sortedmulti(", "multi(")
    cases = [
        multi,
        json.dumps([{"desc": receive, "internal": False}, {"desc": receive.replace("/0/*", "/1/*"), "internal": True}]),
        json.dumps({"label": "x", "descriptor": multi}),
        f"addwallet x&{multi}",
        "# Coldcard descriptor export\n" + receive.replace(",", ",\n"),
    ]
    for text in cases:
        with pytest.raises(DescriptorError, match=r"wsh\(multi\(\.\.\.\)\) keeps keys in the given order"):
            import_wallet(text, network="regtest")


def test_core_export_of_nested_segwit_says_why() -> None:
    nested = "sh(" + WALLET["descriptor"].split("#")[0] + ")"
    with pytest.raises(DescriptorError, match="nested sh"):
        import_wallet(json.dumps([{"desc": nested}]), network="regtest")


def test_caravan_descriptors_with_a_disagreeing_multipath_are_refused() -> None:
    other = WALLET["descriptor"].split("#")[0].replace("sortedmulti(2", "sortedmulti(3")
    text = json.dumps(
        {"receive": WALLET["descriptor_receive"], "change": WALLET["descriptor_change"], "multipath": other}
    )
    with pytest.raises(DescriptorError, match="disagrees"):
        import_wallet(text, network="regtest")
