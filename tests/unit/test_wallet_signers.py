"""Signers: software keys from 0600 files, the air-gapped file round trip, HWI when installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from embit import bip32, bip39
from embit.networks import NETWORKS

from l2custody.errors import PsbtError, PsbtTampered, SignerError, SignerUnavailable
from l2custody.wallet.psbt import build_psbt, finalize, load_psbt
from l2custody.wallet.review import summarize
from l2custody.wallet.signers import (
    FileSigner,
    HwiSigner,
    Signer,
    SoftwareSigner,
    generate_mnemonic,
    write_secret_file,
)
from tests.support.wallet import WALLET, coins, descriptor, pay, rng, signers

DESC = descriptor()
MNEMONIC = WALLET["mnemonics"][0]
FP0, FP1, FP2 = (k[1:9] for k in WALLET["keys"])


def unsigned():
    return build_psbt(DESC, coins(DESC, [100_000, 50_000]), [pay(120_000)], 0, 2.0, 1000, rng=rng())


def key_file(tmp_path: Path, text: str, mode: int = 0o600, name: str = "key.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


# --- software signer ------------------------------------------------------------------
def test_every_signer_kind_follows_the_protocol(tmp_path: Path) -> None:
    assert isinstance(signers()[0], Signer)
    assert isinstance(FileSigner(tmp_path), Signer)
    assert isinstance(HwiSigner("deadbeef"), Signer)


def test_mnemonic_file_with_mode_0600_loads(tmp_path: Path) -> None:
    signer = SoftwareSigner.from_file(key_file(tmp_path, f"# cosigner A\n{MNEMONIC}\n"))
    assert signer.fingerprints == {FP0} and signer.name == "key"
    assert signer.account_key("48h/1h/0h/2h", "regtest").to_string() == WALLET["keys"][0]


def test_key_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = key_file(tmp_path, MNEMONIC, mode=0o644)
    with pytest.raises(SignerError, match=f"mode 0644.*chmod 600 {path}"):
        SoftwareSigner.from_file(path)


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="does not exist"):
        SoftwareSigner.from_file(tmp_path / "nope")


def test_master_xprv_file_signs_like_its_mnemonic(tmp_path: Path) -> None:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(MNEMONIC), version=NETWORKS["test"]["xprv"])
    signer = SoftwareSigner.from_file(key_file(tmp_path, root.to_base58()))
    assert signer.fingerprint == FP0
    psbt = unsigned()
    assert signer.sign(psbt).serialize() == signers()[0].sign(psbt).serialize()  # RFC 6979: same signatures


def test_account_xprv_with_origin_signs(tmp_path: Path) -> None:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(WALLET["mnemonics"][1]), version=NETWORKS["test"]["xprv"])
    account = root.derive("m/48h/1h/0h/2h")
    signer = SoftwareSigner.from_file(key_file(tmp_path, f"[{FP1}/48h/1h/0h/2h]{account.to_base58()}"))
    signed = signer.sign(unsigned())
    assert all(i.signed_by == (FP1,) for i in summarize(signed, DESC).inputs)


def test_account_xprv_without_origin_is_refused(tmp_path: Path) -> None:
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(MNEMONIC), version=NETWORKS["test"]["xprv"])
    with pytest.raises(SignerError, match=r"\[fingerprint/path\]xprv"):
        SoftwareSigner.from_file(key_file(tmp_path, root.derive("m/48h/1h/0h/2h").to_base58()))


def test_bad_key_files_are_refused_without_echoing_them(tmp_path: Path) -> None:
    bad_words = MNEMONIC.replace("about", "abandon")
    with pytest.raises(SignerError, match="not a valid BIP-39") as exc:
        SoftwareSigner.from_file(key_file(tmp_path, bad_words))
    assert "abandon" not in exc.value.message
    xpub = WALLET["keys"][0].split("]")[1]
    with pytest.raises(SignerError, match="public key"):
        SoftwareSigner.from_file(key_file(tmp_path, xpub, name="pub.txt"))
    with pytest.raises(SignerError, match="empty"):
        SoftwareSigner.from_file(key_file(tmp_path, "# nothing\n", name="empty.txt"))


def test_repr_shows_no_secret() -> None:
    text = repr(signers()[0])
    assert FP0 in text and "abandon" not in text and "prv" not in text


def test_signing_leaves_the_input_untouched_and_needs_our_keys() -> None:
    psbt = unsigned()
    before = psbt.serialize()
    signers()[0].sign(psbt)
    assert psbt.serialize() == before
    stranger = SoftwareSigner.from_mnemonic("zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong", name="stranger")
    with pytest.raises(SignerError, match=f"stranger .*holds none of the keys.*{FP0}"):
        stranger.sign(psbt)


def test_generated_mnemonics_are_valid_and_written_0600(tmp_path: Path) -> None:
    words = generate_mnemonic(12)
    assert bip39.mnemonic_is_valid(words) and len(words.split()) == 12
    path = tmp_path / "new.key"
    write_secret_file(path, words)
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert SoftwareSigner.from_file(path).fingerprint
    with pytest.raises(SignerError, match="refusing to overwrite"):
        write_secret_file(path, generate_mnemonic())
    with pytest.raises(SignerError, match="12, 15, 18, 21 or 24"):
        generate_mnemonic(13)


def test_a_key_file_in_a_missing_folder_gets_a_private_folder(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "laptop.key"
    write_secret_file(path, generate_mnemonic())
    assert (os.stat(path.parent).st_mode & 0o777) == 0o700
    assert (os.stat(path).st_mode & 0o777) == 0o600


def test_a_key_file_that_cannot_be_created_is_a_signer_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(SignerError, match="cannot create key file"):
        write_secret_file(blocker / "laptop.key", generate_mnemonic())


# --- air-gapped file round trip -------------------------------------------------------------
def test_file_signer_exports_binary_and_base64(tmp_path: Path) -> None:
    psbt = unsigned()
    binary, text = FileSigner(tmp_path / "usb").export(psbt, "s1")
    assert binary.name == "s1.psbt" and text.name == "s1.psbt.txt"
    assert binary.read_bytes() == psbt.serialize()
    assert text.read_text().strip() == psbt.to_base64()


def test_file_signer_round_trip_with_a_second_software_signer(tmp_path: Path) -> None:
    psbt = unsigned()
    fs = FileSigner(tmp_path / "usb", fingerprints=[FP1])
    with pytest.raises(SignerUnavailable, match="-signed.psbt") as exc:
        fs.sign(psbt)
    session = FileSigner.session_for(psbt)
    assert session in exc.value.message
    # The air-gapped machine reads the base64 file and writes the signed one back.
    exported = load_psbt((tmp_path / "usb" / f"{session}.psbt.txt").read_text())
    (tmp_path / "usb" / f"{session}-signed.psbt").write_bytes(signers()[1].sign(exported).serialize())
    from_file = fs.sign(psbt)
    both = signers()[0].sign(from_file)
    assert summarize(both, DESC).complete
    finalize(both, DESC)


def test_collect_skips_unsigned_files_and_accepts_an_overwritten_export(tmp_path: Path) -> None:
    psbt = unsigned()
    fs = FileSigner(tmp_path)
    fs.export(psbt, "s2")
    assert fs.collect("s2", unsigned=psbt) == []
    (tmp_path / "s2.psbt").write_bytes(signers()[2].sign(psbt).serialize())
    got = fs.collect("s2", unsigned=psbt)
    assert len(got) == 1 and summarize(got[0], DESC).inputs[0].signed_by == (FP2,)


def test_collect_refuses_a_file_for_another_transaction(tmp_path: Path) -> None:
    psbt = unsigned()
    other = build_psbt(DESC, coins(DESC, [100_000, 50_000]), [pay(120_001)], 0, 2.0, 1000, rng=rng())
    fs = FileSigner(tmp_path)
    (tmp_path / "s3-signed.psbt").write_bytes(signers()[0].sign(other).serialize())
    with pytest.raises(PsbtTampered, match="s3-signed.psbt is for transaction"):
        fs.collect("s3", unsigned=psbt)


def test_collect_names_an_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "s4-signed.psbt").write_text("this is not a psbt")
    with pytest.raises(PsbtError, match="s4-signed.psbt"):
        FileSigner(tmp_path).collect("s4")


def test_collect_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert FileSigner(tmp_path / "not-yet").collect("s5") == []


# --- HWI ------------------------------------------------------------------------------
def test_hwi_signer_construction_touches_nothing() -> None:
    signer = HwiSigner("DEADBEEF", network="regtest")
    assert signer.fingerprints == {"deadbeef"} and signer.name == "hwi-deadbeef"


@pytest.mark.skipif(importlib.util.find_spec("hwilib") is not None, reason="HWI is installed here")
def test_hwi_signer_without_hwi_says_how_to_install() -> None:
    with pytest.raises(SignerUnavailable, match=r"pip install 'l2custody\[hwi\]'"):
        HwiSigner("deadbeef").sign(unsigned())


@pytest.mark.skipif(
    importlib.util.find_spec("hwilib") is None, reason="HWI not installed (pip install 'l2custody[hwi]')"
)
def test_hwi_signer_without_a_device_says_to_connect_it() -> None:
    with pytest.raises(SignerUnavailable, match="connect and unlock"):
        HwiSigner("deadbeef", network="regtest").sign(unsigned())
