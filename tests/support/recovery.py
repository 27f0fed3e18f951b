"""A recovery wallet run as an operator runs it, for the report/watch unit tests.

``recovery_config`` makes a regtest config (``l2custody init``), four software signers
through the CLI (alice, bob, carol: the 2-of-3 primary path; heir: alone after ``delay``
blocks) and ``wallet create --recovery heir@DELAY``, with ``[recovery]
refresh_margin_blocks`` set. ``receive`` pays the wallet in a new MemoryChain block (real
blocks and transactions, no node) and syncs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from l2custody.chain.memory import MemoryChain
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import create_wallet, init_regtest, set_config, software_signers

PRIMARY = ("alice", "bob", "carol")


def recovery_config(directory: Path, *, delay: int, margin: int) -> Path:
    path = init_regtest(directory)
    keys = software_signers(path, directory, (*PRIMARY, "heir"))
    create_wallet(path, keys[:3], recovery=(f"{keys[3]}@{delay}",))
    set_config(path, "recovery", "refresh_margin_blocks", str(margin))
    return path


def receive(wallet: Wallet, chain: MemoryChain, value: int) -> str:
    """Pay ``value`` to the wallet's next receive address in a new block; the coin's outpoint."""
    address = wallet.next_address()
    tx = Transaction(
        vin=[TransactionInput(os.urandom(32), 0)],
        vout=[TransactionOutput(value, Script(wallet.descriptor.derive(False, address.index).script_pubkey))],
    )
    chain.add_block([tx])
    wallet.sync()
    return f"{tx.txid().hex()}:0"


def mine_to(chain: MemoryChain, height: int) -> None:
    while chain.tip_height() < height:
        chain.add_block([])
