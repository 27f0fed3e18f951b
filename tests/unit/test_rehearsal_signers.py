"""What a rehearsal needs of the signers: the files an air-gapped signer handed back (signed
or not), a hardware wallet showing one multisig address (through ``FakeHwilib``, a stand-in
for HWI and a device), and the one-address descriptor it is shown from."""

from __future__ import annotations

from pathlib import Path

import pytest
from embit.descriptor import Descriptor
from embit.networks import NETWORKS

from l2custody.errors import PsbtTampered, SignerError, SignerUnavailable
from l2custody.wallet.psbt import build_psbt
from l2custody.wallet.signers import FileSigner, HwiSigner
from tests.support.rehearsal import FakeHwilib, mnemonic_signer
from tests.support.wallet import coins, descriptor, pay


def unsigned():  # type: ignore[no-untyped-def]
    desc = descriptor()
    return build_psbt(desc, coins(desc, [100_000]), [pay(20_000)], 0, 2.0, 100)


@pytest.mark.parametrize(("change", "index"), [(False, 0), (False, 7), (True, 3)])
def test_the_one_address_descriptor_derives_that_address(change: bool, index: int) -> None:
    desc = descriptor()
    text = desc.address_descriptor(change, index)
    assert "/<0;1>/*" not in text and text.count(f"/{int(change)}/{index}") == 3
    # embit applies a non-ranged key's fixed derivation on derive() (the index is unused)
    assert Descriptor.from_string(text).derive(0).address(NETWORKS["regtest"]) == desc.address(change, index)


def test_returned_lists_what_came_back_signed_or_not_but_not_the_export(tmp_path: Path) -> None:
    psbt = unsigned()
    files = FileSigner(tmp_path, name="vault")
    files.export(psbt, "abcd")
    assert files.returned("abcd", unsigned=psbt) == [] and files.collect("abcd", unsigned=psbt) == []
    (tmp_path / "abcd-unsigned.psbt").write_bytes(psbt.serialize())  # a device that refused
    (tmp_path / "abcd-signed.psbt").write_bytes(mnemonic_signer(0).sign(psbt).serialize())
    back = files.returned("abcd", unsigned=psbt)
    assert [p.name for p, _ in back] == ["abcd-signed.psbt", "abcd-unsigned.psbt"]
    assert len(files.collect("abcd", unsigned=psbt)) == 1  # collect keeps only signed ones, as before


def test_returned_refuses_a_file_for_another_transaction(tmp_path: Path) -> None:
    psbt = unsigned()
    desc = descriptor()
    other = build_psbt(desc, coins(desc, [90_000]), [pay(20_000)], 0, 2.0, 100)
    (tmp_path / "abcd-signed.psbt").write_bytes(other.serialize())
    with pytest.raises(PsbtTampered, match="abcd-signed.psbt is for transaction"):
        FileSigner(tmp_path).returned("abcd", unsigned=psbt)


def test_a_hardware_wallet_shows_the_address_of_the_descriptor_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeHwilib(mnemonic_signer(1))
    device.install(monkeypatch)
    desc = descriptor()
    hwi = HwiSigner(device.signer.fingerprint, network="regtest", name="ledger")
    assert hwi.display_address(desc.address_descriptor(False, 4)) == desc.address(False, 4)
    assert device.calls[-1] == ("displayaddress", desc.address_descriptor(False, 4))


def test_a_missing_or_failing_device_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    device = FakeHwilib(mnemonic_signer(1))
    device.install(monkeypatch)
    hwi = HwiSigner(device.signer.fingerprint, network="regtest")
    device.connected = False
    with pytest.raises(SignerUnavailable, match="connect and unlock it"):
        hwi.display_address(descriptor().address_descriptor(False, 0))
    device.connected = True

    def broken(client: object, desc: str) -> dict[str, str]:
        raise RuntimeError("wallet policy not registered")

    monkeypatch.setattr("hwilib.commands.displayaddress", broken)
    with pytest.raises(SignerError, match="could not show the address: wallet policy not registered"):
        hwi.display_address(descriptor().address_descriptor(False, 0))
