"""Material for the rehearsal unit tests: the 2-of-3 vector wallet on a MemoryChain (real
blocks, real SQLite store) with registered signers, coins, an air-gapped machine, and
``FakeHwilib``: a stand-in for HWI and a hardware wallet, which cannot be plugged in here.

Signers of the vector wallet (``tests/vectors/wallet_2of3.json``): ``s0`` and ``s1`` are
software keys (key files, 0600), ``vault`` is an air-gapped file signer holding key 2.
The integration test (tests/integration/test_rehearsal.py) runs the same on btcd.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embit.descriptor import Descriptor
from embit.networks import NETWORKS
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.config import init_config, load_config
from l2custody.wallet.psbt import load_psbt
from l2custody.wallet.service import Wallet
from l2custody.wallet.signer_registry import add_signer
from l2custody.wallet.signers import SoftwareSigner, write_secret_file
from tests.support.cli_runner import allow_unrehearsed_opens
from tests.support.wallet import WALLET


def mnemonic_signer(i: int) -> SoftwareSigner:
    return SoftwareSigner.from_mnemonic(WALLET["mnemonics"][i], name=f"s{i}")


@dataclass
class World:
    """An open wallet (``wallet``) on ``chain``; ``dir`` holds the config, key files and
    ``usb`` (the vault's folder)."""

    dir: Path
    chain: MemoryChain
    wallet: Wallet
    progress: list[str] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        tmp_path: Path,
        *,
        coins: tuple[int, ...] = (400_000,),
        required: bool = True,
        chain: MemoryChain | None = None,
    ) -> World:
        config = init_config(tmp_path / "config.toml", "regtest", data_dir=tmp_path / "data")
        if not required:
            allow_unrehearsed_opens(config.path)
            config = load_config(config.path)
        chain = chain or MemoryChain()
        wallet = Wallet.import_(config, WALLET["descriptor"], chain=chain)
        world = cls(tmp_path, chain, wallet)
        for i in (0, 1):
            key = tmp_path / f"s{i}.key"
            write_secret_file(key, WALLET["mnemonics"][i])
            add_signer(config, f"s{i}", "software", str(key))
        add_signer(config, "vault", "file", str(tmp_path / "usb"), fingerprint=mnemonic_signer(2).fingerprint)
        world.fund(coins)
        return world

    def fund(self, values: tuple[int, ...]) -> None:
        """One confirmed block paying ``values`` to fresh receive addresses of the wallet."""
        outs = [
            TransactionOutput(
                v, Script(self.wallet.descriptor.derive(False, self.wallet.next_address().index).script_pubkey)
            )
            for v in values
        ]
        tx = Transaction(version=2, vin=[TransactionInput(os.urandom(32), 0)], vout=outs, locktime=0)
        self.chain.add_block([tx])
        self.wallet.sync()

    def reserved(self) -> list[str]:
        """Outpoints some session holds reserved."""
        return [u.outpoint for u in self.wallet.store.utxos(self.wallet.record.id) if u.reserved_by is not None]

    def exported(self, session_id: str) -> Path:
        return self.dir / "usb" / f"{session_id}.psbt.txt"

    def sign_offline(self, session_id: str, *, key: int = 2, sign: bool = True) -> Path:
        """The air-gapped machine: read the exported PSBT, sign it with key ``key`` (or not,
        ``sign=False``: a device that refused), and write it back as SESSION-signed.psbt."""
        psbt = load_psbt(self.exported(session_id).read_text())
        if sign:
            psbt = mnemonic_signer(key).sign(psbt)
        back = self.dir / "usb" / f"{session_id}-signed.psbt"
        back.write_bytes(psbt.serialize())
        return back

    def audit(self, subject: str) -> list[str]:
        return [e.action for e in self.wallet.store.audit_log(subject=subject)]


class UnsureChain(MemoryChain):
    """A MemoryChain whose answer to the next broadcast goes missing (``lose``: the transaction
    reached the mempool or not) or is a refusal (``refuse``): faults a real node cannot be made
    to produce on demand, standing in for a timeout or a lost connection mid-broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.lose: bool | None = None  # True: accepted, answer lost; False: not accepted, answer lost
        self.refuse: str | None = None

    def broadcast(self, raw_tx: bytes) -> str:
        from l2custody.errors import BroadcastRejected, BroadcastUnknown

        if self.refuse is not None:
            reason, self.refuse = self.refuse, None
            raise BroadcastRejected(reason)
        if self.lose is not None:
            accepted, self.lose = self.lose, None
            if accepted:
                super().broadcast(raw_tx)
            raise BroadcastUnknown("the chain source did not answer (timed out)")
        return super().broadcast(raw_tx)


class FakeHwilib:
    """A stand-in for ``hwilib`` (named as such: no hardware wallet can be plugged into a unit
    test). ``find_device`` answers for the key it was given; ``displayaddress`` derives the
    address of the descriptor it is handed (as a device would, with embit) unless ``shows``
    says otherwise; ``signtx`` signs with the key. Calls are recorded in ``calls``."""

    def __init__(self, signer: SoftwareSigner) -> None:
        self.signer = signer
        self.connected = True
        self.shows: str | None = None  # an address the device shows instead of deriving it
        self.calls: list[tuple[str, Any]] = []

    def install(self, monkeypatch: Any) -> None:
        commands = types.ModuleType("hwilib.commands")
        commands.find_device = self.find_device  # type: ignore[attr-defined]
        commands.displayaddress = self.displayaddress  # type: ignore[attr-defined]
        commands.signtx = self.signtx  # type: ignore[attr-defined]
        common = types.ModuleType("hwilib.common")
        common.Chain = types.SimpleNamespace(MAIN="main", TEST="test", REGTEST="regtest", SIGNET="signet")  # type: ignore[attr-defined]
        package = types.ModuleType("hwilib")
        package.commands = commands  # type: ignore[attr-defined]
        package.common = common  # type: ignore[attr-defined]
        for name, module in (("hwilib", package), ("hwilib.commands", commands), ("hwilib.common", common)):
            monkeypatch.setitem(sys.modules, name, module)

    def find_device(self, device_type: Any = None, fingerprint: str = "", chain: Any = None) -> Any:
        self.calls.append(("find_device", fingerprint))
        if not self.connected or fingerprint != self.signer.fingerprint:
            return None
        return types.SimpleNamespace(close=lambda: None)

    def displayaddress(self, client: Any, desc: str) -> dict[str, str]:
        self.calls.append(("displayaddress", desc))
        return {"address": self.shows or Descriptor.from_string(desc).derive(0).address(NETWORKS["regtest"])}

    def signtx(self, client: Any, psbt: str) -> dict[str, str]:
        self.calls.append(("signtx", None))
        return {"psbt": self.signer.sign(load_psbt(psbt)).to_base64()}
