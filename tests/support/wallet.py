"""Shared material for the wallet unit tests: the 2-of-3 vector wallet, its signers, coins.

Coins are paid by real (unsigned-input) previous transactions built here, so
PSBTs carry genuine non_witness_utxo data whose txid matches the outpoint.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.psbt import TxOut, Utxo
from l2custody.wallet.signers import SoftwareSigner

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
WALLET = json.loads((VECTORS / "wallet_2of3.json").read_text())

#: A regtest address outside the wallet (receive 0 of a 1-of-1 over the 4th BIP-39 test mnemonic).
OTHER_MNEMONIC = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"
NETWORK = "regtest"


def signers() -> list[SoftwareSigner]:
    return [SoftwareSigner.from_mnemonic(m, name=f"s{i}") for i, m in enumerate(WALLET["mnemonics"])]


def descriptor(network: str = NETWORK) -> MultisigDescriptor:
    return MultisigDescriptor.parse(WALLET["descriptor"], network=network)


def other_descriptor() -> MultisigDescriptor:
    key = SoftwareSigner.from_mnemonic(OTHER_MNEMONIC).account_key("48h/1h/0h/2h", NETWORK)
    return MultisigDescriptor.from_keys(1, [key], NETWORK)


def outside_address() -> str:
    return other_descriptor().address(False, 0)


def coin(
    desc: MultisigDescriptor, value: int, *, index: int = 0, change: bool = False, salt: int = 0, with_prev: bool = True
) -> Utxo:
    """A coin of ``desc`` at (change, index), paid by a fresh previous transaction."""
    spk = desc.derive(change, index).script_pubkey
    prev = Transaction(
        version=2,
        vin=[TransactionInput(salt.to_bytes(32, "big"), 0)],
        vout=[TransactionOutput(value, Script(spk))],
        locktime=0,
    )
    return Utxo(prev.txid().hex(), 0, value, spk, change, index, 100, prev.serialize() if with_prev else None)


def coins(desc: MultisigDescriptor, values: list[int]) -> list[Utxo]:
    return [coin(desc, v, index=i, salt=i + 1) for i, v in enumerate(values)]


def pay(value: int, address: str | None = None) -> TxOut:
    return TxOut.to_address(address or outside_address(), value, NETWORK)


def rng(seed: int = 7) -> random.Random:
    return random.Random(seed)


def fresh_account_key() -> str:
    """A new cosigner's account key ``[fp/48h/1h/0h/2h]tpub...`` from a fresh seed (for `wallet rotate --add`)."""
    import os

    from embit import bip32
    from embit.networks import NETWORKS

    root = bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS[NETWORK]["xprv"])
    return f"[{root.my_fingerprint.hex()}/48h/1h/0h/2h]{root.derive('m/48h/1h/0h/2h').to_public().to_base58()}"
