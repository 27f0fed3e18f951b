"""Signers as a careless operator registers them (issue 11, class 14): one key under two
names, a key of another network, a generated key of a refused signer."""

from __future__ import annotations

from pathlib import Path

from embit import bip32, bip39
from embit.networks import NETWORKS

from tests.support.cli_runner import fails, init_regtest, ok
from tests.support.wallet import WALLET


def key_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_the_same_mnemonic_cannot_be_two_signers(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    first = key_file(tmp_path, "a.key", WALLET["mnemonics"][0])
    copy = key_file(tmp_path, "copy.key", WALLET["mnemonics"][0])
    ok(config, "signer", "add", "alice", "--software", str(first))
    err = fails(config, "signer", "add", "alice-again", "--software", str(copy), code=35)
    assert "registered already as signer 'alice'" in err["error"]
    assert WALLET["mnemonics"][0].split()[0] not in err["error"]


def test_the_same_file_signer_directory_cannot_be_two_signers(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    ok(config, "signer", "add", "usb", "--file-dir", str(tmp_path / "usb"))
    err = fails(config, "signer", "add", "usb2", "--file-dir", str(tmp_path / "usb"), code=35)
    assert "registered already as signer 'usb'" in err["error"]


def test_a_mainnet_xprv_is_refused_on_regtest(tmp_path: Path) -> None:
    config = init_regtest(tmp_path)
    seed = bip39.mnemonic_to_seed(WALLET["mnemonics"][0])
    mainnet = bip32.HDKey.from_seed(seed, version=NETWORKS["main"]["xprv"]).to_base58()
    err = fails(config, "signer", "add", "alice", "--software", str(key_file(tmp_path, "m.key", mainnet)), code=13)
    assert "mainnet xprv" in err["error"] and "regtest" in err["error"]
    assert mainnet[:12] not in err["error"]
    testnet = bip32.HDKey.from_seed(seed, version=NETWORKS["test"]["xprv"]).to_base58()
    ok(config, "signer", "add", "alice", "--software", str(key_file(tmp_path, "t.key", testnet)))
